import { createBullBoard } from '@bull-board/api';
import { BullAdapter } from '@bull-board/api/bullAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import helmet from '@fastify/helmet';
import type { FastifyPluginAsync } from 'fastify';


/** Where the dashboard lives, and where its JSON API (which answers 401 rather than redirecting) begins. */
export const QUEUE_DASHBOARD_PATH = '/admin/queues';
export const QUEUE_API_PREFIX = `${QUEUE_DASHBOARD_PATH}/api/`;

/** Fixed in a corner: the dashboard's own layout fills the window and would cover anything above it. */
const BACK_LINK =
  '<p id="ferry-back" style="position:fixed;left:.75rem;bottom:.75rem;z-index:2147483647;margin:0;padding:.4rem .9rem;' +
  'border-radius:4px;background:#0b5cad;box-shadow:0 1px 4px rgba(0,0,0,.3);font:600 .95rem/1.5 system-ui,sans-serif">' +
  '<a href="/admin" style="color:#fff">\u2190 Back to the admin area</a></p>';

/**
 * bull-board's dashboard of the Bull queues (mail, marketing-mail, campaigns, reminders, export-report, usage-rollup,
 * retention): counts, jobs, their data and errors, retry and clean. Registered by the admin area,
 * below its session check. Its single-page app needs inline styles, so its CSP is its own, not the
 * strict one of our pages; it still loads nothing from other sites (the UI falls back from its
 * web font to the system's).
 */
const queueDashboard: FastifyPluginAsync = async (app) => {
  await app.register(helmet, {
    global: true,
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:'],
        fontSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        objectSrc: ["'none'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'self'"],
      },
    },
    strictTransportSecurity: app.config.publicUrl.startsWith('https:') ? { maxAge: 31_536_000 } : false,
    referrerPolicy: { policy: 'no-referrer' },
  });

  // The dashboard is a page of its own, without the admin area's navigation: its HTML gets a
  // visible way back, in a corner (bull-board's own links hide in a menu). An inline style is within
  // its CSP; no script is added.
  app.addHook('onSend', async (_request, reply, payload) => {
    if (typeof payload !== 'string' || !String(reply.getHeader('content-type') ?? '').startsWith('text/html')) return payload;
    return payload.replace(/<body([^>]*)>/, `<body$1>${BACK_LINK}`);
  });

  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(QUEUE_DASHBOARD_PATH);
  createBullBoard({
    queues: app.jobs.queues.all().map((queue) => new BullAdapter(queue)),
    serverAdapter,
    options: {
      uiConfig: {
        boardTitle: 'Ferry jobs',
        miscLinks: [{ text: 'Back to the admin area', url: '/admin' }],
        hideDocsLink: true,
      },
    },
  });
  await app.register(serverAdapter.registerPlugin());
};

export default queueDashboard;
