import rateLimit from '@fastify/rate-limit';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from '../errors.js';

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The per-address budget of trial and activation calls together (RATE_LIMIT_PER_MINUTE): both are
     * how a new machine gets a license. An onRequest hook; throws 429 RATE_LIMITED with Retry-After.
     */
    limitActivations: (request: FastifyRequest) => Promise<void>;
  }
}

/**
 * Rate limits kept in Redis, so they hold across server instances. The plugin's per-route limits
 * would count trials and activations apart; one shared limiter counts them together.
 */
export default fp(
  async (app) => {
    await app.register(rateLimit, {
      global: false,
      redis: app.redis,
      nameSpace: `${app.config.redisPrefix}:rate:`,
      skipOnError: false,
    });
    const max = app.config.rateLimitPerMinute;
    const limiter = app.createRateLimit({ max, timeWindow: 60_000, keyGenerator: (request) => `activation:${request.ip}` });
    app.decorate('limitActivations', async (request: FastifyRequest) => {
      const result = await limiter(request);
      if (!result.isAllowed && result.isExceeded) {
        throw new AppError(
          'RATE_LIMITED', 429,
          `too many trial and activation requests from this address: at most ${max} a minute; retry in ${result.ttlInSeconds} s`,
          Math.max(1, result.ttlInSeconds),
        );
      }
    });
  },
  { name: 'rate-limit', dependencies: ['config', 'redis'] },
);
