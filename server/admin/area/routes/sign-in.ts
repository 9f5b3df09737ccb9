import type { FastifyInstance } from 'fastify';
import { field } from '../forms.js';
import type { AdminPages } from '../pages.js';

/** Where to go after signing in: only a page of the admin area (never another site). */
function safeNext(next: unknown): string {
  return typeof next === 'string' && /^\/admin(\/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$/.test(next) && !next.startsWith('/admin//') ? next : '/admin';
}

/** Any wrong token gets these words, whatever it was: nothing to learn from the answer. */
const WRONG_TOKEN = 'That is not the admin token.';

/** Sign in with ADMIN_TOKEN, sign out. */
export default async function signInRoutes(app: FastifyInstance, pages: AdminPages): Promise<void> {
  const title = 'Sign in';

  app.get('/login', { config: { adminPublic: true } }, async (request, reply) => {
    const next = safeNext(field(request.query, 'next'));
    if (request.adminSession) return reply.redirect(next, 303);
    return pages.render(request, reply, 'login', { title, next });
  });

  app.post('/login', { config: { adminPublic: true } }, async (request, reply) => {
    const next = safeNext(field(request.body, 'next'));
    // Counted with the API's bearer token: one limit per address for both doors (admin-auth.ts).
    if (!(await app.tryAdminToken(request, field(request.body, 'token')))) {
      request.log.warn({ ip: request.ip }, 'admin sign-in refused: wrong token');
      return pages.render(request, reply, 'login', { title, next, errors: { token: WRONG_TOKEN } }, 401);
    }
    // A new session every time: never one that existed before the sign-in.
    if (request.adminSession) await pages.sessions.destroy(request.adminSession.id);
    const session = await pages.sessions.create();
    pages.sessionCookie.set(reply, session);
    request.log.info({ ip: request.ip }, 'admin signed in');
    return reply.redirect(next, 303);
  });

  app.post('/logout', async (request, reply) => {
    await pages.sessions.destroy(request.adminSession!.id);
    pages.sessionCookie.clear(reply);
    return reply.redirect('/admin/login?done=signed-out', 303);
  });
}
