import type { Redis } from 'ioredis';
import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import type { Config } from '../config.js';
import { inTransaction } from '../licenses/repository.js';
import type { MailService } from '../mail/service.js';
import { ACCOUNT_TEMPLATES, formatDate } from './mail.js';
import { limitKeyPatterns } from './limits.js';
import { audit } from './repository.js';
import { destroyCustomerSessions } from './sessions.js';

export interface EraseDeps {
  db: Pool;
  /** Any client of the deployment's Redis (the retention job may pass a Bull queue's client). */
  redis: Redis;
  mail: MailService;
  config: Pick<Config, 'redisPrefix' | 'mailSecret'>;
  log?: { warn(obj: object, message: string): void };
}

export type EraseReason = 'request' | 'retention';

export interface Erased {
  customerId: number;
  /** Licenses whose machines and reports were anonymised. */
  licenses: number;
  /** Rows of filed export reports that still name the customer (kept: legal records). */
  keptExportReportRows: number;
}

type Ids = number[];
const ids = (rows: RowDataPacket[]) => rows.map((r) => Number(r.id));
/** `IN (?)` of an empty list would be a syntax error; no id is 0. */
const list = (values: Ids) => (values.length > 0 ? values : [0]);

/**
 * Erases a customer's personal data at once: "Delete my account", and the retention job for
 * cancelled accounts past their retention. In one MySQL transaction, every row that holds the
 * customer's email, name, address, machines' addresses or browser is erased or anonymised; the
 * customer row stays as a tombstone (status 'deleted', id, type, country) so that licenses, orders
 * and the audit log keep a valid reference. Then Redis: sessions, rate-limit counters of the
 * email address and of the client addresses the customer's machines were seen from, queued mail. Then the confirmation mail, whose own record is anonymised after
 * sending. Rows of already-filed export-compliance reports are kept, as the law wants.
 *
 * Returns null when there is no such account (or it is already erased): calling it twice is safe.
 */
export async function eraseCustomer(deps: EraseDeps, customerId: number, reason: EraseReason = 'request'): Promise<Erased | null> {
  const { db, redis, mail, config } = deps;
  const now = new Date();
  const erased = await inTransaction(db, async (tx) => {
    const [rows] = await tx.execute<RowDataPacket[]>("SELECT id, email FROM customers WHERE id = ? AND status <> 'deleted' FOR UPDATE", [customerId]);
    const customer = rows[0] as { id: number; email: string | null } | undefined;
    if (!customer) return null;
    const email = customer.email?.toLowerCase() ?? null;
    const { licenses: licenseCount, ips } = await eraseRows(tx, customerId, email, now);
    const [kept] = await tx.execute<RowDataPacket[]>('SELECT COUNT(*) AS n FROM export_report_rows WHERE customer_id = ?', [customerId]);
    await audit.record(tx, customerId, 'account.erased', now);
    return { email, ips, result: { customerId, licenses: licenseCount, keptExportReportRows: Number(kept[0]!.n) } };
  });
  if (!erased) return null;

  await destroyCustomerSessions(redis, config.redisPrefix, customerId);
  for (const pattern of limitKeyPatterns(config, erased.email, erased.ips)) await deleteKeys(redis, pattern);
  if (erased.email) {
    await mail.forgetAddress(erased.email);
    await sendConfirmation(deps, customerId, erased.email, reason, now);
  }
  return erased.result;
}

/** Erases the rows; answers how many licenses were anonymised and the client addresses they were seen from. */
async function eraseRows(tx: PoolConnection, customerId: number, email: string | null, now: Date): Promise<{ licenses: number; ips: string[] }> {
  // Sales staff recorded for the same address are the same person's data.
  const [sameAddress] = email
    ? await tx.query<RowDataPacket[]>("SELECT id FROM customers WHERE email = ? AND id <> ? AND password_hash IS NULL AND status <> 'deleted' FOR UPDATE", [email, customerId])
    : [[] as RowDataPacket[]];
  const customerIds = [customerId, ...ids(sameAddress)];
  const [owned] = await tx.query<RowDataPacket[]>('SELECT id FROM licenses WHERE customer_id IN (?) FOR UPDATE', [customerIds]);
  const licenseIds = ids(owned);
  const [seenFrom] = await tx.query<RowDataPacket[]>(
    `SELECT ip FROM activations WHERE license_id IN (?) AND ip IS NOT NULL
     UNION SELECT ip FROM usage_events WHERE license_id IN (?) AND ip IS NOT NULL
     UNION SELECT ip FROM license_events WHERE license_id IN (?) AND ip IS NOT NULL
     UNION SELECT ip FROM activation_rebinds WHERE license_id IN (?) AND ip IS NOT NULL`,
    [list(licenseIds), list(licenseIds), list(licenseIds), list(licenseIds)],
  );

  await tx.query(
    `UPDATE customers SET name = NULL, organization = NULL, address = NULL, email = NULL, password_hash = NULL,
       email_verified_at = NULL, age_confirmed_at = NULL, marketing_opt_in = FALSE,
       status = 'deleted', deleted_at = ?, updated_at = ?
     WHERE id IN (?)`,
    [now, now, customerIds],
  );
  // Trials started with the address but never claimed carry it too; their machines may be someone
  // else's, so only the address goes from those.
  await tx.query('UPDATE licenses SET email = NULL, marketing_opt_in = FALSE WHERE id IN (?) OR (? IS NOT NULL AND email = ?)', [list(licenseIds), email, email]);
  await tx.query('UPDATE activations SET ip = NULL, hostname = NULL WHERE license_id IN (?)', [list(licenseIds)]);
  await tx.query('UPDATE usage_events SET ip = NULL WHERE license_id IN (?)', [list(licenseIds)]);
  await tx.query('UPDATE license_events SET ip = NULL WHERE license_id IN (?)', [list(licenseIds)]);
  await tx.query('UPDATE activation_rebinds SET ip = NULL WHERE license_id IN (?)', [list(licenseIds)]);
  await tx.query('UPDATE sent_mail SET to_email = NULL WHERE customer_id IN (?) OR (? IS NOT NULL AND to_email = ?)', [customerIds, email, email]);
  if (email) await tx.query('DELETE FROM mail_opt_outs WHERE email = ?', [email]);
  // The address as a recipient of news and release notices (what was sent stays in sent_mail, without it).
  if (email) await tx.query('DELETE FROM campaign_recipients WHERE email = ?', [email]);
  await tx.query('DELETE FROM account_tokens WHERE customer_id IN (?)', [customerIds]);
  await tx.query('DELETE FROM consent_history WHERE customer_id IN (?)', [customerIds]);
  await tx.query("UPDATE orders SET user_agent = NULL, status = IF(status = 'pending', 'cancelled', status) WHERE customer_id IN (?)", [customerIds]);
  return { licenses: licenseIds.length, ips: seenFrom.map((r) => String(r.ip)) };
}

async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

/**
 * The confirmation is a service notice that must reach the address we just erased. It is sent now
 * (not queued, so the address does not sit in Redis), and its record loses the address once sent.
 * If the SMTP server is away it is queued for the mail queue's retries instead; those records are
 * anonymised by `anonymiseMailOfErasedCustomers` (the retention job's daily pass).
 */
async function sendConfirmation(deps: EraseDeps, customerId: number, email: string, reason: EraseReason, now: Date): Promise<void> {
  const request = {
    key: `account-deleted:${customerId}`,
    template: ACCOUNT_TEMPLATES.accountDeleted,
    to: email,
    customerId,
    data: { erasedOn: formatDate(now), retention: reason === 'retention' },
  };
  try {
    await deps.mail.deliver(request);
  } catch (err) {
    deps.log?.warn({ customerId, err: (err as Error).message }, 'deletion confirmation not sent now; queued for retries');
    await deps.mail.enqueue(request);
    return;
  }
  await deps.db.execute('UPDATE sent_mail SET to_email = NULL WHERE idempotency_key = ?', [request.key]);
}

/** Mail records of erased customers that still hold an address (a confirmation sent by a retry). */
export async function anonymiseMailOfErasedCustomers(db: Pool): Promise<number> {
  const [result] = await db.execute(
    `UPDATE sent_mail m JOIN customers c ON c.id = m.customer_id SET m.to_email = NULL
      WHERE c.status = 'deleted' AND m.to_email IS NOT NULL AND m.status <> 'sending'`,
  );
  return (result as { affectedRows: number }).affectedRows;
}
