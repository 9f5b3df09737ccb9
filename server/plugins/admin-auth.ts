import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import { AppError } from '../errors.js';

declare module 'fastify' {
  interface FastifyInstance {
    requireAdmin: (request: FastifyRequest) => Promise<void>;
    /** Tries `given` as the admin token for this request's client address: the one door to it. */
    tryAdminToken: (request: FastifyRequest, given: string) => Promise<boolean>;
  }
}

const digest = (text: string) => createHash('sha256').update(text).digest();

/** Whether `given` is the admin token, compared in constant time (digests, so lengths match too). */
export function isAdminToken(given: string, adminToken: string): boolean {
  return timingSafeEqual(digest(given), digest(adminToken));
}

/**
 * Tries of the admin token per client address, for the API's bearer token and the admin area's
 * sign-in together. Ten a quarter of an hour, and the token has 192 random bits besides.
 */
export const ADMIN_TOKEN_TRIES = { max: 10, windowSeconds: 15 * 60 } as const;

/**
 * Counts the try and answers the count and the seconds left of the window, in one step: the
 * counter is raised before the token is compared, so concurrent guesses cannot all slip in
 * while the count is read. The window starts at the first try.
 */
const COUNT_TRY = `
local tries = redis.call('INCR', KEYS[1])
if tries == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return { tries, redis.call('TTL', KEYS[1]) }`;

/** A right token gives its try back (only while the window lasts: never a count without expiry). */
const GIVE_BACK = `if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end return 0`;

export function createAdminTokenTries(redis: Redis, prefix: string, adminToken: string) {
  const key = (ip: string) => `${prefix}:admin-token-tries:${ip}`;
  return async (ip: string, given: string): Promise<boolean> => {
    const [tries, ttl] = (await redis.eval(COUNT_TRY, 1, key(ip), ADMIN_TOKEN_TRIES.windowSeconds)) as [number, number];
    if (tries > ADMIN_TOKEN_TRIES.max) {
      // Refused unseen, the right token too: a guesser learns nothing from tries past the limit.
      const wait = Math.max(1, ttl);
      const minutes = Math.ceil(wait / 60);
      throw new AppError('RATE_LIMITED', 429, `Too many wrong tokens from your address. Try again in ${minutes} minute${minutes === 1 ? '' : 's'}.`, wait);
    }
    const right = isAdminToken(given, adminToken);
    // Staff using the right token many times a day are never stopped.
    if (right) await redis.eval(GIVE_BACK, 1, key(ip));
    return right;
  };
}

/** `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time and counted. Also the admin area's sign-in. */
export default fp(
  async (app) => {
    const tryToken = createAdminTokenTries(app.redis, app.config.redisPrefix, app.config.adminToken);
    app.decorate('tryAdminToken', (request: FastifyRequest, given: string) => tryToken(request.ip, given));
    app.decorate('requireAdmin', async (request: FastifyRequest) => {
      const given = /^Bearer (\S+)$/.exec(request.headers.authorization ?? '')?.[1];
      if (given === undefined || !(await tryToken(request.ip, given))) {
        throw new AppError('ADMIN_AUTH_REQUIRED', 401, 'this call needs Authorization: Bearer <ADMIN_TOKEN>');
      }
    });
  },
  { name: 'admin-auth', dependencies: ['config', 'redis'] },
);
