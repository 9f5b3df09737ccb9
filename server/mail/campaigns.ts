import type Bull from 'bull';
import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { inTransaction } from '../licenses/repository.js';
import { NEWS_AUDIENCE_SQL } from './audience.js';
import { MAIL_JOB_OPTIONS, mailJobId, type MailRequest } from './service.js';

/**
 * Campaigns: one marketing message to everyone who chose news, a news message staff wrote in
 * /admin or the notice of a published release. A campaign is a row in MySQL; starting it copies
 * the audience (audience.ts) into `campaign_recipients` in one transaction, and the fan-out job
 * (the `campaigns` queue) turns pending recipient rows into marketing-mail jobs, in batches. The
 * fan-out may run any number of times (after a crash, a Redis flush, on a second worker): each
 * message is claimed in sent_mail under `campaign:<campaign>:<recipient>`, so a recipient gets the
 * message once.
 *
 * Each run of the fan-out names its jobs `mail:campaign:<campaign>:<recipient>:<run>`. Reusing
 * one id across runs would let Bull skip a job "already there", and after a Redis flush or restart
 * Bull can leave exactly that behind: a worker that was just taking a job writes its `processedOn`
 * back into the emptied Redis (moveToActive sets it without looking), a job hash without data in
 * no list, which never runs. A message still queued from an earlier run is found sent in sent_mail
 * and costs one lookup.
 */

export type CampaignKind = 'news' | 'release';
export type CampaignState = 'draft' | 'sending' | 'sent';

export interface Campaign {
  id: number;
  kind: CampaignKind;
  releaseId: number | null;
  subject: string;
  body: string;
  state: CampaignState;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export interface CampaignProgress {
  total: number;
  sent: number;
  /** Not sent because the address opted out or withdrew its consent after the send began. */
  skipped: number;
  /** Retries ran out (the SMTP server kept refusing): "resume" tries these again. */
  failed: number;
  pending: number;
}

/** What campaigns work with: the JobContext of the server or of a worker process. */
export interface CampaignDeps {
  db: Pool;
  queues: { campaigns: Bull.Queue; marketingMail: Bull.Queue<MailRequest> };
  config: { publicUrl: string };
  now(): Date;
}

/** Recipients turned into mail jobs per round trip of the fan-out. */
const FAN_OUT_BATCH = 500;

export const SUBJECT_MAX = 200;
export const BODY_MAX = 20_000;

const mailKey = (campaignId: number, recipientId: number) => `campaign:${campaignId}:${recipientId}`;

type Queryable = Pool | PoolConnection;

function toCampaign(row: RowDataPacket): Campaign {
  return {
    id: Number(row.id), kind: row.kind, releaseId: row.release_id === null ? null : Number(row.release_id), subject: row.subject, body: row.body,
    state: row.state, createdAt: row.created_at, startedAt: row.started_at, finishedAt: row.finished_at,
  };
}

const CAMPAIGN_COLUMNS = 'id, kind, release_id, subject, body, state, created_at, started_at, finished_at';

export async function findCampaign(db: Queryable, id: number): Promise<Campaign | null> {
  const [rows] = await db.query<RowDataPacket[]>(`SELECT ${CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?`, [id]);
  return rows[0] ? toCampaign(rows[0]) : null;
}

/** A news message written but not sent: staff look at its preview first. */
export async function createNewsDraft(db: Pool, message: { subject: string; body: string }, now: Date): Promise<number> {
  const [result] = await db.execute<ResultSetHeader>(
    "INSERT INTO campaigns (kind, subject, body, state, created_at) VALUES ('news', ?, ?, 'draft', ?)",
    [message.subject, message.body, now],
  );
  return result.insertId;
}

/** Fixes the recipients and marks the campaign sending, inside the caller's transaction; false if it was not a draft. */
async function startInTransaction(tx: PoolConnection, id: number, now: Date): Promise<boolean> {
  const [started] = await tx.execute<ResultSetHeader>("UPDATE campaigns SET state = 'sending', started_at = ? WHERE id = ? AND state = 'draft'", [now, id]);
  if (started.affectedRows !== 1) return false;
  // One row per address: the audience is grouped by address, in the same collation as the unique key.
  await tx.query(
    `INSERT INTO campaign_recipients (campaign_id, email, customer_id, license_id)
     SELECT ?, audience.email, audience.customer_id, audience.license_id FROM (${NEWS_AUDIENCE_SQL}) audience ORDER BY audience.email`,
    [id],
  );
  return true;
}

export interface FanOutJob {
  campaignId: number;
  run: number;
}

/** Queues the next run of the fan-out; its number comes from MySQL, so runs of any worker differ. */
async function queueFanOut(deps: CampaignDeps, campaignId: number): Promise<void> {
  const [counted] = await deps.db.execute<ResultSetHeader>('UPDATE campaigns SET fan_out_runs = LAST_INSERT_ID(fan_out_runs + 1) WHERE id = ?', [campaignId]);
  const job: FanOutJob = { campaignId, run: counted.insertId };
  await deps.queues.campaigns.add(job, {
    jobId: `fan-out:${campaignId}:${job.run}`, attempts: 5, backoff: { type: 'exponential', delay: 2_000 }, removeOnComplete: true, removeOnFail: 100,
  });
}

/** Sends a draft to its audience; of two clicks on "send", one starts it. Answers whether this call started it. */
export async function startCampaign(deps: CampaignDeps, id: number): Promise<boolean> {
  const started = await inTransaction(deps.db, (tx) => startInTransaction(tx, id, deps.now()));
  if (started) {
    await queueFanOut(deps, id);
    await finishIfDone(deps.db, id, deps.now()); // an empty audience is done at once
  }
  return started;
}

/**
 * The release notice of a published release, once: the campaign is created and started, and
 * `releases.announced_at` set, in one transaction (the release row locked), so a second call, from
 * anywhere, finds it announced and does nothing. Answers the campaign's id, or null when the release
 * was announced before. Call it when a release is published: `announceRelease(app.jobs, releaseId)`.
 */
export async function announceRelease(deps: CampaignDeps, releaseId: number): Promise<number | null> {
  const now = deps.now();
  const campaignId = await inTransaction(deps.db, async (tx) => {
    const [rows] = await tx.query<RowDataPacket[]>('SELECT version, notes, announced_at FROM releases WHERE id = ? FOR UPDATE', [releaseId]);
    const release = rows[0];
    if (!release) throw new Error(`there is no release ${releaseId}`);
    if (release.announced_at) return null;
    const [created] = await tx.execute<ResultSetHeader>(
      "INSERT INTO campaigns (kind, release_id, subject, body, state, created_at) VALUES ('release', ?, ?, ?, 'draft', ?)",
      [releaseId, `Ferry ${release.version} is available`.slice(0, SUBJECT_MAX), release.notes, now],
    );
    await startInTransaction(tx, created.insertId, now);
    await tx.execute('UPDATE releases SET announced_at = ? WHERE id = ?', [now, releaseId]);
    return created.insertId;
  });
  if (campaignId !== null) {
    // Queued after the commit; should this process die in between, the worker's start-up resume queues it.
    await queueFanOut(deps, campaignId);
    await finishIfDone(deps.db, campaignId, now);
  }
  return campaignId;
}

/**
 * The `campaigns` queue's processor: queues a marketing-mail job for every pending recipient, in
 * batches, keyset-paged by id. A retried run adds the same job ids (the add does nothing); a
 * message sent already, by this run or an earlier one, is found in sent_mail and not sent again.
 */
export async function fanOut(deps: CampaignDeps, { campaignId, run }: FanOutJob): Promise<number> {
  const campaign = await findCampaign(deps.db, campaignId);
  if (!campaign || campaign.state !== 'sending') return 0;
  const template = campaign.kind === 'release' ? 'release-notice' : 'news';
  let queued = 0;
  for (let after = 0; ;) {
    const [rows] = await deps.db.query<RowDataPacket[]>(
      `SELECT id, email, customer_id, license_id FROM campaign_recipients
        WHERE campaign_id = ? AND status = 'pending' AND id > ? ORDER BY id LIMIT ${FAN_OUT_BATCH}`,
      [campaignId, after],
    );
    if (rows.length === 0) break;
    await deps.queues.marketingMail.addBulk(rows.map((r) => {
      const key = mailKey(campaignId, Number(r.id));
      const request: MailRequest = {
        key, template, to: r.email, data: {}, audience: 'news', campaign: { id: campaignId, recipientId: Number(r.id) },
        customerId: r.customer_id === null ? null : Number(r.customer_id), licenseId: r.license_id === null ? null : Number(r.license_id),
      };
      return { data: request, opts: { ...MAIL_JOB_OPTIONS, jobId: mailJobId(`${key}:${run}`) } };
    }));
    queued += rows.length;
    after = Number(rows[rows.length - 1]!.id);
  }
  await finishIfDone(deps.db, campaignId, deps.now());
  return queued;
}

/**
 * Campaigns are few and do not change once sending: the workers keep the ones they send, per
 * database (a process may serve more than one, as the tests do).
 */
const contentsByDb = new WeakMap<Pool, Map<number, Record<string, unknown>>>();

/** A campaign's message with its data: subject, text and (release notices) the download link. */
export async function campaignMessage(deps: CampaignDeps, request: MailRequest): Promise<MailRequest> {
  const id = request.campaign!.id;
  let contents = contentsByDb.get(deps.db);
  if (!contents) contentsByDb.set(deps.db, (contents = new Map()));
  let data = contents.get(id);
  if (!data) {
    const campaign = await findCampaign(deps.db, id);
    if (!campaign) throw new Error(`there is no campaign ${id}`);
    data = { subject: campaign.subject, message: campaign.body, downloadUrl: `${deps.config.publicUrl}/download`, why: 'you chose to receive news and release notices from Ferry' };
    if (contents.size >= 100) contents.clear();
    contents.set(id, data);
  }
  return { ...request, data };
}

/** After a campaign message was handled: its recipient row takes the outcome sent_mail recorded. */
export async function recordOutcome(db: Pool, request: MailRequest, now: Date): Promise<void> {
  const { id, recipientId } = request.campaign!;
  await db.execute(
    `UPDATE campaign_recipients r JOIN sent_mail m ON m.idempotency_key = ?
        SET r.status = IF(m.status = 'sending', 'pending', m.status) WHERE r.id = ?`,
    [request.key, recipientId],
  );
  await finishIfDone(db, id, now);
}

/** The last retry of a campaign message failed: counted as failed until a resume. */
export async function recordFailure(db: Pool, request: MailRequest, now: Date): Promise<void> {
  await db.execute("UPDATE campaign_recipients SET status = 'failed' WHERE id = ? AND status = 'pending'", [request.campaign!.recipientId]);
  await finishIfDone(db, request.campaign!.id, now);
}

/** A campaign with nobody pending is sent (its failures, if any, still shown and resumable). */
async function finishIfDone(db: Pool, campaignId: number, now: Date): Promise<void> {
  await db.execute(
    `UPDATE campaigns SET state = 'sent', finished_at = ? WHERE id = ? AND state = 'sending'
        AND NOT EXISTS (SELECT 1 FROM campaign_recipients WHERE campaign_id = ? AND status = 'pending')`,
    [now, campaignId, campaignId],
  );
}

/**
 * Runs the fan-out again: failed messages are tried once more, and whatever is pending (a job lost
 * with Redis, a worker gone mid-send) is queued. Answers false for a draft.
 */
export async function resumeCampaign(deps: CampaignDeps, id: number): Promise<boolean> {
  const campaign = await findCampaign(deps.db, id);
  if (!campaign || campaign.state === 'draft') return false;
  await deps.db.execute("UPDATE campaign_recipients SET status = 'pending' WHERE campaign_id = ? AND status = 'failed'", [id]);
  await deps.db.execute(
    `UPDATE campaigns SET state = 'sending', finished_at = NULL WHERE id = ?
        AND EXISTS (SELECT 1 FROM campaign_recipients WHERE campaign_id = ? AND status = 'pending')`,
    [id, id],
  );
  await queueFanOut(deps, id);
  return true;
}

/** Every campaign still sending gets a fan-out run: at a worker's start and when Redis comes back. */
export async function resumeUnfinishedCampaigns(deps: CampaignDeps): Promise<number> {
  const [rows] = await deps.db.query<RowDataPacket[]>("SELECT id FROM campaigns WHERE state = 'sending'");
  for (const row of rows) await queueFanOut(deps, Number(row.id));
  return rows.length;
}

export async function campaignProgress(db: Queryable, id: number): Promise<CampaignProgress> {
  const [rows] = await db.query<RowDataPacket[]>('SELECT status, COUNT(*) AS n FROM campaign_recipients WHERE campaign_id = ? GROUP BY status', [id]);
  const count = (status: string) => Number(rows.find((r) => r.status === status)?.n ?? 0);
  const progress = { sent: count('sent'), skipped: count('skipped'), failed: count('failed'), pending: count('pending') };
  return { total: progress.sent + progress.skipped + progress.failed + progress.pending, ...progress };
}

/** The latest campaigns, newest first, each with its progress. */
export async function listCampaigns(db: Pool, limit = 50): Promise<(Campaign & { progress: CampaignProgress })[]> {
  const [rows] = await db.query<RowDataPacket[]>(`SELECT ${CAMPAIGN_COLUMNS} FROM campaigns ORDER BY id DESC LIMIT ${Number(limit)}`);
  return Promise.all(rows.map(async (row) => ({ ...toCampaign(row), progress: await campaignProgress(db, Number(row.id)) })));
}
