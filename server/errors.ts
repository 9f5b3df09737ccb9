import type { FastifyError, FastifyInstance } from 'fastify';

/**
 * An error the caller can act on: a code to branch on, a status, a message for people. Services
 * throw these; one handler (below) turns every error into `{"error": {"code", "message"}}`.
 */
export class AppError extends Error {
  override readonly name = 'AppError';
  constructor(
    readonly code: string,
    readonly statusCode: number,
    message: string,
    /** Seconds, for 429 and 503 answers. */
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

export const RETRY_AFTER_UNAVAILABLE_SECONDS = 5;

export function serviceUnavailable(what: string): AppError {
  return new AppError('SERVICE_UNAVAILABLE', 503, `${what} is unavailable; try again shortly`, RETRY_AFTER_UNAVAILABLE_SECONDS);
}

/** Errors mysql2 and ioredis raise when their server is gone, as opposed to a bad query. */
const CONNECTION_ERROR_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND',
  'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT', 'ER_CON_COUNT_ERROR', 'ER_SERVER_SHUTDOWN',
]);

/** Still contended after inTransaction's retries: a busy moment, not the caller's mistake, nor an outage. */
const CONTENTION_ERROR_CODES = new Set(['ER_LOCK_WAIT_TIMEOUT', 'ER_LOCK_DEADLOCK']);

export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== undefined && CONNECTION_ERROR_CODES.has(code)) return true;
  // ioredis: offline queue disabled, retries exhausted, or the connection closed under a command.
  return (
    err.name === 'MaxRetriesPerRequestError' ||
    /enableOfflineQueue|Connection is closed|Pool is closed|connect ETIMEDOUT/.test(err.message)
  );
}

/** Fastify's own client-side errors, by code: what we call them and what we tell the caller. */
const FASTIFY_CLIENT_ERRORS: Record<string, { code: string; message?: string }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'send the body as application/json' },
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'PAYLOAD_TOO_LARGE', message: 'the request body is too large' },
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'INVALID_JSON', message: 'the request body is not valid JSON' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'INVALID_JSON', message: 'the request body is empty but its type says JSON' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: 'BAD_REQUEST', message: 'the Content-Length does not match the body' },
};

interface ErrorBody {
  error: { code: string; message: string };
}

export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

/** The one place where errors become answers. Registered by app.ts. */
export function installErrorHandlers(app: FastifyInstance, onConnectionError: () => void): void {
  app.setErrorHandler((err: FastifyError | AppError, request, reply) => {
    if (err instanceof AppError) {
      if (err.retryAfter !== undefined) reply.header('retry-after', String(err.retryAfter));
      if (err.statusCode >= 500) request.log.warn({ code: err.code }, err.message);
      return reply.code(err.statusCode).send(errorBody(err.code, err.message));
    }
    if (err.validation) {
      return reply.code(400).send(errorBody('VALIDATION_FAILED', err.message));
    }
    if (err.statusCode === 429) {
      // @fastify/rate-limit has already set Retry-After.
      return reply.code(429).send(errorBody('RATE_LIMITED', err.message));
    }
    const known = err.code ? FASTIFY_CLIENT_ERRORS[err.code] : undefined;
    if (known || (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500)) {
      return reply.code(err.statusCode ?? 400).send(errorBody(known?.code ?? 'BAD_REQUEST', known?.message ?? err.message));
    }
    if (CONTENTION_ERROR_CODES.has((err as NodeJS.ErrnoException).code ?? '')) {
      request.log.warn({ code: (err as NodeJS.ErrnoException).code }, 'database contention');
      reply.header('retry-after', '1');
      return reply.code(503).send(errorBody('BUSY', 'the license database is busy; try again in a moment'));
    }
    if (isConnectionError(err)) {
      onConnectionError();
      request.log.warn({ err: { code: (err as NodeJS.ErrnoException).code, message: err.message } }, 'dependency unavailable');
      reply.header('retry-after', String(RETRY_AFTER_UNAVAILABLE_SECONDS));
      return reply.code(503).send(errorBody('SERVICE_UNAVAILABLE', 'a service Ferry depends on is unavailable; try again shortly'));
    }
    request.log.error({ err }, 'unhandled error');
    return reply.code(500).send(errorBody('INTERNAL', 'something went wrong on our side; it has been logged'));
  });

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody('NOT_FOUND', `no such route: ${request.method} ${request.url.split('?')[0]}`));
  });
}
