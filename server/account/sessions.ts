import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * Portal sessions in Redis, so any server instance can answer. The browser's cookie holds only a
 * random 32-byte id; Redis keys name its SHA-256 (a copy of Redis does not hand out live sessions).
 * A set per customer lists their sessions, so that a password change or a deletion ends them all.
 */
export const SESSION_COOKIE = 'ferry_session';
/** Idle time after which a session ends; each request starts it again, up to the absolute limit. */
export const SESSION_IDLE_SECONDS = 2 * 3600;
/** However active, a session ends after this: the customer logs in again. */
const SESSION_MAX_MS = 7 * 86_400_000;

export interface Session {
  /** The random id from the cookie (never stored as such). */
  id: string;
  customerId: number;
  createdAt: number;
}

const digest = (id: string) => createHash('sha256').update(id).digest('hex');

export function sessionKeys(prefix: string) {
  return {
    session: (id: string) => `${prefix}:session:${digest(id)}`,
    sessionByDigest: (hex: string) => `${prefix}:session:${hex}`,
    ofCustomer: (customerId: number) => `${prefix}:customer-sessions:${customerId}`,
  };
}

export function createSessionStore(redis: Redis, prefix: string) {
  const keys = sessionKeys(prefix);
  return {
    async create(customerId: number): Promise<Session> {
      const id = randomBytes(32).toString('base64url');
      const session: Session = { id, customerId, createdAt: Date.now() };
      await redis
        .multi()
        .set(keys.session(id), JSON.stringify({ customerId, createdAt: session.createdAt }), 'EX', SESSION_IDLE_SECONDS)
        .sadd(keys.ofCustomer(customerId), digest(id))
        .expire(keys.ofCustomer(customerId), Math.ceil(SESSION_MAX_MS / 1000))
        .exec();
      return session;
    },

    /** The session of a cookie's id, its idle time started again; null when unknown or too old. */
    async load(id: string): Promise<Session | null> {
      if (!/^[A-Za-z0-9_-]{43}$/.test(id)) return null;
      const raw = await redis.getex(keys.session(id), 'EX', SESSION_IDLE_SECONDS);
      if (!raw) return null;
      const { customerId, createdAt } = JSON.parse(raw) as { customerId: number; createdAt: number };
      if (Date.now() - createdAt > SESSION_MAX_MS) {
        await this.destroy({ id, customerId, createdAt });
        return null;
      }
      return { id, customerId, createdAt };
    },

    async destroy(session: Session): Promise<void> {
      await redis.multi().del(keys.session(session.id)).srem(keys.ofCustomer(session.customerId), digest(session.id)).exec();
    },

    /** Ends every session of the customer but `keep` (the one that changed the password, say). */
    async destroyAllOf(customerId: number, keep?: Session): Promise<void> {
      await destroyCustomerSessions(redis, prefix, customerId, keep ? digest(keep.id) : undefined);
    },
  };
}

export type SessionStore = ReturnType<typeof createSessionStore>;

/** Also used by the erasure, which runs outside a request (the retention job). */
export async function destroyCustomerSessions(redis: Redis, prefix: string, customerId: number, keepDigest?: string): Promise<void> {
  const keys = sessionKeys(prefix);
  const digests = await redis.smembers(keys.ofCustomer(customerId));
  const ending = digests.filter((d) => d !== keepDigest);
  if (ending.length === 0) return;
  const multi = redis.multi();
  for (const d of ending) multi.del(keys.sessionByDigest(d));
  if (keepDigest === undefined) multi.del(keys.ofCustomer(customerId));
  else multi.srem(keys.ofCustomer(customerId), ...ending);
  await multi.exec();
}
