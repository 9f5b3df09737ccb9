import { createHmac } from 'node:crypto';
import { installPageErrorHandlers } from '../plugins/page-errors.js';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import cookie from '@fastify/cookie';
import csrf from '@fastify/csrf-protection';
import formbody from '@fastify/formbody';
import helmet from '@fastify/helmet';
import { pageSecurityHeaders } from '../plugins/page-security.js';
import view from '@fastify/view';
import { Eta } from 'eta';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';
import { registerAccountJobs } from './jobs.js';
import { createLimiters, type Limiter } from './limits.js';
import { accounts, type AccountRow } from './repository.js';
import { createSessionStore, SESSION_COOKIE, type Session, type SessionStore } from './sessions.js';
import authRoutes from './routes/auth.js';
import dataRoutes from './routes/data.js';
import settingsRoutes from './routes/settings.js';
import purchaseRoutes from './routes/purchase.js';
import closeRoutes from './routes/close.js';
import privacyRoutes from './routes/privacy.js';
import seatRoutes from './routes/seats.js';

/** Views stay in the source tree: from dist/server/account/ this is server/account/views/. */
const VIEWS = fileURLToPath(new URL('../../../server/account/views/', import.meta.url));
const STYLESHEET = readFileSync(`${VIEWS}style.css`);

export interface SignedIn {
  session: Session;
  account: AccountRow;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The portal's signed-in customer, on /account routes; null when nobody is. */
    signedIn: SignedIn | null;
  }
  interface FastifyContextConfig {
    /** A portal page only a signed-in customer may see; others are sent to the login page. */
    signedIn?: boolean;
  }
}

/** What the portal's route modules share. */
export interface Portal {
  sessions: SessionStore;
  limits: ReturnType<typeof createLimiters>;
  /** Renders a page in the layout, with the CSRF token every form carries. */
  render(request: FastifyRequest, reply: FastifyReply, page: string, data?: Record<string, unknown>, status?: number): Promise<FastifyReply>;
  /** The signed-in customer of a `signedIn` route (the hook has made sure there is one). */
  account(request: FastifyRequest): AccountRow;
  session(request: FastifyRequest): Session;
  /** Starts a fresh session (a new id: never one from before the login) and sets its cookie. */
  signIn(reply: FastifyReply, customerId: number): Promise<void>;
  signOut(request: FastifyRequest, reply: FastifyReply): Promise<void>;
  /** An absolute link for mail. */
  link(path: string): string;
}

export type { Limiter };

/** What a page says after a form was sent and the browser redirected (`?done=`): fixed words, never input. */
const NOTICES: Record<string, string> = {
  'logged-out': 'You are logged out.',
  'password-reset': 'Your new password is saved, and every session was logged out. Log in with the new password.',
  'profile-saved': 'Your profile is saved.',
  'password-changed': 'Your password is changed. Other sessions were logged out; we sent you a notice.',
  'mail-choices-saved': 'Your mail choices are saved. They take effect at once.',
  'trial-claimed': 'The trial is claimed: it is now registered to your account.',
  'machine-deactivated': 'The machine is deactivated: its seat is free.',
  'seats-removed': 'The seats are removed. The license keeps its key.',
  'cancelled': 'Your subscription is cancelled.',
};

/** What CSRF tokens are bound to: the session, or (before logging in) no session, which the library wants non-empty. */
const csrfUserInfo = (request: FastifyRequest) => request.signedIn?.session.id ?? 'no-session';

/**
 * MyAccount, the customer portal at /account: server-rendered pages that work without JavaScript.
 * Cookies, forms, CSRF, helmet and views are registered here, inside this plugin, so that the JSON
 * API (/v1) keeps its own rules (it answers 415 to forms) and its JSON errors.
 */
const accountPlugin: FastifyPluginAsync = async (app) => {
  const config = app.config;
  const https = config.publicUrl.startsWith('https:');
  // The retention job erases cancelled accounts past their retention with the portal's erasure.
  registerAccountJobs();
  // Signs the CSRF secret's cookie and keys the CSRF tokens: derived from the data folder's secret.
  const cookieSecret = createHmac('sha256', config.mailSecret).update('account-cookies').digest('base64url');

  await app.register(cookie, { secret: cookieSecret });
  await app.register(formbody);
  await app.register(csrf, {
    cookieKey: 'ferry_csrf',
    cookieOpts: { path: '/account', httpOnly: true, sameSite: 'lax', secure: https, signed: true },
    // Tokens are bound to the session, so a token from before a login or logout is refused.
    getUserInfo: csrfUserInfo,
    getToken: (request: FastifyRequest) => (request.body as Record<string, string> | undefined)?._csrf ?? '',
    csrfOpts: { hmacKey: cookieSecret },
  });
  // Mailed links carry tokens in the address: never pass it on.
  await app.register(helmet, pageSecurityHeaders(https, 'no-referrer'));
  await app.register(view, {
    engine: { eta: new Eta({ autoEscape: true }) },
    templates: VIEWS,
    layout: 'layout',
    production: true,
    defaultContext: { product: 'Ferry' },
  });

  const sessions = createSessionStore(app.redis, config.redisPrefix);
  const cookieOptions = { path: '/account', httpOnly: true, sameSite: 'lax' as const, secure: https };

  app.decorateRequest('signedIn', null);
  // Pages for people, not API calls: kept out of the OpenAPI documentation at /docs.
  app.addHook('onRoute', (route) => {
    route.schema = { ...route.schema, hide: true };
  });

  app.addHook('onRequest', async (request, reply) => {
    if (request.url === '/account/style.css') return;
    const id = request.cookies[SESSION_COOKIE];
    if (!id) return;
    const session = await sessions.load(id);
    const account = session ? await accounts.byId(app.db, session.customerId) : null;
    if (session && account) {
      request.signedIn = { session, account };
      return;
    }
    if (session) await sessions.destroy(session);
    reply.clearCookie(SESSION_COOKIE, cookieOptions);
  });

  // Pages hold personal data: no cache keeps them.
  app.addHook('onSend', async (request, reply) => {
    if (request.url !== '/account/style.css') reply.header('cache-control', 'no-store');
  });

  // Signed-in pages send strangers to the login page first; every POST must carry the form's token.
  app.addHook('preHandler', (request, reply, done) => {
    if (request.routeOptions.config.signedIn && !request.signedIn) {
      const next = request.method === 'GET' ? `?next=${encodeURIComponent(request.url)}` : '';
      reply.redirect(`/account/login${next}`, 303);
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      app.csrfProtection(request, reply, done);
      return;
    }
    done();
  });

  const portal: Portal = {
    sessions,
    limits: createLimiters(app),
    async render(request, reply, page, data = {}, status = 200) {
      const csrfToken = reply.generateCsrf({ userInfo: csrfUserInfo(request) });
      return reply.code(status).view(page, {
        csrfToken,
        signedIn: request.signedIn !== null,
        page,
        errors: {},
        values: {},
        notice: NOTICES[String((request.query as Record<string, unknown> | undefined)?.done ?? '')] ?? null,
        ...data,
      });
    },
    account(request) {
      if (!request.signedIn) throw new AppError('SIGN_IN_REQUIRED', 403, 'Log in first.');
      return request.signedIn.account;
    },
    session(request) {
      if (!request.signedIn) throw new AppError('SIGN_IN_REQUIRED', 403, 'Log in first.');
      return request.signedIn.session;
    },
    async signIn(reply, customerId) {
      const session = await sessions.create(customerId);
      reply.setCookie(SESSION_COOKIE, session.id, cookieOptions);
    },
    async signOut(request, reply) {
      if (request.signedIn) await sessions.destroy(request.signedIn.session);
      request.signedIn = null;
      reply.clearCookie(SESSION_COOKIE, cookieOptions);
    },
    link: (path) => `${app.config.publicUrl}${path}`,
  };

  app.get('/style.css', async (_request, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=3600').send(STYLESHEET));

  await authRoutes(app, portal);
  await dataRoutes(app, portal);
  await settingsRoutes(app, portal);
  await purchaseRoutes(app, portal);
  await seatRoutes(app, portal);
  await closeRoutes(app, portal);
  await privacyRoutes(app, portal);

  installPageErrorHandlers(app, portal, { name: 'MyAccount', notFound: 'There is no such page in MyAccount.' });
};

export default accountPlugin;
