import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, isConnectionError, RETRY_AFTER_UNAVAILABLE_SECONDS } from '../errors.js';

/** Titles of error pages by status, in the words a person reads them. */
const ERROR_TITLES: Record<number, string> = {
  400: 'That did not work',
  403: 'Not allowed',
  404: 'Page not found',
  413: 'Too much data',
  415: 'That did not work',
  429: 'Please wait a moment',
  503: 'Ferry is busy',
  500: 'Something went wrong',
};

/** What renders a page of an area (MyAccount, the admin area) in its layout. */
export interface PageRenderer {
  render(request: FastifyRequest, reply: FastifyReply, page: string, data?: Record<string, unknown>, status?: number): Promise<FastifyReply>;
}

/** An error as a page in the area's layout, never a stack trace; plain text if even the page fails. */
export async function errorPage(pages: PageRenderer, request: FastifyRequest, reply: FastifyReply, status: number, message: string): Promise<FastifyReply> {
  const title = ERROR_TITLES[status] ?? (status >= 500 ? 'Something went wrong' : 'That did not work');
  try {
    return await pages.render(request, reply, 'error', { title, message }, status);
  } catch (err) {
    request.log.error({ err }, 'could not render the error page');
    return reply.code(status).type('text/plain; charset=utf-8').send(`${title}\n\n${message}\n`);
  }
}

/** Fastify's and its plugins' client-side errors, in the words a person filling a form reads. */
function clientErrorMessage(err: FastifyError): string {
  if (err.code === 'FST_CSRF_INVALID_TOKEN' || err.code === 'FST_CSRF_MISSING_SECRET') {
    return 'This form has expired (perhaps you logged in or out in another window). Go back, reload the page and send it again.';
  }
  if (err.statusCode === 429) return 'Too many requests. Wait a minute and try again.';
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return 'Send the form from its page.';
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return 'The form was too large.';
  return 'The request could not be understood. Go back and try again.';
}

function clientStatus(err: FastifyError): number | null {
  if (err.code === 'FST_CSRF_INVALID_TOKEN' || err.code === 'FST_CSRF_MISSING_SECRET') return 403;
  return err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : null;
}

/**
 * The error and not-found handlers of a page area (MyAccount, the admin area): every error becomes a
 * page with a plain message and the right status, a lost database a 503 with Retry-After, anything
 * unexpected a logged 500 — never a stack trace.
 */
export function installPageErrorHandlers(app: FastifyInstance, pages: PageRenderer, area: { name: string; notFound: string }): void {
  app.setErrorHandler(async (err: FastifyError | AppError, request, reply) => {
    let status: number;
    let message: string;
    if (err instanceof AppError) {
      status = err.statusCode;
      message = err.message;
      if (err.retryAfter !== undefined) reply.header('retry-after', String(err.retryAfter));
    } else if (clientStatus(err) !== null) {
      status = clientStatus(err)!;
      message = clientErrorMessage(err);
      request.log.info({ code: err.code, status }, `${area.name} request refused`);
    } else if (isConnectionError(err)) {
      app.dependencies.recheck();
      request.log.warn({ err: { code: (err as NodeJS.ErrnoException).code, message: err.message } }, 'dependency unavailable');
      status = 503;
      message = 'Ferry cannot reach its database just now. Try again in a few seconds.';
      reply.header('retry-after', String(RETRY_AFTER_UNAVAILABLE_SECONDS));
    } else {
      request.log.error({ err }, `unhandled error in ${area.name}`);
      status = 500;
      message = 'Something went wrong on our side. It has been logged; try again later.';
    }
    return errorPage(pages, request, reply, status, message);
  });

  app.setNotFoundHandler(async (request, reply) => errorPage(pages, request, reply, 404, area.notFound));
}
