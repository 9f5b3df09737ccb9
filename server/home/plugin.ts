import { fileURLToPath } from 'node:url';
import helmet from '@fastify/helmet';
import view from '@fastify/view';
import { Eta } from 'eta';
import type { FastifyPluginAsync } from 'fastify';
import { pageSecurityHeaders } from '../plugins/page-security.js';

/** Views stay in the source tree: from dist/server/home/ this is server/home/views/. */
const VIEWS = fileURLToPath(new URL('../../../server/home/views/', import.meta.url));

/** Where a visitor goes from the home page. The download page is linked once a route serves it. */
const DESTINATIONS = [
  { href: '/download', text: 'Download ferry', about: 'the agent for your machine' },
  { href: '/account', text: 'MyAccount', about: 'register, claim your trial, buy and manage licenses' },
  { href: '/docs', text: 'API documentation', about: 'the licensing API the agent talks to' },
];

/**
 * `GET /`: the landing page, server-rendered like the portal's pages (its stylesheet, the same
 * strict CSP, no script), so that an operator's first request answers something useful.
 */
const homePlugin: FastifyPluginAsync = async (app) => {
  await app.register(helmet, pageSecurityHeaders(app.config.publicUrl.startsWith('https:'), 'same-origin'));
  await app.register(view, { engine: { eta: new Eta({ autoEscape: true }) }, templates: VIEWS, production: true });
  const trialDays = Math.round(app.config.trialLengthMs / 86_400_000);

  app.get('/', { schema: { hide: true } }, async (_request, reply) => {
    const links = DESTINATIONS.filter((d) => d.href !== '/download' || app.hasRoute({ method: 'GET', url: '/download' }));
    return reply.header('cache-control', 'public, max-age=300').view('home', { links, trialDays });
  });
};

export default homePlugin;
