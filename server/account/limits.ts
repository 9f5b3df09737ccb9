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
  loginPerAccount: { max: 10, windowMs: 15 * 60_000, subject: 'email' },
  loginPerAddress: { max: 50, windowMs: 15 * 60_000, subject: 'ip' },
  claimPerCustomer: { max: 10, windowMs: 3_600_000, subject: 'customer' },
  /** Registration, verification and reset mails to one address. */
  mailPerAccount: { max: 5, windowMs: 3_600_000, subject: 'email' },
  /** Registrations and mailed-link requests from one client address. */
  formsPerAddress: { max: 30, windowMs: 3_600_000, subject: 'ip' },
} as const;

type LimitName = keyof typeof LIMITS;

/**
 * Counters are keyed by a keyed hash of what they count (an email address, a client address), so
 * that Redis never holds the address itself; erasing an account still finds and deletes them.
 */
export function limitTag(config: Pick<Config, 'mailSecret'>, subject: string): string {
  return createHmac('sha256', config.mailSecret).update(`account-rate-limit:${subject.toLowerCase()}`).digest('hex').slice(0, 32);
}

export const emailTag = (config: Pick<Config, 'mailSecret'>, email: string) => limitTag(config, `email:${email}`);
export const ipTag = (config: Pick<Config, 'mailSecret'>, ip: string) => limitTag(config, `ip:${ip}`);
const customerTag = (config: Pick<Config, 'mailSecret'>, id: string) => limitTag(config, `customer:${id}`);

const globEscape = (text: string) => text.replace(/[*?[\]\\]/g, '\\$&');

/**
 * The Redis keys of every rate-limit counter of a customer, for the erasure: the portal's (by tag)
 * of their email and client addresses, and other counters keyed by one of those addresses as such
 * (the API's per-address budget of trials and activations).
 */
export function limitKeyPatterns(config: Pick<Config, 'mailSecret' | 'redisPrefix'>, email: string | null, ips: string[]): string[] {
  const base = `${config.redisPrefix}:rate:*`;
  return [
    ...(email ? [`${base}${emailTag(config, email)}`] : []),
    ...ips.flatMap((ip) => [`${base}${ipTag(config, ip)}`, `${base}:${globEscape(ip)}`]),
  ];
}

/** Counts one try of `subject` (the email address, client address or customer id the limit is about). */
export type Limiter = (request: FastifyRequest, subject: string) => Promise<void>;

const TAGS = { email: emailTag, ip: ipTag, customer: customerTag };

/** One limiter per name. Throws 429 RATE_LIMITED with the wait in words and in Retry-After. */
export function createLimiters(app: FastifyInstance): Record<LimitName, Limiter> {
  const make = (name: LimitName, message: string): Limiter => {
    const { max, windowMs, subject: kind } = LIMITS[name];
    const subjects = new WeakMap<FastifyRequest, string>();
    const limiter = app.createRateLimit({ max, timeWindow: windowMs, keyGenerator: (request) => `account:${name}:${subjects.get(request)}` });
    return async (request, subject) => {
      subjects.set(request, TAGS[kind](app.config, subject));
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
