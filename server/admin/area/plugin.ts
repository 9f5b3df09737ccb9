import cookie from '@fastify/cookie';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import pages from './pages.js';
import queueDashboard, { QUEUE_API_PREFIX } from './queue-dashboard.js';
import { ADMIN_SESSION_COOKIE, ADMIN_SESSION_SECONDS, createAdminSessions, type AdminSession } from './sessions.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The staff session, on /admin routes; null when nobody is signed in. */
    adminSession: AdminSession | null;
  }
  interface FastifyContextConfig {
    /** An /admin route anyone may reach: the sign-in page and the stylesheet. */
    adminPublic?: boolean;
  }
}

/** Sets and clears the session cookie: it holds the session id and nothing else. */
export interface SessionCookie {
  set(reply: FastifyReply, session: AdminSession): void;
  clear(reply: FastifyReply): void;
}

/**
 * The admin area at /admin: server-rendered pages for staff (overview, licenses, reports,
 * statistics) and Bull's queue dashboard, all behind a session begun with ADMIN_TOKEN.
 *
 * Everything is registered inside this plugin, so the JSON API (/v1) keeps its own rules. The
 * session check sits here, above both the pages and the dashboard, so that no route of either can
 * be reached without it: pages send a stranger to the sign-in page, API calls answer 401.
 */
const adminArea: FastifyPluginAsync = async (app) => {
  const https = app.config.publicUrl.startsWith('https:');
  const sessions = createAdminSessions(app.redis, app.config.redisPrefix);
  const cookieOptions = { path: '/admin', httpOnly: true, sameSite: 'strict' as const, secure: https };
  const sessionCookie: SessionCookie = {
    set: (reply, session) => void reply.setCookie(ADMIN_SESSION_COOKIE, session.id, { ...cookieOptions, maxAge: ADMIN_SESSION_SECONDS }),
    clear: (reply) => void reply.clearCookie(ADMIN_SESSION_COOKIE, cookieOptions),
  };

  await app.register(cookie);
  app.decorateRequest('adminSession', null);
  // Pages for people, not API calls: kept out of the OpenAPI documentation at /docs.
  app.addHook('onRoute', (route) => {
    route.schema = { ...route.schema, hide: true };
  });

  app.addHook('onRequest', async (request, reply) => {
    // A form or a dashboard action sent from another site: SameSite=Strict already keeps the
    // cookie away; this refuses the request itself (the sign-in form has no session to bind to).
    if (!isSafeMethod(request.method) && !fromThisSite(request)) {
      return reply.code(403).type('text/plain; charset=utf-8').send('This request came from another site and was refused.');
    }
    const id = request.cookies[ADMIN_SESSION_COOKIE];
    if (id) {
      request.adminSession = await sessions.load(id);
      if (!request.adminSession) sessionCookie.clear(reply);
    }
    if (request.adminSession || request.routeOptions.config.adminPublic) return;
    if (request.url.startsWith(QUEUE_API_PREFIX)) {
      return reply.code(401).send({ error: { code: 'ADMIN_SESSION_REQUIRED', message: 'sign in at /admin/login first' } });
    }
    const next = isSafeMethod(request.method) ? `?next=${encodeURIComponent(request.url)}` : '';
    return reply.redirect(`/admin/login${next}`, 303);
  });

  // Pages hold customers' names and license data: no cache keeps them (the stylesheet says otherwise).
  app.addHook('onSend', async (_request, reply) => {
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
  });

  await app.register(pages, { sessions, sessionCookie });
  await app.register(queueDashboard, { prefix: '/queues' });
};

function isSafeMethod(method: string): boolean {
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS';
}

/**
 * Browsers name where a request comes from: `Sec-Fetch-Site` (every current browser), else
 * `Origin`. A client that sends neither is not a browser, and so not the victim of a forged request.
 */
function fromThisSite(request: FastifyRequest): boolean {
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined) return site === 'same-origin' || site === 'none';
  const origin = request.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === request.headers.host;
  } catch {
    return false; // `Origin: null`: a sandboxed or privacy-hidden origin, not one of our pages
  }
}

export default adminArea;
