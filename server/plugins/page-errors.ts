import type { FastifyReply, FastifyRequest } from 'fastify';

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
