import { createBullBoard } from '@bull-board/api';
import { BullAdapter } from '@bull-board/api/bullAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import helmet from '@fastify/helmet';
import type { FastifyPluginAsync } from 'fastify';


/** Where the dashboard lives, and where its JSON API (which answers 401 rather than redirecting) begins. */
export const QUEUE_DASHBOARD_PATH = '/admin/queues';
export const QUEUE_API_PREFIX = `${QUEUE_DASHBOARD_PATH}/api/`;

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
