import type { RowDataPacket } from 'mysql2/promise';
import { formatDuration } from '../../licensing/index.js';
import type { JobContext } from './context.js';

/**
 * Registration reminders: to a trial user who gave an email, before the trial ends
 * (REMINDERS_BEFORE_END) and when it has ended. Planned as delayed Bull jobs when the trial starts
 * (or changes); a sweep every few seconds re-plans whatever Redis lost. Each reminder is sent once:
 * the mail key `reminder:<license>:<slot>` is claimed in MySQL.
 */
export interface ReminderJob {
  licenseId: number;
  /** `7d`, `1d`… or `end`. */
  slot: string;
  /** The trial end this reminder was planned for: a reminder of an older plan does nothing. */
  expiresAt: number;
}

export interface Slot {
  name: string;
  beforeEndMs: number;
}

/** The slots of a trial, latest last: `7d`, `1d`, `end`. */
export function reminderSlots(remindersBeforeEndMs: number[]): Slot[] {
  const before = [...new Set(remindersBeforeEndMs)].sort((a, b) => b - a).map((ms) => ({ name: formatDuration(ms), beforeEndMs: ms }));
  return [...before, { name: 'end', beforeEndMs: 0 }];
}

/** How long the end-of-trial message is still worth sending after the end (a sweep after an outage). */
const END_MESSAGE_WITHIN_MS = 7 * 86_400_000;
const SWEEP_BATCH = 500;

function jobId(job: ReminderJob): string {
  return `reminder:${job.licenseId}:${job.slot}:${job.expiresAt}`;
}

async function addReminder(ctx: JobContext, job: ReminderJob, delayMs: number): Promise<void> {
  await ctx.queues.reminders.add(job, {
    jobId: jobId(job),
    delay: Math.max(0, delayMs),
    attempts: 5,
    backoff: { type: 'exponential', delay: 2_000 },
    removeOnComplete: true,
    removeOnFail: 1_000,
  });
}

/** Plans every reminder of a trial still ahead (idempotent: the job ids name trial, slot and end). */
export async function planReminders(ctx: JobContext, trial: { licenseId: number; expiresAt: Date }): Promise<void> {
  const now = ctx.now().getTime();
  const expiresAt = trial.expiresAt.getTime();
  for (const slot of reminderSlots(ctx.config.remindersBeforeEndMs)) {
    const at = expiresAt - slot.beforeEndMs;
    if (slot.name !== 'end' && at <= now) continue; // already past: the sweep decides what is still due
    await addReminder(ctx, { licenseId: trial.licenseId, slot: slot.name, expiresAt }, at - now);
  }
}

interface TrialRow {
  id: number;
  kind: string;
  status: string;
  email: string | null;
  expires_at: Date | null;
  claim_code: string | null;
  customer_id: number | null;
}

/** Bought: a permanent license for the same address or the customer who claimed the trial. */
async function hasBought(ctx: JobContext, trial: TrialRow): Promise<boolean> {
  const [rows] = await ctx.db.execute<RowDataPacket[]>(
    `SELECT 1 FROM licenses WHERE kind = 'permanent' AND status = 'active' AND (email = ? OR (customer_id IS NOT NULL AND customer_id = ?)) LIMIT 1`,
    [trial.email, trial.customer_id ?? 0],
  );
  return rows.length > 0;
}

function whenText(beforeEndMs: number): string {
  const units: [number, string][] = [[86_400_000, 'day'], [3_600_000, 'hour'], [60_000, 'minute'], [1_000, 'second']];
  for (const [size, name] of units) {
    if (beforeEndMs >= size) {
      const n = Math.round(beforeEndMs / size);
      return n === 1 && name === 'day' ? 'tomorrow' : `in ${n} ${name}${n === 1 ? '' : 's'}`;
    }
  }
  return 'now';
}

export type ReminderOutcome = 'queued' | 'stale' | 'no-email' | 'bought' | 'not-a-trial';

/** The reminders queue's processor: decides, then hands the message to the mail queue. */
export async function processReminder(ctx: JobContext, job: ReminderJob): Promise<ReminderOutcome> {
  const [rows] = await ctx.db.execute<RowDataPacket[]>(
    'SELECT id, kind, status, email, expires_at, claim_code, customer_id FROM licenses WHERE id = ?',
    [job.licenseId],
  );
  const trial = rows[0] as TrialRow | undefined;
  if (!trial || trial.kind !== 'trial' || trial.status !== 'active' || !trial.expires_at) return 'not-a-trial';
  if (trial.expires_at.getTime() !== job.expiresAt) return 'stale';
  if (!trial.email) return 'no-email';
  if (await hasBought(ctx, trial)) return 'bought';
  const slot = reminderSlots(ctx.config.remindersBeforeEndMs).find((s) => s.name === job.slot);
  await ctx.mail.enqueue({
    key: `reminder:${trial.id}:${job.slot}`,
    template: job.slot === 'end' ? 'trial-ended' : 'trial-reminder',
    to: trial.email,
    licenseId: trial.id,
    customerId: trial.customer_id,
    data: {
      whenText: whenText(slot?.beforeEndMs ?? 0),
      endsOn: trial.expires_at.toUTCString(),
      claimCode: trial.claim_code,
    },
  });
  return 'queued';
}

/**
 * Finds reminders that are due but were never sent (Redis lost the delayed job, or the server was
 * down when it fell due) and queues them. Only the latest due slot of a trial: a week-before
 * reminder is not sent once the day-before one is due.
 */
export async function sweepReminders(ctx: JobContext): Promise<number> {
  const now = ctx.now();
  const slots = reminderSlots(ctx.config.remindersBeforeEndMs);
  let queued = 0;
  for (let i = 0; i < slots.length; i++) {
    const slot = slots[i]!;
    const next = slots[i + 1];
    // Due: end - before <= now; and the next slot is not due yet (end - next.before > now).
    const dueFrom = slot.name === 'end' ? new Date(now.getTime() - END_MESSAGE_WITHIN_MS) : new Date(now.getTime() + (next?.beforeEndMs ?? 0));
    const dueUntil = new Date(now.getTime() + slot.beforeEndMs);
    const [rows] = await ctx.db.query<RowDataPacket[]>(
      `SELECT l.id, l.expires_at FROM licenses l
        WHERE l.kind = 'trial' AND l.status = 'active' AND l.email IS NOT NULL
          AND l.expires_at > ? AND l.expires_at <= ?
          AND NOT EXISTS (SELECT 1 FROM sent_mail m WHERE m.idempotency_key = CONCAT('reminder:', l.id, ':', ?))
          AND NOT EXISTS (SELECT 1 FROM licenses p WHERE p.kind = 'permanent' AND p.status = 'active'
                            AND (p.email = l.email OR (l.customer_id IS NOT NULL AND p.customer_id = l.customer_id)))
        LIMIT ${SWEEP_BATCH}`,
      [dueFrom, dueUntil, slot.name],
    );
    for (const row of rows as { id: number; expires_at: Date }[]) {
      await addReminder(ctx, { licenseId: row.id, slot: slot.name, expiresAt: row.expires_at.getTime() }, 0);
      queued++;
    }
  }
  return queued;
}
