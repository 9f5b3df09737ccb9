import { AgentError } from './errors.js';

/**
 * HTTP to the license server: JSON in and out, a timeout on every call, and the two ways a call
 * can fail sorted apart. A server that cannot be reached (network error, timeout, 503) becomes
 * AgentError SERVER_UNREACHABLE; a server that answers with an error becomes ServerError with its
 * `{"error": {"code", "message"}}`, for the caller to branch on the code.
 */

/** Activation and other calls the user waits for on purpose. */
export const INTERACTIVE_TIMEOUT_MS = 10_000;
/** Lease renewal and usage reports run before a command's real work: an outage must not stall it. */
export const BACKGROUND_TIMEOUT_MS = 3_000;

export class ServerError extends Error {
  override readonly name = 'ServerError';
  constructor(
    readonly status: number,
    readonly code: string,
    readonly serverMessage: string,
    /** Seconds, from Retry-After on 429. */
    readonly retryAfterSeconds: number | null,
  ) {
    super(`${code}: ${serverMessage}`);
  }
}

export interface ServerRequest {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  body?: unknown;
  /** A license token, sent as `Authorization: Bearer`. */
  token?: string;
  timeoutMs: number;
}

export interface ServerReply {
  status: number;
  /** Parsed JSON, or undefined for an empty body (204). */
  body: unknown;
}

/** Checks and normalizes a server URL as the user gave it: http(s), no trailing slash. */
export function normalizeServerUrl(text: string, from: string): string {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new AgentError('USAGE', `${from}: "${text}" is not a URL (expected e.g. https://license.example.com)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new AgentError('USAGE', `${from}: the license server URL must start with http:// or https://, got "${text}"`);
  }
  return url.href.replace(/\/+$/, '');
}

function unreachable(server: string, reason: string): AgentError {
  return new AgentError('SERVER_UNREACHABLE', `cannot reach the license server at ${server} (${reason})`);
}

/** Why fetch failed, in a few words: the system error code where there is one. */
function networkReason(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return `no answer within ${timeoutMs / 1000} s`;
  }
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code === 'ECONNREFUSED') return 'connection refused';
  if (cause?.code === 'ENOTFOUND') return 'unknown host name';
  return cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
}

function parseRetryAfter(value: string | null): number | null {
  if (value === null || !/^\d+$/.test(value.trim())) return null;
  return Number(value.trim());
}

export async function callServer(server: string, request: ServerRequest): Promise<ServerReply> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (request.body !== undefined) headers['content-type'] = 'application/json';
  if (request.token !== undefined) headers.authorization = `Bearer ${request.token}`;

  let response: Response;
  let text: string;
  try {
    response = await fetch(`${server}${request.path}`, {
      method: request.method,
      headers,
      body: request.body === undefined ? undefined : JSON.stringify(request.body),
      signal: AbortSignal.timeout(request.timeoutMs),
      redirect: 'error',
    });
    // The timeout covers the body too: a server that stalls mid-answer is as unreachable as one that never answers.
    text = await response.text();
  } catch (err) {
    throw unreachable(server, networkReason(err, request.timeoutMs));
  }

  if (response.status === 503) {
    const after = parseRetryAfter(response.headers.get('retry-after'));
    throw unreachable(server, after === null ? 'it is unavailable' : `it is unavailable; try again in ${after} s`);
  }

  let body: unknown;
  if (text.trim() !== '') {
    try {
      body = JSON.parse(text);
    } catch {
      throw new AgentError('SERVER_ERROR', `${server} does not answer like a Ferry license server (HTTP ${response.status}, not JSON)`);
    }
  }
  if (response.ok) return { status: response.status, body };

  const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const code = typeof error?.code === 'string' ? error.code : `HTTP_${response.status}`;
  const message = typeof error?.message === 'string' ? error.message : response.statusText || 'no message';
  throw new ServerError(response.status, code, message, parseRetryAfter(response.headers.get('retry-after')));
}

/**
 * What a refusal by the server means for the user. Codes the agent has an exit code for get it,
 * with a hint what to do; anything else is SERVER_ERROR with the server's own code and message.
 */
export function refusalToAgentError(err: ServerError): AgentError {
  switch (err.code) {
    case 'SEATS_EXHAUSTED':
      return new AgentError('SEATS_EXHAUSTED', `${err.serverMessage} (run "ferry deactivate" there, or deactivate it in MyAccount)`);
    case 'LICENSE_NOT_FOUND':
      return new AgentError('LICENSE_NOT_FOUND', 'the license server does not know this key: compare it with the one in your purchase email');
    case 'LICENSE_REVOKED':
      return new AgentError('LICENSE_REVOKED', 'this license has been revoked: contact Ferry support');
    case 'LICENSE_CANCELLED':
      return new AgentError('LICENSE_REVOKED', 'this license has been cancelled: contact Ferry support');
    case 'TRIAL_EXPIRED':
      return new AgentError('TRIAL_EXPIRED', `${err.serverMessage} (buy a license, then run "ferry activate --key KEY")`);
    case 'ACTIVATION_INACTIVE':
      return new AgentError('ACTIVATION_INACTIVE', 'this machine was deactivated elsewhere (e.g. in MyAccount): run "ferry activate" again to use it here');
    case 'KEY_FORMAT':
      return new AgentError('BAD_KEY_FORMAT', `bad license key: ${err.serverMessage}`);
    case 'TOKEN_WRONG_MACHINE':
      return new AgentError('NO_LICENSE', 'the license server says this license belongs to another machine: run "ferry activate" on this one');
    default: {
      const retry = err.retryAfterSeconds === null ? '' : ` (try again in ${err.retryAfterSeconds} s)`;
      return new AgentError('SERVER_ERROR', `the license server refused: ${err.code}: ${err.serverMessage}${retry}`);
    }
  }
}

/** Unreachable or refused, as the AgentError the user sees; anything else passes through. */
export function asAgentError(err: unknown): unknown {
  return err instanceof ServerError ? refusalToAgentError(err) : err;
}
