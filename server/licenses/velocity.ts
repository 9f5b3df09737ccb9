import { createHmac, randomBytes } from 'node:crypto';
import type { PoolConnection, RowDataPacket } from 'mysql2/promise';
import type { Redis } from 'ioredis';
import { AppError } from '../errors.js';
import { licenseEvents, type LicenseRow } from './repository.js';

/**
 * How fast new machines may arrive, beyond the per-address rate limit (RATE_LIMIT_PER_MINUTE):
 *
 * - per license, new machines (activations of a fingerprint the license has not had) within an
 *   hour and within a day: a key passed round, each machine activating and deactivating in turn,
 *   stays within its seats but not within this. A license may always take as many as its seats.
 * - per client address, new trials within a day: a script that makes up machine ids gets a trial
 *   per id otherwise.
 *
 * Refusals are 429 with Retry-After (when the oldest arrival leaves the window) and a license
 * event with the reason; a refused trial has no license, and its event names none.
 */

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

export interface VelocityLimits {
  newMachinesPerLicensePerHour: number;
  newMachinesPerLicensePerDay: number;
  trialsPerAddressPerDay: number;
}

export interface PaceRefusal {
  message: string;
  /** For license_events.detail: which limit, for staff. */
  detail: string;
  retryAfterSeconds: number;
}

const secondsUntil = (end: number, at: Date) => Math.max(1, Math.ceil((end - at.getTime()) / 1000));

export interface VelocityDeps {
  limits: VelocityLimits;
  redis: Pick<Redis, 'multi'>;
  redisPrefix: string;
  /** Keys the address hash, so Redis never holds a client address as such. */
  secret: string;
}

export type Velocity = ReturnType<typeof createVelocity>;

export function createVelocity({ limits, redis, redisPrefix, secret }: VelocityDeps) {
  const trialKey = (ip: string) =>
    `${redisPrefix}:trial-pace:${createHmac('sha256', secret).update(`trial-pace:${ip}`).digest('hex').slice(0, 32)}`;

  return {
    /**
     * In the seat transaction, with the license row locked (so concurrent activations count each
     * other): a refusal when one more new machine would go over the hour's or the day's limit.
     */
    async newMachineRefusal(tx: PoolConnection, license: LicenseRow, at: Date): Promise<PaceRefusal | null> {
      const dayStart = new Date(at.getTime() - DAY_MS);
      const hourStart = new Date(at.getTime() - HOUR_MS);
      const [rows] = await tx.execute<RowDataPacket[]>(
        `SELECT COUNT(*) AS day, COALESCE(SUM(created_at > ?), 0) AS hour, MIN(created_at) AS oldest_day,
                MIN(IF(created_at > ?, created_at, NULL)) AS oldest_hour
           FROM activations WHERE license_id = ? AND created_at > ?`,
        [hourStart, hourStart, license.id, dayStart],
      );
      const row = rows[0]!;
      const perHour = Math.max(limits.newMachinesPerLicensePerHour, license.seats);
      const perDay = Math.max(limits.newMachinesPerLicensePerDay, license.seats);
      if (Number(row.hour) >= perHour) {
        const retry = secondsUntil((row.oldest_hour as Date).getTime() + HOUR_MS, at);
        return {
          message: `this license took ${perHour} new machines within the last hour, as many as it may; try again in ${retry} s, or contact support`,
          detail: `${row.hour} new machines within an hour (limit ${perHour})`,
          retryAfterSeconds: retry,
        };
      }
      if (Number(row.day) >= perDay) {
        const retry = secondsUntil((row.oldest_day as Date).getTime() + DAY_MS, at);
        return {
          message: `this license took ${perDay} new machines within the last 24 hours, as many as it may; try again in ${retry} s, or contact support`,
          detail: `${row.day} new machines within 24 hours (limit ${perDay})`,
          retryAfterSeconds: retry,
        };
      }
      return null;
    },

    /** Before a new trial: refused (429 TRIAL_VELOCITY, recorded) when this address started its day's trials already. */
    async assertTrialPace(db: Parameters<typeof licenseEvents.record>[0], fingerprint: string, ip: string, at: Date): Promise<void> {
      const key = trialKey(ip);
      const since = at.getTime() - DAY_MS;
      const replies = await redis.multi().zremrangebyscore(key, '-inf', since).zcard(key).zrange(key, 0, 0, 'WITHSCORES').exec();
      const count = Number(replies?.[1]?.[1] ?? 0);
      const oldest = Number((replies?.[2]?.[1] as string[] | undefined)?.[1] ?? at.getTime());
      if (count < limits.trialsPerAddressPerDay) return;
      const retry = secondsUntil(oldest + DAY_MS, at);
      await licenseEvents.record(db, null, 'trial_velocity', fingerprint, ip, at, `${count} new trials from this address within 24 hours (limit ${limits.trialsPerAddressPerDay})`);
      throw new AppError(
        'TRIAL_VELOCITY', 429,
        `${limits.trialsPerAddressPerDay} trials were started from this address within the last 24 hours, as many as may be; try again in ${retry} s`,
        retry,
      );
    },

    /** A new trial was made from `ip`: it counts towards the address's day. */
    async noteTrial(ip: string, at: Date): Promise<void> {
      const key = trialKey(ip);
      await redis.multi().zadd(key, at.getTime(), `${at.getTime()}:${randomBytes(6).toString('hex')}`).pexpire(key, DAY_MS).exec();
    },
  };
}
