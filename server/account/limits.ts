import { createHmac } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';

/**
 * The portal's rate limits, counted in Redis through @fastify/rate-limit so that they hold across
 * server instances. Why these numbers: a person mistyping a password a few times is never stopped,
 * a guesser is stopped after ten tries an account; an office behind one address can still log in
 * dozens of people; a claim code (10 characters of 30) cannot be guessed at ten tries an hour.
 */
export const LIMITS = {
  loginPerAccount: { max: 10, windowMs: 15 * 60_000 },
  loginPerAddress: { max: 50, windowMs: 15 * 60_000 },
  claimPerCustomer: { max: 10, windowMs: 3_600_000 },
  /** Registration, verification and reset mails to one address. */
  mailPerAccount: { max: 5, windowMs: 3_600_000 },
  /** Registrations and mailed-link requests from one client address. */
  formsPerAddress: { max: 30, windowMs: 3_600_000 },
} as const;

type LimitName = keyof typeof LIMITS;

/**
 * Counters of an email address are keyed by a keyed hash of it, so that Redis never holds the
 * address; erasing an account still deletes them (by this tag).
 */
export function emailTag(config: Pick<Config, 'mailSecret'>, email: string): string {
  return createHmac('sha256', config.mailSecret).update(`account-rate-limit:${email.toLowerCase()}`).digest('hex').slice(0, 32);
}

/** The Redis keys of every counter of an address, for the erasure. */
export function limitKeyPattern(config: Pick<Config, 'mailSecret' | 'redisPrefix'>, email: string): string {
  return `${config.redisPrefix}:rate:*${emailTag(config, email)}`;
}

export type Limiter = (request: FastifyRequest, subject: string) => Promise<void>;

/**
 * One limiter per name; `subject` is what is counted (an address, a customer id, a client IP).
 * Throws 429 RATE_LIMITED with the wait in words and in Retry-After.
 */
export function createLimiters(app: FastifyInstance): Record<LimitName, Limiter> {
  const make = (name: LimitName, message: string): Limiter => {
    const { max, windowMs } = LIMITS[name];
    const subjects = new WeakMap<FastifyRequest, string>();
    const limiter = app.createRateLimit({ max, timeWindow: windowMs, keyGenerator: (request) => `account:${name}:${subjects.get(request)}` });
    return async (request, subject) => {
      subjects.set(request, subject);
      const result = await limiter(request);
      if (!result.isAllowed && result.isExceeded) {
        const minutes = Math.max(1, Math.ceil(result.ttlInSeconds / 60));
        throw new AppError('RATE_LIMITED', 429, `${message} Try again in ${minutes} minute${minutes === 1 ? '' : 's'}.`, Math.max(1, result.ttlInSeconds));
      }
    };
  };
  return {
    loginPerAccount: make('loginPerAccount', 'Too many login attempts for this account.'),
    loginPerAddress: make('loginPerAddress', 'Too many login attempts from your network.'),
    claimPerCustomer: make('claimPerCustomer', 'Too many claim codes tried.'),
    mailPerAccount: make('mailPerAccount', 'We have sent several messages to this address already.'),
    formsPerAddress: make('formsPerAddress', 'Too many requests from your network.'),
  };
}
