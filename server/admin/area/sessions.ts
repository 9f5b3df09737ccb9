import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * Staff sessions of the admin area, in Redis so any server instance can answer. The cookie holds
 * only a random 32-byte id; the Redis key names its SHA-256, so a copy of Redis hands out no live
 * session. A session lasts a working day, however active, then staff sign in again.
 */
export const ADMIN_SESSION_COOKIE = 'ferry_admin';
export const ADMIN_SESSION_SECONDS = 8 * 3600;

export interface AdminSession {
  /** The random id from the cookie (never stored as such). */
  id: string;
  /** Every form of the session carries it; a POST without it is refused. */
  csrfToken: string;
  createdAt: number;
}

const digest = (text: string) => createHash('sha256').update(text).digest('hex');

export function createAdminSessions(redis: Redis, prefix: string) {
  const key = (id: string) => `${prefix}:admin-session:${digest(id)}`;
  return {
    async create(): Promise<AdminSession> {
      const session: AdminSession = { id: randomBytes(32).toString('base64url'), csrfToken: randomBytes(32).toString('base64url'), createdAt: Date.now() };
      await redis.set(key(session.id), JSON.stringify({ csrfToken: session.csrfToken, createdAt: session.createdAt }), 'EX', ADMIN_SESSION_SECONDS);
      return session;
    },

    /** The session of a cookie's id; null when unknown or ended. */
    async load(id: string): Promise<AdminSession | null> {
      if (!/^[A-Za-z0-9_-]{43}$/.test(id)) return null;
      const raw = await redis.get(key(id));
      if (!raw) return null;
      const { csrfToken, createdAt } = JSON.parse(raw) as { csrfToken: string; createdAt: number };
      return { id, csrfToken, createdAt };
    },

    async destroy(id: string): Promise<void> {
      await redis.del(key(id));
    },
  };
}

export type AdminSessions = ReturnType<typeof createAdminSessions>;

/** The form's token against the session's, in constant time. */
export function csrfTokenMatches(session: AdminSession, given: unknown): boolean {
  if (typeof given !== 'string' || given.length !== session.csrfToken.length) return false;
  return timingSafeEqual(Buffer.from(given), Buffer.from(session.csrfToken));
}
