import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Pool, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import type { Config } from '../server/config.js';
import { createPool } from '../server/db/pool.js';
import { createJobContext, type JobContext } from '../server/jobs/context.js';
import { startWorkers } from '../server/jobs/worker.js';
import { announceRelease, campaignProgress, createNewsDraft, startCampaign } from '../server/mail/campaigns.js';
import { unsubscribeUrl } from '../server/mail/compose.js';
import { until } from './support/processes.js';
import { csrfToken, newPerson, PortalClient, registerAndVerify, signUp, startPortalServer, text, uniqueEmail } from './support/portal.js';
import { openDb, type TestServer } from './support/server.js';
import { rawHeader, startSmtp, type ReceivedMail, type TestSmtp } from './support/smtp.js';

/**
 * Marketing mail to many people at once (news, release notices) and service mail on its own path:
 * against real MariaDB, Redis and an in-process SMTP server.
 */

const POSTAL_ADDRESS = 'Ferry Test Ltd, 9 Quay Lane, Bristol BS1 4AA';

/** Accounts written straight into MySQL, as the portal leaves them (a password hash, a verified address or not). */
async function seedAccounts(db: Pool, emails: string[], facts: { news: boolean; verified?: boolean; status?: 'active' | 'cancelled' }): Promise<void> {
  const verified = facts.verified ?? true;
  const status = facts.status ?? 'active';
  const rows = emails.map((email) => ['individual', 'Seeded Person', '1 Seed Street', 'DE', email, 'scrypt$seeded', verified ? new Date() : null, facts.news, status, status === 'cancelled' ? new Date() : null, new Date()]);
  await db.query('INSERT INTO customers (type, name, address, country, email, password_hash, email_verified_at, marketing_opt_in, status, cancelled_at, created_at) VALUES ?', [rows]);
}

/** A trial started with `ferry activate --trial --email … [--marketing]`. */
async function seedTrial(db: Pool, email: string, marketing: boolean): Promise<void> {
  await db.query(
    "INSERT INTO licenses (kind, status, seats, trial_fingerprint, email, marketing_opt_in, expires_at) VALUES ('trial', 'active', 1, ?, ?, ?, NOW() + INTERVAL 30 DAY)",
    [randomBytes(32).toString('hex'), email, marketing],
  );
}

async function insertRelease(db: Pool, version: string, notes: string): Promise<number> {
  const [result] = await db.query<ResultSetHeader>("INSERT INTO releases (version, notes, manifest, published_at) VALUES (?, ?, '{}', NOW(3))", [version, notes]);
  return result.insertId;
}

async function campaignState(db: Pool, id: number): Promise<string> {
  const [[row]] = await db.query<RowDataPacket[]>('SELECT state FROM campaigns WHERE id = ?', [id]);
  return String(row!.state);
}

const waitUntilSent = (db: Pool, id: number, timeoutMs = 60_000) =>
  until(`campaign ${id} to be sent`, async () => (await campaignState(db, id)) === 'sent', timeoutMs, 100);

/** Messages with this subject, by recipient. */
function bySubject(smtp: TestSmtp, subject: string): Map<string, ReceivedMail[]> {
  const map = new Map<string, ReceivedMail[]>();
  for (const m of smtp.messages.filter((m) => m.parsed.subject === subject)) map.set(m.to, [...(map.get(m.to) ?? []), m]);
  return map;
}

/** Each of `expected` got exactly one message with the subject, and nobody else got one. */
function assertOncePerRecipient(smtp: TestSmtp, subject: string, expected: string[]): ReceivedMail[] {
  const received = bySubject(smtp, subject);
  const twice = [...received].filter(([, ms]) => ms.length > 1).map(([to, ms]) => `${to} ×${ms.length}`);
  assert.deepEqual(twice, [], 'nobody gets the message twice');
  assert.deepEqual([...received.keys()].sort(), expected.map((e) => e.toLowerCase()).sort(), 'exactly the people who chose news');
  return [...received.values()].flat();
}

function assertMarketingMessage(server: TestServer, mail: ReceivedMail): void {
  const link = rawHeader(mail, 'List-Unsubscribe');
  assert.equal(link, `<${unsubscribeUrl({ publicUrl: server.config.publicUrl, secret: server.config.mailSecret }, mail.to)}>`, 'the one-click link of this very address');
  assert.equal(rawHeader(mail, 'List-Unsubscribe-Post'), 'List-Unsubscribe=One-Click');
  assert.match(mail.parsed.text!, /To unsubscribe, open this link \(one click, no login\): http/);
  assert.match(mail.parsed.text!, /You receive this because you chose to receive news and release notices from Ferry\./);
  assert.ok(mail.parsed.text!.includes(POSTAL_ADDRESS), 'the postal address in the text');
  assert.ok((mail.parsed.html as string).includes(POSTAL_ADDRESS), 'the postal address in the HTML');
  assert.match(mail.parsed.html as string, /unsubscribe with one click/);
}

async function signedInAdmin(server: TestServer): Promise<PortalClient> {
  const client = new PortalClient(server.url);
  const answer = await client.post('/admin/login', { token: server.adminToken });
  assert.equal(answer.status, 303, text(answer.html));
  return client;
}

describe('News and release notices by mail', function () {
  this.timeout(120_000);
  let smtp: TestSmtp;
  let server: TestServer;
  let db: Pool;
  /** Who chose news on this server (filled by the first test). */
  const audience: string[] = [];
  const outsiders: string[] = [];

  before(async () => {
    smtp = await startSmtp();
    server = await startPortalServer(smtp, { companyPostalAddress: POSTAL_ADDRESS, marketingMailPerMinute: 100_000 });
    db = await openDb(server.config.databaseUrl);
  });
  after(async () => {
    await db?.end();
    await server?.close();
    await smtp?.close();
  });

  it('sends a release notice once to each person who chose news, and to nobody else', async () => {
    // Through the portal: news ticked at registration; news ticked, then "no marketing mail at
    // all"; news ticked, then the account deleted.
    const portalNews = newPerson('news-portal');
    await registerAndVerify(server, smtp, portalNews, { news: true });
    const changedMind = newPerson('news-then-none');
    const changedClient = await signUp(server, smtp, changedMind, { news: true });
    assert.equal((await changedClient.submit('/account/communications', '/account/communications', { choice: 'none' })).status, 303);
    const deleted = newPerson('news-deleted');
    const deletedClient = await signUp(server, smtp, deleted, { news: true });
    const deletePage = await deletedClient.get('/account/delete');
    assert.equal((await deletedClient.post('/account/delete', { _csrf: csrfToken(deletePage.html), password: deleted.password })).status, 200);

    // Straight into MySQL: the other cases.
    const accountNews = [uniqueEmail('acct-news'), uniqueEmail('acct-news')];
    await seedAccounts(db, accountNews, { news: true });
    const noConsent = uniqueEmail('acct-no-consent');
    await seedAccounts(db, [noConsent], { news: false });
    const unverified = uniqueEmail('acct-unverified');
    await seedAccounts(db, [unverified], { news: true, verified: false });
    const cancelled = uniqueEmail('acct-cancelled');
    await seedAccounts(db, [cancelled], { news: true, status: 'cancelled' });
    const trialNews = uniqueEmail('trial-news');
    await seedTrial(db, trialNews, true);
    await seedTrial(db, trialNews, true); // two trials, one address: one message
    const trialNoNews = uniqueEmail('trial-no-news');
    await seedTrial(db, trialNoNews, false);
    // An account that said no to news decides for the trial of its own address.
    const accountSaysNo = uniqueEmail('acct-says-no');
    await seedAccounts(db, [accountSaysNo], { news: false });
    await seedTrial(db, accountSaysNo, true);
    // Unsubscribed with the one-click link of an earlier message (RFC 8058 POST).
    const unsubscribed = uniqueEmail('trial-unsubscribed');
    await seedTrial(db, unsubscribed, true);
    const link = unsubscribeUrl({ publicUrl: server.config.publicUrl, secret: server.config.mailSecret }, unsubscribed);
    assert.equal((await fetch(link, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' })).status, 200);

    audience.push(portalNews.email, ...accountNews, trialNews);
    outsiders.push(changedMind.email, deleted.email, noConsent, unverified, cancelled, trialNoNews, accountSaysNo, unsubscribed);

    const releaseId = await insertRelease(db, '9.8.7', 'Resumable uploads to ProFTPD.\n\nFaster small files.');
    // Published twice at once (a double click, two servers): one campaign.
    const calls = await Promise.all([announceRelease(server.app.jobs, releaseId), announceRelease(server.app.jobs, releaseId)]);
    const campaignIds = calls.filter((id): id is number => id !== null);
    assert.equal(campaignIds.length, 1, `one call announces, the other does nothing (${JSON.stringify(calls)})`);
    assert.equal(await announceRelease(server.app.jobs, releaseId), null, 'announced before: nothing');
    const campaignId = campaignIds[0]!;
    const [[release]] = await db.query<RowDataPacket[]>('SELECT announced_at FROM releases WHERE id = ?', [releaseId]);
    assert.ok(release!.announced_at instanceof Date);

    await waitUntilSent(db, campaignId);
    const mails = assertOncePerRecipient(smtp, 'Ferry 9.8.7 is available', audience);
    for (const mail of mails) {
      assertMarketingMessage(server, mail);
      assert.match(mail.parsed.text!, /Resumable uploads to ProFTPD\.\n\nFaster small files\./);
      assert.ok(mail.parsed.text!.includes(`Download it: ${server.config.publicUrl}/download`), 'the download link');
    }
    for (const outsider of outsiders) {
      assert.equal(smtp.to(outsider).filter((m) => /available|news/i.test(m.parsed.subject ?? '')).length, 0, `${outsider} gets nothing`);
    }
    assert.deepEqual(await campaignProgress(db, campaignId), { total: audience.length, sent: audience.length, skipped: 0, failed: 0, pending: 0 });
  });

  it('lets staff write news in /admin, preview it, send it once, and follow the send', async () => {
    assert.ok(audience.length > 0, 'the first test filled the audience');
    const client = await signedInAdmin(server);
    const page = await client.get('/admin/news');
    assert.equal(page.status, 200);
    assert.match(text(page.html), new RegExp(`That is ${audience.length} addresses today`));

    // Bad input: a field message, nothing written.
    const bad = await client.post('/admin/news', { _csrf: csrfToken(page.html), subject: '', body: 'x'.repeat(20_001) });
    assert.equal(bad.status, 400);
    assert.match(text(bad.html), /Enter the subject/);
    assert.match(text(bad.html), /at most 20,000 characters/);
    // A form without the session's CSRF token is refused.
    assert.equal((await client.post('/admin/news', { subject: 'Forged', body: 'Forged' })).status, 403);

    const subject = `Ferry news ${randomBytes(3).toString('hex')}: sync got faster`;
    const written = await client.post('/admin/news', { _csrf: csrfToken(page.html), subject, body: 'Dear user,\r\n\r\nsync now compares <b>checksums</b> in parallel.' });
    assert.equal(written.status, 303, text(written.html));
    const path = written.location!;
    assert.match(path, /^\/admin\/news\/\d+$/);
    const campaignId = Number(path.split('/').pop());

    // The preview is the text a recipient gets, footer and postal address included; nothing sent yet.
    const preview = await client.get(path);
    assert.equal(preview.status, 200);
    const previewText = text(preview.html);
    assert.ok(preview.html.includes('sync now compares &lt;b&gt;checksums&lt;/b&gt; in parallel.'), 'the text, escaped, as typed');
    assert.ok(previewText.includes(POSTAL_ADDRESS));
    assert.match(previewText, /To unsubscribe, open this link \(one click, no login\): \[the recipient's own one-click link\]/);
    assert.match(previewText, new RegExp(`Send to ${audience.length} addresses`));
    assert.equal(bySubject(smtp, subject).size, 0, 'a preview sends nothing');

    // Send, and a second click (an old tab) that sends nothing more.
    const sent = await client.post(`${path}/send`, { _csrf: csrfToken(preview.html) });
    assert.equal(sent.status, 303);
    assert.equal(sent.location, `${path}?done=news-sending`);
    const again = await client.post(`${path}/send`, { _csrf: csrfToken(preview.html) });
    assert.equal(again.location, `${path}?done=news-started-before`);

    await waitUntilSent(db, campaignId);
    const mails = assertOncePerRecipient(smtp, subject, audience);
    for (const mail of mails) {
      assertMarketingMessage(server, mail);
      assert.match(mail.parsed.text!, /Dear user,\n\nsync now compares <b>checksums<\/b> in parallel\./);
      assert.match(mail.parsed.html as string, /sync now compares &lt;b&gt;checksums&lt;\/b&gt; in parallel\./);
    }

    const progress = await client.get(path);
    const figure = (name: string) => new RegExp(`id="progress-${name}">([^<]*)<`).exec(progress.html)?.[1];
    assert.deepEqual(['total', 'sent', 'failed', 'pending'].map(figure), [String(audience.length), String(audience.length), '0', '0']);
    assert.match(progress.html, /id="state">sent</);
    const list = text((await client.get('/admin/news')).html);
    assert.ok(list.includes(subject) && list.includes('Ferry 9.8.7 is available'), 'news and release notices are listed');

    // Without a session: the sign-in page, and nothing sent.
    const stranger = await fetch(`${server.url}${path}/send`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '', redirect: 'manual' });
    assert.equal(stranger.status, 303);
    assert.equal(stranger.headers.get('location'), '/admin/login');
    assert.equal((await client.get('/admin/news/999999')).status, 404);
    assertOncePerRecipient(smtp, subject, audience);
  });
});

describe('A campaign sent by two workers, with Redis flushed mid-send', function () {
  this.timeout(120_000);

  it('reaches every recipient exactly once after a resume, and skips those who changed their mind meanwhile', async () => {
    const smtp = await startSmtp();
    // The server queues only; two worker sets (each its own Redis connections, SMTP pools and MySQL pool) send.
    const server = await startPortalServer(smtp, { runWorkers: false, marketingMailPerMinute: 2_400, companyPostalAddress: POSTAL_ADDRESS });
    const db = await openDb(server.config.databaseUrl);
    const workers: { ctx: JobContext; pool: Pool }[] = [];
    try {
      const everyone = Array.from({ length: 245 }, () => uniqueEmail('twice-nobody'));
      await seedAccounts(db, everyone, { news: true });
      const subject = 'Two workers, one message each';
      const id = await createNewsDraft(db, { subject, body: 'Hello from two workers.' }, new Date());
      assert.equal(await startCampaign(server.app.jobs, id), true);
      // Queued, not yet sent: three addresses unsubscribe, two accounts turn news off. Their messages are not sent.
      const changedMinds = everyone.slice(0, 5);
      await db.query("INSERT INTO mail_opt_outs (email, source, opted_out_at) VALUES ?", [changedMinds.slice(0, 3).map((e) => [e, 'unsubscribe_link', new Date()])]);
      await db.query('UPDATE customers SET marketing_opt_in = FALSE WHERE email IN (?)', [changedMinds.slice(3)]);
      const recipients = everyone.slice(5);

      for (let i = 0; i < 2; i++) {
        const pool = createPool(server.config.databaseUrl, 4);
        const ctx = createJobContext(server.config as Config, pool, server.app.log);
        await startWorkers(ctx);
        workers.push({ ctx, pool });
      }

      // Mid-send: every Bull key of this deployment goes (as a Redis restart without persistence would do).
      await until('a part of the send to arrive', async () => bySubject(smtp, subject).size >= 40, 60_000, 20);
      let removed = 0;
      for (const pattern of [`${server.config.redisPrefix}:bull:*`]) {
        let cursor = '0';
        do {
          const [next, keys] = await server.app.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
          cursor = next;
          if (keys.length) removed += await server.app.redis.del(...keys);
        } while (cursor !== '0');
      }
      assert.ok(removed > 0);
      const atFlush = bySubject(smtp, subject).size;
      assert.ok(atFlush < recipients.length, `flushed mid-send (${atFlush} of ${recipients.length} had arrived)`);
      // What was in flight finishes; what Redis lost stays pending in MySQL.
      const stuck = await until('the send to stop short', async () => {
        const p = await campaignProgress(db, id);
        const before = p.pending;
        await new Promise((r) => setTimeout(r, 1_000));
        const after = await campaignProgress(db, id);
        return after.pending === before ? after : undefined;
      }, 60_000, 10);
      assert.ok(stuck.pending > 0, 'Redis lost queued messages');

      // Staff press "resume" in the admin area; both workers take part again.
      const admin = await signedInAdmin(server);
      const page = await admin.get(`/admin/news/${id}`);
      assert.match(text(page.html), new RegExp(`Pending ${stuck.pending} `));
      const resumed = await admin.post(`/admin/news/${id}/resume`, { _csrf: csrfToken(page.html) });
      assert.equal(resumed.location, `/admin/news/${id}?done=news-resumed`);
      await waitUntilSent(db, id, 90_000);
      assertOncePerRecipient(smtp, subject, recipients);
      assert.deepEqual(await campaignProgress(db, id), { total: 245, sent: 240, skipped: 5, failed: 0, pending: 0 });
      const [skipped] = await db.query<RowDataPacket[]>("SELECT skip_reason, COUNT(*) AS n FROM sent_mail WHERE status = 'skipped' GROUP BY skip_reason ORDER BY skip_reason");
      assert.deepEqual(skipped.map((r) => [r.skip_reason, Number(r.n)]), [['no_news_consent', 2], ['opted_out', 3]]);
      const [[claims]] = await db.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM sent_mail WHERE idempotency_key LIKE ? AND status = 'sent'", [`campaign:${id}:%`]);
      assert.equal(Number(claims!.n), 240);
    } finally {
      for (const { ctx, pool } of workers) {
        await ctx.queues.close();
        ctx.mail.close();
        await pool.end();
      }
      await db.end();
      await server.close();
      await smtp.close();
    }
  });
});

describe('Service mail beside a large marketing send', function () {
  this.timeout(120_000);

  it('delivers a password link while 2,000 marketing messages are still going out', async () => {
    const smtp = await startSmtp();
    // Marketing paced at 600 a minute: the 2,000 take minutes; service mail keeps its own pace.
    const server = await startPortalServer(smtp, { marketingMailPerMinute: 600, companyPostalAddress: POSTAL_ADDRESS });
    const db = await openDb(server.config.databaseUrl);
    try {
      const person = newPerson('reset-overtakes');
      await registerAndVerify(server, smtp, person);
      const recipients = Array.from({ length: 2_000 }, (_, i) => `bulk-${i}-${randomBytes(3).toString('hex')}@example.org`);
      await seedAccounts(db, recipients, { news: true });
      const subject = 'A news message to 2,000 people';
      const id = await createNewsDraft(db, { subject, body: 'Everyone gets this.' }, new Date());
      assert.equal(await startCampaign(server.app.jobs, id), true);
      // All 2,000 queued (the fan-out is done) and the send under way.
      await until('the 2,000 messages to be queued', async () => {
        const fanOut = await server.app.jobs.queues.campaigns.getJobCounts();
        const mail = await server.app.jobs.queues.marketingMail.getJobCounts();
        return fanOut.waiting + fanOut.active === 0 && mail.waiting + mail.active + mail.delayed > 0 && bySubject(smtp, subject).size > 0;
      }, 60_000, 50);

      const asked = await new PortalClient(server.url).submit('/account/password/forgot', '/account/password/forgot', { email: person.email });
      assert.equal(asked.status, 200, text(asked.html));
      const [reset] = await until('the password link', async () => {
        const found = smtp.to(person.email).filter((m) => m.parsed.subject === 'Choose a new Ferry password');
        return found.length ? found : undefined;
      }, 60_000, 20);
      // Order of arrival: how many marketing messages came before the password link, and that more came after.
      const position = smtp.messages.indexOf(reset!);
      const marketingBefore = smtp.messages.slice(0, position).filter((m) => m.parsed.subject === subject).length;
      assert.ok(marketingBefore < recipients.length, `the link came before the marketing send finished (${marketingBefore} before it)`);
      await until('marketing messages after the link', async () => smtp.messages.slice(position + 1).some((m) => m.parsed.subject === subject), 60_000, 50);
      assert.equal(rawHeader(reset!, 'List-Unsubscribe'), undefined, 'a service notice has no unsubscribe header');
    } finally {
      // The rest of the send is not needed: it goes with the queue.
      await server.app.jobs.queues.marketingMail.obliterate({ force: true }).catch(() => {});
      await db.end();
      await server.close();
      await smtp.close();
    }
  });
});
