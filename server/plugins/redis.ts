import fp from 'fastify-plugin';
import { Redis } from 'ioredis';

declare module 'fastify' {
  interface FastifyInstance {
    redis: Redis;
  }
}

/**
 * The request-path Redis client (rate limits, sessions). Commands fail at once while Redis is away
 * (no offline queue) so a request answers 503 instead of hanging; the client reconnects by itself.
 */
export function createRedis(url: string, name: string): Redis {
  return new Redis(url, {
    connectionName: name,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 3_000,
    retryStrategy: (attempt) => Math.min(attempt * 250, 2_000),
  });
}

export default fp(
  async (app) => {
    const redis = createRedis(app.config.redisUrl, 'ferry-server');
    // ioredis reports each failed reconnect; the dependency monitor logs the state changes instead.
    redis.on('error', () => {});
    app.decorate('redis', redis);
    app.addHook('onClose', async () => {
      redis.disconnect();
    });
  },
  { name: 'redis', dependencies: ['config'] },
);
