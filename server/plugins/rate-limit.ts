import rateLimit from '@fastify/rate-limit';
import fp from 'fastify-plugin';

/**
 * Per-address limits kept in Redis, so they hold across server instances. Off by default: a route
 * opts in with `config: { rateLimit: app.activationRateLimit }`.
 */
declare module 'fastify' {
  interface FastifyInstance {
    activationRateLimit: { max: number; timeWindow: number };
  }
}

export default fp(
  async (app) => {
    await app.register(rateLimit, {
      global: false,
      redis: app.redis,
      nameSpace: 'ferry:rate:',
      skipOnError: false,
      errorResponseBuilder: (_request, context) => ({
        statusCode: 429,
        code: 'RATE_LIMITED',
        message: `too many requests from this address: at most ${context.max} a minute; retry in ${context.after}`,
      }),
    });
    app.decorate('activationRateLimit', { max: app.config.rateLimitPerMinute, timeWindow: 60_000 });
  },
  { name: 'rate-limit', dependencies: ['config', 'redis'] },
);
