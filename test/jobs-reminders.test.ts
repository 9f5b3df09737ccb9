import assert from 'node:assert/strict';
import { issueLicense } from './support/admin.js';
import { launchChromium } from './support/browser.js';
import { request } from './support/http.js';
import { newMachine } from './support/machines.js';
import { startServerProcess, until, type ServerProcess } from './support/processes.js';
import { startOwnRedis } from './support/redis-server.js';
import { openDb, startServer, testEnv, type TestServer } from './support/server.js';
import { rawHeader, startSmtp, type TestSmtp } from './support/smtp.js';

const SECOND = 1_000;
let seq = 0;
const newEmail = () => `trial-${Date.now().toString(36)}-${++seq}@example.org`;

/** Times are measured from the trial's start; "on time" allows a few seconds on a loaded machine. */
const ON_TIME_MS = 3_000;

describe('registration reminders', () => {
  let smtp: TestSmtp;
  let server: TestServer;
  before(async () => {
    smtp = await startSmtp();
    // A whole trial in twelve seconds: reminders 8 s and 4 s before the end, and at the end.
    server = await startServer({
      smtpUrl: smtp.url, trialLengthMs: 12 * SECOND, remindersBeforeEndMs: [8 * SECOND, 4 * SECOND],
      companyPostalAddress: 'Ferry Test Ltd, 9 Quay Lane, Bristol BS1 4AA',
    });
  });
  after(async () => {
    await server.close();
    await smtp.close();
  });

  const startTrial = (email: string, extra: Record<string, unknown> = {}) =>
    request(`${server.url}/v1/trials`, { body: { fingerprint: newMachine(), email, ...extra } });

  it('sends each reminder on time, then the end-of-trial message, with unsubscribe headers and the postal address', async function () {
    this.timeout(40_000);
    const email = newEmail();
    const trial = await startTrial(email);
    const started = Date.parse(trial.body.license.createdAt);
    const ends = Date.parse(trial.body.license.expiresAt);
    const mails = await smtp.waitFor(email, 3, 30_000);
    assert.deepEqual(mails.map((m) => m.parsed.subject), ['Your Ferry trial ends in 8 seconds', 'Your Ferry trial ends in 4 seconds', 'Your Ferry trial has ended']);
    const expected = [ends - 8 * SECOND, ends - 4 * SECOND, ends];
    mails.forEach((m, i) => {
      const late = m.receivedAt - expected[i]!;
      assert.ok(late > -500 && late < ON_TIME_MS, `message ${i} arrived ${late} ms after its time (${(m.receivedAt - started) / 1000} s into the trial)`);
    });
    for (const mail of mails) {
      const unsubscribe = rawHeader(mail, 'List-Unsubscribe')!;
      assert.match(unsubscribe, new RegExp(`^<${server.url.replace(/[.]/g, '\\.')}/unsubscribe\\?e=[^&]+&t=[A-Za-z0-9_-]+>$`));
      assert.equal(rawHeader(mail, 'List-Unsubscribe-Post'), 'List-Unsubscribe=One-Click');
      assert.match(mail.parsed.text!, /Ferry Test Ltd, 9 Quay Lane, Bristol BS1 4AA/);
      assert.match(mail.parsed.text!, /To unsubscribe, open this link \(one click, no login\): http/);
      assert.match(mail.parsed.html as string, /unsubscribe with one click/);
      assert.match(mail.parsed.html as string, /Ferry Test Ltd, 9 Quay Lane, Bristol BS1 4AA/);
      assert.match(mail.parsed.text!, new RegExp(trial.body.license.claimCode));
    }
  });

  it('stops at once for an address that unsubscribed with the one-click link', async function () {
    this.timeout(40_000);
    const email = newEmail();
    const trial = await startTrial(email);
    const [first] = await smtp.waitFor(email, 1);
    const link = /<([^>]+)>/.exec(rawHeader(first!, 'List-Unsubscribe')!)![1]!;
    // RFC 8058: the mail client posts List-Unsubscribe=One-Click, no login, no cookie.
    const res = await fetch(link, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
    assert.equal(res.status, 200);
    await until('the trial to end', async () => Date.now() > Date.parse(trial.body.license.expiresAt) + ON_TIME_MS, 30_000, 200);
    assert.equal(smtp.to(email).length, 1, 'nothing after unsubscribing');
  });

  it('unsubscribes only when the button on the linked page is pressed: fetching the link (a mail scanner) changes nothing', async () => {
    const email = newEmail();
    await startTrial(email);
    const [first] = await smtp.waitFor(email, 1);
    const link = /open this link \(one click, no login\): (\S+)/.exec(first!.parsed.text!)![1]!;
    const db = await openDb(server.config.databaseUrl);
    const optOuts = async () => (await db.query('SELECT source FROM mail_opt_outs WHERE email = ?', [email]))[0];
    const browser = await launchChromium();
    try {
      // What a scanner or link preview does: a plain GET, twice.
      for (let i = 0; i < 2; i++) {
        const scanned = await fetch(link);
        assert.equal(scanned.status, 200);
        assert.doesNotMatch(await scanned.text(), /You are unsubscribed/);
      }
      assert.deepEqual(await optOuts(), [], 'a GET unsubscribes no one');
      // A person: opens the link and presses the one button.
      const page = await browser.newPage();
      await page.goto(link);
      assert.match(await page.locator('h1').innerText(), /Unsubscribe from Ferry reminders and news\?/);
      await page.getByRole('button', { name: 'Unsubscribe' }).click();
      await page.waitForSelector('text=You are unsubscribed');
      assert.deepEqual(await optOuts(), [{ source: 'unsubscribe_link' }]);
    } finally {
      await browser.close();
      await db.end();
    }
    const altered = await fetch(link.replace(/t=[^&]+/, 't=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'));
    assert.equal(altered.status, 400);
  });

  it('sends nothing to a trial user who has bought a license', async function () {
    this.timeout(40_000);
    const email = newEmail();
    const trial = await startTrial(email);
    await issueLicense(server, 1, { email });
    await until('the trial to end', async () => Date.now() > Date.parse(trial.body.license.expiresAt) + ON_TIME_MS, 30_000, 200);
    assert.equal(smtp.to(email).length, 0);
  });

  it('always sends service notices: a revoked license is announced even to an address that opted out', async () => {
    const email = newEmail();
    const db = await openDb(server.config.databaseUrl);
    try {
      await db.query("INSERT INTO mail_opt_outs (email, source, opted_out_at) VALUES (?, 'account', NOW())", [email]);
    } finally {
      await db.end();
    }
    const license = await issueLicense(server, 1, { email });
    await request(`${server.url}/v1/admin/licenses/${license.id}/revoke`, { method: 'POST', token: server.adminToken });
    await request(`${server.url}/v1/admin/licenses/${license.id}/revoke`, { method: 'POST', token: server.adminToken });
    const [notice] = await smtp.waitFor(email, 1);
    assert.equal(notice!.parsed.subject, 'Your Ferry license has been revoked');
    assert.equal(rawHeader(notice!, 'List-Unsubscribe'), undefined, 'a service notice carries no marketing headers');
    assert.match(notice!.parsed.text!, /service notice/);
    const check = await openDb(server.config.databaseUrl);
    try {
      const [rows] = await check.query('SELECT status FROM sent_mail WHERE idempotency_key = ?', [`license-revoked:${license.id}`]);
      assert.deepEqual(rows, [{ status: 'sent' }], 'revoking twice announces once');
    } finally {
      await check.end();
    }
  });

  it('sends nothing to a trial without an email', async () => {
    const trial = await request(`${server.url}/v1/trials`, { body: { fingerprint: newMachine() } });
    assert.equal(trial.status, 201);
    const db = await openDb(server.config.databaseUrl);
    try {
      await until('the trial to end', async () => Date.now() > Date.parse(trial.body.license.expiresAt) + ON_TIME_MS, 30_000, 200);
      const [rows] = await db.query('SELECT COUNT(*) AS n FROM sent_mail WHERE license_id = ?', [trial.body.license.id]);
      assert.equal((rows as { n: number }[])[0]!.n, 0);
    } finally {
      await db.end();
    }
  });
});

describe('reminders with two workers and a Redis restart', () => {
  it('sends every reminder exactly once', async function () {
    this.timeout(120_000);
    const smtp = await startSmtp();
    const redis = await startOwnRedis();
    const env = testEnv({
      LOG_LEVEL: 'warn', SMTP_URL: smtp.url, REDIS_URL: redis.url,
      TRIAL_LENGTH: '20s', REMINDERS_BEFORE_END: '12s,6s', REMINDER_SWEEP_EVERY: '2s',
    });
    const workers: ServerProcess[] = [];
    try {
      workers.push(await startServerProcess(env));
      workers.push(await startServerProcess(env));
      const emails = [newEmail(), newEmail(), newEmail()];
      const trials = [];
      for (const [i, email] of emails.entries()) {
        trials.push((await request(`${workers[i % 2]!.url}/v1/trials`, { body: { fingerprint: newMachine(), email } })).body);
      }
      // Redis dies with every delayed job in it, and comes back empty.
      await redis.restart();
      const lastEnd = Math.max(...trials.map((t) => Date.parse(t.license.expiresAt)));
      for (const email of emails) await smtp.waitFor(email, 3, 60_000);
      await until('a while after the last trial ended', async () => Date.now() > lastEnd + 6_000, 30_000, 200);
      for (const email of emails) {
        const subjects = smtp.to(email).map((m) => m.parsed.subject);
        assert.deepEqual(subjects, ['Your Ferry trial ends in 12 seconds', 'Your Ferry trial ends in 6 seconds', 'Your Ferry trial has ended'], email);
      }
      const db = await openDb(env.DATABASE_URL!);
      try {
        const [rows] = await db.query("SELECT idempotency_key AS k, status FROM sent_mail WHERE idempotency_key LIKE 'reminder:%'");
        assert.equal((rows as unknown[]).length, 9);
        assert.ok((rows as { status: string }[]).every((r) => r.status === 'sent'));
      } finally {
        await db.end();
      }
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
      await redis.stop();
      await smtp.close();
    }
  });
});
