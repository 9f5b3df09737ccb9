import Fastify, { type FastifyInstance } from 'fastify';
import type { Config } from './config.js';
import { installErrorHandlers } from './errors.js';
import { redactLogArguments, serializeRequest } from './log-redaction.js';
import { logTransport } from './log-output.js';
import configPlugin from './plugins/config.js';
import mysqlPlugin from './plugins/mysql.js';
import redisPlugin from './plugins/redis.js';
import dependenciesPlugin from './plugins/dependencies.js';
import signingKeysPlugin from './plugins/signing-keys.js';
import rateLimitPlugin from './plugins/rate-limit.js';
import adminAuthPlugin from './plugins/admin-auth.js';
import swaggerPlugin from './plugins/swagger.js';
import jobsPlugin from './plugins/jobs.js';
import metricsPlugin from './plugins/metrics.js';
import licenseServicePlugin from './licenses/plugin.js';
import healthRoutes from './health/routes.js';
import licenseRoutes from './licenses/routes.js';
import rebindRoutes from './licenses/rebind-routes.js';
import usageRoutes from './usage/routes.js';
import adminRoutes from './admin/routes.js';
import reportRoutes from './admin/reports-routes.js';
import unsubscribeRoutes from './mail/unsubscribe-routes.js';
import accountPlugin from './account/plugin.js';
import adminAreaPlugin from './admin/area/plugin.js';
import homePlugin from './home/plugin.js';
import paymentsPlugin from './payments/plugin.js';
import releaseRoutes from './releases/routes.js';

/**
 * The whole server at a glance: external plugins, then ours, then the routes, one error handler.
 * The database must already be migrated (main.ts does it before building the app).
 */
export async function buildApp(config: Config): Promise<FastifyInstance> {
  const app = Fastify({
    logger: {
      level: config.logLevel,
      redact: ['req.headers.authorization', 'req.headers.cookie'],
      // Mailed tokens and unsubscribe keys travel in addresses: never logged (log-redaction.ts).
      serializers: { req: serializeRequest },
      hooks: { logMethod: redactLogArguments },
      ...logTransport(),
    },
    trustProxy: config.trustProxy,
    bodyLimit: 1024 * 1024,
  });

  await app.register(configPlugin, { config });
  await app.register(mysqlPlugin);
  await app.register(redisPlugin);
  await app.register(dependenciesPlugin);
  await app.register(signingKeysPlugin);
  await app.register(rateLimitPlugin);
  await app.register(adminAuthPlugin);
  await app.register(swaggerPlugin);
  await app.register(jobsPlugin);

  await app.register(licenseServicePlugin);

  // A request that lost its connection makes the monitor look again now, not at its next tick.
  installErrorHandlers(app, () => app.dependencies.recheck());

  // Before the routes, so that its hook counts every one of them; after the error handler, which its route uses.
  await app.register(metricsPlugin);

  await app.register(healthRoutes);
  await app.register(licenseRoutes);
  await app.register(rebindRoutes);
  await app.register(usageRoutes);
  await app.register(adminRoutes);
  await app.register(reportRoutes);
  await app.register(unsubscribeRoutes);
  // Payment providers: the Stripe webhook (/v1/payments/stripe/webhook), and the checkout the portal opens
  await app.register(paymentsPlugin);

  // MyAccount, the customer portal (/account)
  await app.register(accountPlugin, { prefix: '/account' });
  app.get('/privacy', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/account/privacy', 301));

  // Getting the agent: /download, /install.sh
  await app.register(releaseRoutes);

  // The admin area (/admin)
  await app.register(adminAreaPlugin, { prefix: '/admin' });

  // The landing page (/)
  await app.register(homePlugin);

  return app;
}
