import { readFileSync } from 'node:fs';
import { installPageErrorHandlers } from '../../plugins/page-errors.js';
import { fileURLToPath } from 'node:url';
import formbody from '@fastify/formbody';
import helmet from '@fastify/helmet';
import { pageSecurityHeaders } from '../../plugins/page-security.js';
import view from '@fastify/view';
import { Eta } from 'eta';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../errors.js';
import type { SessionCookie } from './plugin.js';
import { csrfTokenMatches, type AdminSessions } from './sessions.js';
import { formatters } from './format.js';
import signInRoutes from './routes/sign-in.js';
import overviewRoutes from './routes/overview.js';
import licenseRoutes from './routes/licenses.js';
import reportRoutes from './routes/reports.js';
import statisticsRoutes from './routes/statistics.js';
import newsRoutes from './routes/news.js';
import licenseChangeRoutes from './routes/license-changes.js';
import orderRoutes from './routes/orders.js';
import releaseRoutes from './routes/releases.js';

/** Views stay in the source tree: from dist/server/admin/area/ this is server/admin/area/views/. */
const VIEWS = fileURLToPath(new URL('../../../../server/admin/area/views/', import.meta.url));
const STYLESHEET = readFileSync(`${VIEWS}admin.css`);

export interface PagesOptions {
  sessions: AdminSessions;
  sessionCookie: SessionCookie;
}

/** What the page routes share. */
export interface AdminPages extends PagesOptions {
  /** Renders a view in the layout, with the session's CSRF token for its forms. */
  render(request: FastifyRequest, reply: FastifyReply, page: string, data?: Record<string, unknown>, status?: number): Promise<FastifyReply>;
}

/** What a page says after a form was sent and the browser redirected (`?done=`): fixed words, never input. */
const NOTICES: Record<string, string> = {
  'signed-out': 'You are signed out.',
  revoked: 'The license is revoked: every machine loses it at its next validation.',
  'report-filed': 'The export-compliance report is filed. Its downloads are byte-identical every time.',
  'release-published': 'The release is published: the download page, install.sh and ferry update offer it now.',
  'rollup-queued': 'The usage roll-up is queued; the statistics show its figures once the job has run.',
  'news-sending': 'The message is being sent: everyone who chose news gets it once. Refresh to follow it.',
  'news-started-before': 'This message was sent before; it is not sent again.',
  suspended: 'The license is suspended: its machines are refused at their next validation until it is reinstated.',
  reinstated: 'The license is reinstated: its machines work again at their next validation.',
  extended: 'The trial is extended: its machine gets the new end at its next validation.',
  'seats-changed': 'The seats are changed. The license keeps its key.',
  'rebind-budget-changed': 'The rebind budget is changed: its machines may move to a new machine id that many times a year.',
  'order-paid': 'The order is paid and complete: the customer gets the receipt (with the key of a new license) by mail.',
  'order-paid-before': 'This order was already complete: nothing was issued again.',
  'news-resumed': 'The send is resumed: what is pending is queued again, and nobody gets it twice.',
};

/**
 * The admin area's own pages: server-rendered, readable without JavaScript, under a strict CSP
 * (nothing but this site's stylesheet; charts are inline SVG). Forms, views and helmet are
 * registered here, beside the queue dashboard rather than above it: the dashboard brings its own
 * view engine and needs a looser CSP.
 */
const pages: FastifyPluginAsync<PagesOptions> = async (app, options) => {
  const https = app.config.publicUrl.startsWith('https:');
  await app.register(formbody);
  // Our own pages may see where a click came from (and browsers then name the origin of a form); no one else.
  await app.register(helmet, pageSecurityHeaders(https, 'same-origin'));
  await app.register(view, {
    engine: { eta: new Eta({ autoEscape: true }) },
    templates: VIEWS,
    layout: 'layout',
    production: true,
    defaultContext: { fmt: formatters },
  });

  const adminPages: AdminPages = {
    ...options,
    async render(request, reply, page, data = {}, status = 200) {
      const done = String((request.query as Record<string, unknown> | undefined)?.done ?? '');
      return reply.code(status).view(page, {
        csrfToken: request.adminSession?.csrfToken ?? '',
        signedIn: request.adminSession !== null,
        page,
        errors: {},
        values: {},
        notice: NOTICES[done] ?? null,
        ...data,
      });
    },
  };

  // Every form of a session carries the session's token; the sign-in form has none to carry.
  app.addHook('preHandler', async (request) => {
    if (request.method !== 'POST' || request.routeOptions.config.adminPublic) return;
    const given = (request.body as Record<string, unknown> | undefined)?._csrf;
    if (!request.adminSession || !csrfTokenMatches(request.adminSession, given)) {
      throw new AppError('CSRF_TOKEN_INVALID', 403, 'This form has expired (perhaps you signed out and in again). Go back, reload the page and send it again.');
    }
  });

  app.get('/admin.css', { config: { adminPublic: true } }, async (_request, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=3600').send(STYLESHEET));

  await signInRoutes(app, adminPages);
  await overviewRoutes(app, adminPages);
  await licenseRoutes(app, adminPages);
  await licenseChangeRoutes(app, adminPages);
  await orderRoutes(app, adminPages);
  await reportRoutes(app, adminPages);
  await statisticsRoutes(app, adminPages);
  await newsRoutes(app, adminPages);
  await releaseRoutes(app, adminPages);

  installPageErrorHandlers(app, adminPages, { name: 'the admin area', notFound: 'There is no such page in the admin area.' });
};

export default pages;
