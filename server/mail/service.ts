import type Bull from 'bull';
import type { Pool, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { choseNews } from './audience.js';
import { compose, type ComposeSettings } from './compose.js';
import { templateKind, type MailKind } from './templates.js';
import type { MailTransport } from './transport.js';

/** A message to send once: the key names it for good (`reminder:42:7d`, `verify-email:7:3`). */
export interface MailRequest {
  key: string;
  template: string;
  to: string;
  data: Record<string, unknown>;
  customerId?: number | null;
  licenseId?: number | null;
  /** Sent only if the address is still in this audience when the message goes out (news and release notices). */
  audience?: 'news';
  /** A campaign's message: its data is the campaign's, filled in by the worker (not kept in Redis once per recipient). */
  campaign?: { id: number; recipientId: number };
}

export type MailOutcome = 'sent' | 'already-sent' | 'opted-out' | 'no-consent';

/** A claim older than this belongs to a worker that died mid-send: another may take it over. */
const CLAIM_TIMEOUT_MS = 2 * 60_000;

/** Bull's job settings of the mail queue: retried with backoff, for longer than a claim can be stale. */
export const MAIL_JOB_OPTIONS: Bull.JobOptions = {
  attempts: 10,
  backoff: { type: 'exponential', delay: 2_000 },
  // A finished job holds an address in Redis: gone at once; sent_mail is the record.
  removeOnComplete: true,
  removeOnFail: 1_000,
};

/** The Bull job id of a message: a message queued again while it waits is the same job. */
export const mailJobId = (key: string) => `mail:${key}`;

export class ClaimedElsewhere extends Error {
  override readonly name = 'ClaimedElsewhere';
}

/** One of each: service mail and marketing mail go through their own queue and their own SMTP connections. */
export type ByKind<T> = Record<MailKind, T>;

export interface MailService {
  /**
   * Queues the message on the queue of its kind (service or marketing); the same key queued twice,
   * or sent before, goes out once.
   */
  enqueue(request: MailRequest): Promise<void>;
  /** The mail queues' processor: claim the key in MySQL, check the address, send, record. */
  deliver(request: MailRequest): Promise<MailOutcome>;
  /** Removes every queued (waiting, delayed, failed) message to this address from Redis: account deletion. */
  forgetAddress(email: string): Promise<number>;
  /** Where mail goes, for the start-up log. */
  readonly description: string;
  close(): void;
}

/** Told of every message the SMTP server (or the outbox) took, and of every attempt it refused: for /metrics. */
export type MailCounter = (outcome: 'sent' | 'failed') => void;

export function createMailService(deps: {
  db: Pool; queues: ByKind<Bull.Queue<MailRequest>>; transports: ByKind<MailTransport>; settings: ComposeSettings; count?: MailCounter;
}): MailService {
  const { db, queues, transports, settings, count = () => {} } = deps;

  async function claim(request: MailRequest, kind: string, now: Date): Promise<'claimed' | 'done'> {
    try {
      await db.execute(
        `INSERT INTO sent_mail (idempotency_key, kind, template, to_email, customer_id, license_id, status, claimed_at)
         VALUES (?, ?, ?, ?, ?, ?, 'sending', ?)`,
        [request.key, kind, request.template, request.to, request.customerId ?? null, request.licenseId ?? null, now],
      );
      return 'claimed';
    } catch (err) {
      if ((err as { code?: string }).code !== 'ER_DUP_ENTRY') throw err;
    }
    const [rows] = await db.execute<RowDataPacket[]>('SELECT status, claimed_at FROM sent_mail WHERE idempotency_key = ?', [request.key]);
    const row = rows[0] as { status: string; claimed_at: Date } | undefined;
    if (!row || row.status !== 'sending') return 'done';
    if (now.getTime() - row.claimed_at.getTime() < CLAIM_TIMEOUT_MS) throw new ClaimedElsewhere(`${request.key} is being sent by another worker`);
    // Take over a dead worker's claim; of two takers, one wins.
    const [result] = await db.execute<ResultSetHeader>(
      "UPDATE sent_mail SET claimed_at = ? WHERE idempotency_key = ? AND status = 'sending' AND claimed_at = ?",
      [now, request.key, row.claimed_at],
    );
    if (result.affectedRows !== 1) throw new ClaimedElsewhere(`${request.key} was taken over by another worker`);
    return 'claimed';
  }

  async function optedOut(email: string): Promise<boolean> {
    const [rows] = await db.execute<RowDataPacket[]>('SELECT 1 FROM mail_opt_outs WHERE email = ?', [email.toLowerCase()]);
    return rows.length > 0;
  }

  const skip = async (request: MailRequest, reason: string, now: Date) => {
    await db.execute("UPDATE sent_mail SET status = 'skipped', skip_reason = ?, sent_at = ? WHERE idempotency_key = ?", [reason, now, request.key]);
  };

  return {
    description: transports.service.description,
    close() {
      transports.service.close();
      transports.marketing.close();
    },
    async forgetAddress(email) {
      const target = email.toLowerCase();
      let removed = 0;
      for (const queue of [queues.service, queues.marketing]) {
        for (const job of await queue.getJobs(['waiting', 'delayed', 'failed', 'paused', 'completed'])) {
          if (job && job.data.to.toLowerCase() === target) {
            await job.remove();
            removed++;
          }
        }
      }
      return removed;
    },
    async enqueue(request) {
      await queues[templateKind(request.template)].add(request, { ...MAIL_JOB_OPTIONS, jobId: mailJobId(request.key) });
    },
    async deliver(request) {
      const kind = templateKind(request.template);
      const now = new Date();
      if ((await claim(request, kind, now)) === 'done') return 'already-sent';
      let handedOver = false;
      try {
        if (kind === 'marketing' && (await optedOut(request.to))) {
          await skip(request, 'opted_out', now);
          return 'opted-out';
        }
        if (request.audience === 'news' && !(await choseNews(db, request.to))) {
          await skip(request, 'no_news_consent', now);
          return 'no-consent';
        }
        const message = compose(settings, request.template, request.to, request.data);
        const info = await transports[kind].send(message).catch((err: unknown) => {
          count('failed');
          throw err;
        });
        handedOver = true;
        count('sent');
        await db.execute("UPDATE sent_mail SET status = 'sent', subject = ?, message_id = ?, sent_at = ? WHERE idempotency_key = ?", [
          message.subject, info.messageId, new Date(), request.key,
        ]);
        return 'sent';
      } catch (err) {
        // Not sent: give the claim back so that the retry (Bull's backoff) can take it at once. Sent
        // but not recorded (MySQL went away that moment): keep the claim, which stops a resend
        // until it times out.
        if (!handedOver) await db.execute("DELETE FROM sent_mail WHERE idempotency_key = ? AND status = 'sending'", [request.key]).catch(() => {});
        throw err;
      }
    },
  };
}
