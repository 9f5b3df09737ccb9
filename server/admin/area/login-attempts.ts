import type { Redis } from 'ioredis';

/**
 * Failed sign-ins per client address, counted in Redis so that the limit holds across server
 * instances. Only failures count: staff signing in many times a day are never stopped, while a
 * guesser gets ten tries a quarter of an hour (and the token has 192 random bits besides).
 */
export const LOGIN_FAILURES = { max: 10, windowSeconds: 15 * 60 } as const;

export function createLoginAttempts(redis: Redis, prefix: string) {
  const key = (ip: string) => `${prefix}:admin-login-failures:${ip}`;
  return {
    /** Seconds this address must wait before trying again; 0 when it may try now. */
    async waitSeconds(ip: string): Promise<number> {
      const [[, count], [, ttl]] = (await redis.multi().get(key(ip)).ttl(key(ip)).exec()) as [[unknown, string | null], [unknown, number]];
      return Number(count ?? 0) >= LOGIN_FAILURES.max ? Math.max(1, ttl) : 0;
    },

    async failed(ip: string): Promise<void> {
      // The window starts at the first failure: NX keeps later failures from extending it.
      await redis.multi().incr(key(ip)).expire(key(ip), LOGIN_FAILURES.windowSeconds, 'NX').exec();
    },
  };
}

export type LoginAttempts = ReturnType<typeof createLoginAttempts>;
