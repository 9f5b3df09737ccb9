import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import { eraseCustomer } from '../server/account/erase.js';
import { emailTag } from '../server/account/limits.js';
import { databaseTarget } from '../server/db/pool.js';
import { processRetention } from '../server/jobs/retention.js';
import { issueLicense } from './support/admin.js';
import { request } from './support/http.js';
import { newMachine } from './support/machines.js';
import { orderIdOf, payByInvoice } from './support/payments.js';
import { csrfToken, logIn, newPerson, PortalClient, signUp, startPortalWorld, type PortalWorld, text, type Person } from './support/portal.js';
import { REDIS_URL, type TestServer } from './support/server.js';
import type { TestSmtp } from './support/smtp.js';

/** Every row of every text (or binary) column of the database that contains `needle`: `table.column`. */
async function findInMysql(db: Pool, database: string, needle: string): Promise<string[]> {
  const [columns] = await db.query<RowDataPacket[]>(
    `SELECT table_name AS t, column_name AS c FROM information_schema.columns
      WHERE table_schema = ? AND data_type IN ('char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext', 'json', 'enum', 'set',
                                              'binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob')`,
    [database],
  );
  const found: string[] = [];
  for (const { t, c } of columns as { t: string; c: string }[]) {
    const [rows] = await db.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM \`${t}\` WHERE LOWER(CONVERT(\`${c}\` USING utf8mb4)) LIKE ?`, [`%${needle.toLowerCase()}%`]);
    const n = Number(rows[0]!.n);
    if (n > 0) found.push(`${t}.${c}${n > 1 ? ` (${n} rows)` : ''}`);
  }
  return found;
}

/** Every Redis key under the prefix whose name or value (any type) contains `needle`. */
async function findInRedis(redis: Redis, prefix: string, needle: string): Promise<string[]> {
  const wanted = needle.toLowerCase();
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      const type = await redis.type(key);
      let values: string[] = [];
      if (type === 'string') values = [(await redis.get(key)) ?? ''];
      else if (type === 'hash') values = Object.entries(await redis.hgetall(key)).flat();
      else if (type === 'list') values = await redis.lrange(key, 0, -1);
      else if (type === 'set') values = await redis.smembers(key);
      else if (type === 'zset') values = await redis.zrange(key, 0, -1);
      else if (type === 'stream') values = (await redis.xrange(key, '-', '+')).flat(3) as string[];
      if ([key, ...values].some((v) => v.toLowerCase().includes(wanted))) found.push(`${key} (${type})`);
    }
  } while (cursor !== '0');
  return found;
}

describe('MyAccount: deleting an account', function () {
  this.timeout(120_000);
  let smtp: TestSmtp;
  let server: TestServer;
  let db: Pool;
  let world: PortalWorld;
  let redis: Redis;
  let database: string;
  before(async () => {
    // The client address comes from X-Forwarded-For, so that each test's machines have their own.
    world = await startPortalWorld({ trustProxy: true });
    ({ smtp, server, db } = world);
    redis = new Redis(REDIS_URL);
    database = databaseTarget(server.config.databaseUrl).database;
  });
  after(async () => {
    redis?.disconnect();
    await world?.close();
  });

  /** A customer with data everywhere the portal knows of: what deletion must find. */
  async function customerWithEverything(person: Person) {
    const id = randomBytes(4).toString('hex');
    const secrets = {
      hostname: `zq-workstation-${id}`,
      ip: `198.51.${Math.floor(Math.random() * 200) + 10}.${Math.floor(Math.random() * 200) + 10}`,
      browser: `DeletionTestBrowser/${id}`,
    };
    const client = await signUp(server, smtp, person, { news: true });
    const secondDevice = new PortalClient(server.url);
    await logIn(secondDevice, person);

    // A trial started with the address, its use reported, a token shown from another machine.
    const fingerprint = newMachine();
    const viaProxy = { 'x-forwarded-for': secrets.ip };
    const trial = await request(`${server.url}/v1/trials`, { headers: viaProxy, body: { fingerprint, hostname: secrets.hostname, email: person.email, marketingOptIn: true, locale: 'de-DE' } });
    assert.equal(trial.status, 201);
    const usage = await request(`${server.url}/v1/usage`, { headers: viaProxy, token: trial.body.token, body: { events: [{ at: new Date().toISOString(), locale: 'de-DE', kind: 'sync' }] } });
    assert.equal(usage.status, 202);
    const otherMachine = await request(`${server.url}/v1/validate`, { headers: viaProxy, token: trial.body.token, body: { fingerprint: newMachine() } });
    assert.equal(otherMachine.status, 403);
    assert.equal((await client.submit('/account/claim', '/account/claim', { code: trial.body.license.claimCode })).status, 303);

    // Opted out of marketing, bought a license with a recorded browser, asked for a password link.
    assert.equal((await client.submit('/account/communications', '/account/communications', { choice: 'none' })).status, 303);
    const buyer = new PortalClient(server.url, secrets.browser);
    for (const [k, v] of client.cookies) buyer.cookies.set(k, v);
    const ordered = await buyer.submit('/account/buy', '/account/buy', { seats: '2', trial: String(trial.body.license.id) });
    // Paid by invoice: staff mark it paid, which issues the license and mails the receipt.
    assert.equal((await payByInvoice(server, orderIdOf(ordered.location))).status, 303);
    await new PortalClient(server.url).submit('/account/password/forgot', '/account/password/forgot', { email: person.email });
    // A sale staff recorded for the same person, by address.
    await issueLicense(server, 1, { email: person.email, customer: { type: 'business', name: person.name, organization: person.organization, address: person.address, country: 'DE' } });
    // Every message so far has gone out (verify, receipt, password link).
    await smtp.waitFor(person.email, 3);
    // A message still waiting in the queue (a delayed one) that holds the address and the name.
    await server.app.jobs.queues.mail.add(
      { key: `test-waiting:${id}`, template: 'password-changed', to: person.email, data: { changedAt: 'later', resetUrl: person.name } },
      { delay: 3_600_000, jobId: `mail:test-waiting:${id}` },
    );

    const [[customer]] = await db.query<RowDataPacket[]>('SELECT id FROM customers WHERE account_email = ?', [person.email]);
    const customerId = Number(customer!.id);
    // An export-compliance report filed before the deletion names the customer: a legal record.
    const [filed] = await db.query<import('mysql2').ResultSetHeader>(
      `INSERT INTO export_reports (period_from, period_to, status, row_count, csv_sha256, encryption_classification, filed_at, filed_by)
       VALUES ('2026-01-01', '2026-06-30', 'filed', 1, ?, '5D992.c', NOW(3), 'admin')`,
      ['0'.repeat(64)],
    );
    await db.query(
      `INSERT INTO export_report_rows (report_id, seq, event, event_date, customer_id, organization, contact_name, address, country, license_id, license_kind, seats)
       VALUES (?, 1, 'registration', '2026-03-01', ?, ?, ?, ?, 'DE', ?, 'trial', 1)`,
      [filed.insertId, customerId, person.organization, person.name, person.address, trial.body.license.id],
    );
    return { client, secondDevice, customerId, secrets };
  }

  it('erases the customer from every MySQL table and every Redis key at once, keeps filed report rows, and confirms by mail', async () => {
    const person = newPerson('erase');
    const { client, secondDevice, customerId, secrets } = await customerWithEverything(person);
    const needles = [person.email, person.name, person.address, person.organization, secrets.hostname, secrets.ip, secrets.browser];

    // The search finds what is there before: it is not looking in the wrong place.
    const before = await findInMysql(db, database, person.email);
    for (const where of ['customers.email', 'licenses.email', 'sent_mail.to_email', 'mail_opt_outs.email']) {
      assert.ok(before.some((f) => f.startsWith(where)), `${where} holds the address before deletion (found ${before.join(', ')})`);
    }
    assert.ok((await findInMysql(db, database, secrets.ip)).some((f) => f.startsWith('usage_events.ip')));
    assert.ok((await findInMysql(db, database, secrets.browser)).some((f) => f.startsWith('orders.user_agent')));
    assert.ok((await findInRedis(redis, server.config.redisPrefix, person.email)).length > 0, 'the waiting message is in Redis');

    const page = await client.get('/account/delete');
    assert.match(text(page.html), /1 row of filed reports \(2026-01-01 to 2026-06-30\) name you and will be kept/);
    const deleted = await client.post('/account/delete', { _csrf: csrfToken(page.html), password: person.password });
    assert.equal(deleted.status, 200);
    assert.match(text(deleted.html), /1 row of already-filed export-compliance reports still name you/);

    for (const needle of needles) {
      const inMysql = await findInMysql(db, database, needle);
      const allowed = [person.name, person.address, person.organization].includes(needle) ? ['export_report_rows.'] : [];
      assert.deepEqual(inMysql.filter((f) => !allowed.some((a) => f.startsWith(a))), [], `MySQL still holds "${needle}"`);
      assert.deepEqual(await findInRedis(redis, server.config.redisPrefix, needle), [], `Redis still holds "${needle}"`);
    }
    // Rate-limit counters of the address (keyed by a keyed hash of it) are gone too.
    assert.deepEqual(await findInRedis(redis, server.config.redisPrefix, emailTag(server.config, person.email)), []);
    // Only the filed report rows still name the customer.
    const [kept] = await db.query<RowDataPacket[]>('SELECT contact_name FROM export_report_rows WHERE customer_id = ?', [customerId]);
    assert.deepEqual(kept.map((r) => r.contact_name), [person.name]);

    // A tombstone, an audit trail without personal data, and no session left anywhere.
    const [[tombstone]] = await db.query<RowDataPacket[]>('SELECT status, name, email, password_hash, deleted_at FROM customers WHERE id = ?', [customerId]);
    assert.equal(tombstone!.status, 'deleted');
    assert.equal(tombstone!.email, null);
    assert.ok(tombstone!.deleted_at instanceof Date);
    const [audit] = await db.query<RowDataPacket[]>('SELECT action FROM audit_log WHERE customer_id = ? ORDER BY id', [customerId]);
    assert.deepEqual(audit.slice(-2).map((r) => r.action), ['account.deletion_requested', 'account.erased']);
    assert.equal((await secondDevice.get('/account/data')).status, 303, 'the other device is logged out');
    assert.equal((await client.get('/account/data')).status, 303);

    // The confirmation went out, and its record keeps no address.
    const messages = await smtp.waitFor(person.email, 4);
    assert.ok(messages.some((m) => m.parsed.subject === 'Your Ferry account has been deleted'));
    const [[record]] = await db.query<RowDataPacket[]>("SELECT status, to_email FROM sent_mail WHERE idempotency_key = ?", [`account-deleted:${customerId}`]);
    assert.deepEqual({ ...record }, { status: 'sent', to_email: null });
  });

  it('lets the retention job erase accounts cancelled longer ago than the retention period, the same way, once', async () => {
    const person = newPerson('retention');
    const client = await signUp(server, smtp, person);
    const recent = newPerson('retention-recent');
    const recentClient = await signUp(server, smtp, recent);
    for (const c of [client, recentClient]) {
      assert.equal((await c.submit('/account/cancel', '/account/cancel', { confirm: 'yes' })).location, '/account/cancel?done=cancelled');
    }
    const [[row]] = await db.query<RowDataPacket[]>('SELECT id, status, cancelled_at FROM customers WHERE account_email = ?', [person.email]);
    assert.equal(row!.status, 'cancelled');
    assert.ok(row!.cancelled_at instanceof Date);
    // Cancelled a day longer ago than the retention period.
    await db.query('UPDATE customers SET cancelled_at = ? WHERE id = ?', [new Date(Date.now() - server.config.retainCancelledAccountsMs - 86_400_000), row!.id]);

    const result = await processRetention(server.app.jobs);
    assert.equal(result.cancelledAccounts, 1);
    assert.deepEqual(await findInMysql(db, database, person.email), []);
    assert.deepEqual(await findInMysql(db, database, person.name), []);
    assert.equal((await client.get('/account/data')).status, 303);
    const mails = await smtp.waitFor(person.email, 3);
    assert.match(mails.find((m) => m.parsed.subject === 'Your Ferry account has been deleted')!.parsed.text!, /retention period of your cancelled Ferry account has ended/);
    // The account cancelled just now is kept, and can still log in to see its data.
    assert.equal((await recentClient.get('/account/data')).status, 200);
    // Erasing twice does nothing.
    const deps = { db: server.app.db, redis: server.app.redis, mail: server.app.mail, config: server.config };
    assert.equal(await eraseCustomer(deps, Number(row!.id), 'retention'), null);
    assert.equal((await processRetention(server.app.jobs)).cancelledAccounts, 0);
  });
});
