import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import type { Pool } from 'mysql2/promise';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { parseKey } from '../licensing/index.js';
import { issueLicense } from './support/admin.js';
import { checkPage, launchChromium, PHONE, screenshot } from './support/browser.js';
import { request } from './support/http.js';
import { newMachine } from './support/machines.js';
import { csrfToken, PortalClient, text, type PageAnswer } from './support/portal.js';
import { until } from './support/processes.js';
import { openDb, startServer, startServerWorld, type ServerWorld, type TestServer } from './support/server.js';

/**
 * The admin area at /admin: staff sign in with ADMIN_TOKEN and get a session; every page, form and
 * the queue dashboard needs it. Over HTTP (a browser without JavaScript) and in headless Chromium.
 */

const DAY_MS = 86_400_000;
const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** A client that has signed in with the admin token (cookies kept, forms posted as a browser would). */
async function signedIn(server: TestServer): Promise<PortalClient> {
  const client = new PortalClient(server.url);
  const answer = await client.post('/admin/login', { token: server.adminToken });
  assert.equal(answer.status, 303, text(answer.html));
  assert.ok(client.cookies.get('ferry_admin'), 'the session cookie is set');
  return client;
}

async function licenseCount(db: Pool): Promise<number> {
  const [rows] = await db.query('SELECT COUNT(*) AS n FROM licenses');
  return Number((rows as { n: number }[])[0]!.n);
}

async function adminSessionKeys(server: TestServer): Promise<string[]> {
  return server.app.redis.keys(`${server.config.redisPrefix}:admin-session:*`);
}

/** 30 days of what the usage roll-up writes, ending today: a steady rise, six countries, two signals. */
async function seedStatistics(db: Pool, licenseId: number): Promise<void> {
  const today = Date.now();
  for (let i = 29; i >= 0; i--) {
    const day = dayOf(today - i * DAY_MS);
    const n = 30 - i;
    await db.query(
      'INSERT INTO usage_daily (day, installations, new_installations, active_machines_day, active_machines_week, uses, computed_at) VALUES (?, ?, ?, ?, ?, ?, NOW())',
      [day, 100 + n * 12, 12, 40 + (n % 7) * 5, 90 + n * 3, 300 + n * 10],
    );
    for (const [country, trials] of [['DE', 5], ['FR', 3], ['JP', 2], ['BR', 1], ['GB', 4], ['US', 6]] as const) {
      await db.query('INSERT INTO usage_daily_countries (day, country, trials, active_machines) VALUES (?, ?, ?, ?)', [day, country, trials, trials * 3]);
    }
    for (const [bucket, machines] of [['1', 20], ['2-5', 14], ['6-20', 5], ['21+', 1]] as const) {
      await db.query('INSERT INTO usage_daily_frequency (day, uses_bucket, machines) VALUES (?, ?, ?)', [day, bucket, machines + (n % 3)]);
    }
  }
  await db.query('INSERT INTO piracy_signals (day, kind, subject, count, detail) VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?)', [
    dayOf(today - DAY_MS), 'key_over_seats', `license:${licenseId}`, 4, '4 more machine(s) than its 2 seat(s) tried the key',
    dayOf(today - 2 * DAY_MS), 'trials_from_one_address', 'address:0123456789abcdef', 7, '7 trials started from one address',
  ]);
}

describe('The admin area (/admin)', function () {
  this.timeout(60_000);
  let server: TestServer;
  let db: Pool;

  let world: ServerWorld;
  before(async () => {
    world = await startServerWorld();
    ({ server, db } = world);
  });
  after(() => world?.close());

  /** Every page and action of the area, with an id that exists where it needs one. */
  const PAGES = ['/admin', '/admin/', '/admin/licenses', '/admin/licenses?kind=trial', '/admin/licenses?q=x', '/admin/licenses.csv', '/admin/licenses/1', '/admin/licenses/1/revoke', '/admin/orders', '/admin/reports', '/admin/reports/1.csv',
    '/admin/reports/1.json', '/admin/statistics', '/admin/statistics?days=365', '/admin/news', '/admin/news/1', '/admin/releases', '/admin/queues', '/admin/queues/queue/mail', '/admin/no-such-page'];
  const ACTIONS = ['/admin/licenses', '/admin/licenses/1/revoke', '/admin/licenses/1/suspend', '/admin/licenses/1/reinstate', '/admin/licenses/1/extend', '/admin/licenses/1/seats', '/admin/licenses/1/rebind-budget', '/admin/orders/1/paid', '/admin/reports', '/admin/reports/usage-rollup', '/admin/news', '/admin/news/1/send', '/admin/news/1/resume', '/admin/releases', '/admin/logout'];
  const QUEUE_API = [['GET', '/admin/queues/api/queues'], ['GET', '/admin/queues/api/redis/stats'], ['PUT', '/admin/queues/api/queues/mail/retry/failed'], ['PUT', '/admin/queues/api/queues/usage-rollup/pause']];

  it('sends a visitor without a session to the sign-in page from every page and action, and answers 401 to the dashboard API', async () => {
    await issueLicense(server, 1);
    const before = await licenseCount(db);
    for (const cookie of [undefined, 'ferry_admin=made-up', `ferry_admin=${'A'.repeat(43)}`]) {
      const headers: Record<string, string> = cookie ? { cookie } : {};
      for (const path of PAGES) {
        const res = await fetch(`${server.url}${path}`, { headers, redirect: 'manual' });
        assert.equal(res.status, 303, `${path} with ${cookie ?? 'no cookie'}`);
        assert.equal(res.headers.get('location'), `/admin/login?next=${encodeURIComponent(path)}`, path);
      }
      for (const path of ACTIONS) {
        const res = await fetch(`${server.url}${path}`, {
          method: 'POST', headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, body: 'seats=5&from=2026-01-01&to=2026-06-30&day=2026-01-01', redirect: 'manual',
        });
        assert.equal(res.status, 303, `POST ${path}`);
        assert.equal(res.headers.get('location'), '/admin/login', `POST ${path}`);
      }
      for (const [method, path] of QUEUE_API) {
        const res = await request(`${server.url}${path}`, { method, headers });
        assert.equal(res.status, 401, `${method} ${path}`);
        assert.equal(res.body.error.code, 'ADMIN_SESSION_REQUIRED');
      }
    }
    assert.equal(await licenseCount(db), before, 'no form did anything');
    const rollups = await server.app.jobs.queues.usageRollup.getJobs(['waiting', 'active', 'delayed', 'completed', 'failed']);
    assert.equal(rollups.filter((job) => job.data.day === '2026-01-01').length, 0, 'no roll-up was queued');
    // The sign-in page and its stylesheet are open to all.
    assert.equal((await fetch(`${server.url}/admin/login`)).status, 200);
    assert.equal((await fetch(`${server.url}/admin/admin.css`)).status, 200);
  });

  it('refuses every wrong token with the same words and no cookie, and signs in with the right one', async () => {
    const wrong = ['', 'x', server.adminToken.slice(0, -1), `${server.adminToken}x`, `${server.adminToken.slice(0, -1)}${server.adminToken.endsWith('A') ? 'B' : 'A'}`, 'a'.repeat(500)];
    const messages = new Set<string>();
    for (const token of wrong) {
      const client = new PortalClient(server.url);
      const answer = await client.post('/admin/login', { token });
      assert.equal(answer.status, 401, `token "${token.slice(0, 10)}…"`);
      assert.equal(answer.headers.getSetCookie().length, 0, 'no cookie for a wrong token');
      messages.add(/id="token-error"[^>]*>([\s\S]*?)<\/p>/.exec(answer.html)![1]!.replace(/<[^>]+>/g, '').trim());
    }
    assert.deepEqual([...messages], ['Error: That is not the admin token.']);

    const sessionsBefore = (await adminSessionKeys(server)).length;
    const client = new PortalClient(server.url);
    const answer = await client.post('/admin/login', { token: server.adminToken, next: '/admin/statistics' });
    assert.equal(answer.status, 303);
    assert.equal(answer.location, '/admin/statistics', 'back to the page asked for');
    const [cookie] = answer.headers.getSetCookie();
    assert.match(cookie!, /^ferry_admin=[A-Za-z0-9_-]{43}; Max-Age=28800; Path=\/admin; HttpOnly; SameSite=Strict$/);
    const keys = await adminSessionKeys(server);
    assert.equal(keys.length, sessionsBefore + 1);
    const id = client.cookies.get('ferry_admin')!;
    assert.ok(keys.every((key) => !key.includes(id)), 'Redis keys name a digest of the id, not the id');
    const ttl = Math.max(...(await Promise.all(keys.map((key) => server.app.redis.ttl(key)))));
    assert.ok(ttl > 8 * 3600 - 60 && ttl <= 8 * 3600, `the session lasts 8 hours (TTL ${ttl})`);

    // Only pages of the admin area are followed after signing in.
    for (const next of ['https://evil.example/', '//evil.example/admin', '/account/data', '/admin//evil.example']) {
      const elsewhere = await new PortalClient(server.url).post('/admin/login', { token: server.adminToken, next });
      assert.equal(elsewhere.location, '/admin', next);
    }
  });

  it('stops an address after ten wrong tokens, the right one included, for a quarter of an hour, at both doors', async () => {
    const own = await startServer();
    try {
      for (let i = 1; i <= 10; i++) assert.equal((await new PortalClient(own.url).post('/admin/login', { token: `wrong-${i}` })).status, 401);
      const blocked = await new PortalClient(own.url).post('/admin/login', { token: own.adminToken });
      assert.equal(blocked.status, 429);
      assert.match(text(blocked.html), /Too many wrong tokens from your address\. Try again in 15 minutes\./);
      assert.ok(Number(blocked.headers.get('retry-after')) > 800);
      // The API's bearer token is the same secret behind the same limit.
      const api = await request(`${own.url}/v1/admin/licenses`, { body: { kind: 'permanent', seats: 1 }, token: own.adminToken });
      assert.equal(api.status, 429);
      assert.equal(api.body.error.code, 'RATE_LIMITED');
    } finally {
      await own.close();
    }
  });

  it('evaluates at most ten of 300 concurrent wrong tokens sent to the sign-in and the API together', async () => {
    const own = await startServer();
    try {
      const guesses = Array.from({ length: 300 }, (_, i) => i % 2 === 0
        ? new PortalClient(own.url).post('/admin/login', { token: `guess-${i}` }).then((a) => ({ status: a.status, retryAfter: a.headers.get('retry-after') }))
        : request(`${own.url}/v1/admin/licenses`, { body: { kind: 'permanent', seats: 1 }, token: `guess-${i}` }).then((a) => ({ status: a.status, retryAfter: a.headers.get('retry-after') })));
      const answers = await Promise.all(guesses);
      const evaluated = answers.filter((a) => a.status === 401).length;
      const refused = answers.filter((a) => a.status === 429);
      assert.equal(evaluated, 10, `${evaluated} guesses were compared with the token`);
      assert.equal(refused.length, 290);
      assert.ok(refused.every((a) => Number(a.retryAfter) > 0), 'every refusal says when to come back');
      // The right token, now: refused at both doors until the window has passed.
      assert.equal((await new PortalClient(own.url).post('/admin/login', { token: own.adminToken })).status, 429);
      assert.equal((await request(`${own.url}/v1/admin/licenses`, { body: { kind: 'permanent', seats: 1 }, token: own.adminToken })).status, 429);
      const ownDb = await openDb(own.config.databaseUrl);
      try {
        assert.equal(await licenseCount(ownDb), 0);
      } finally {
        await ownDb.end();
      }
    } finally {
      await own.close();
    }
  });

  it('never stops staff who use the right token, however often', async () => {
    const own = await startServer();
    try {
      for (let i = 0; i < 15; i++) {
        assert.equal((await request(`${own.url}/v1/admin/licenses`, { body: { kind: 'permanent', seats: 1 }, token: own.adminToken })).status, 201);
      }
      assert.equal((await new PortalClient(own.url).post('/admin/login', { token: own.adminToken })).status, 303);
    } finally {
      await own.close();
    }
  });

  it('refuses a form without its session’s CSRF token, or sent from another site', async () => {
    const client = await signedIn(server);
    const other = await signedIn(server);
    const otherToken = csrfToken((await other.get('/admin/licenses')).html);
    const before = await licenseCount(db);
    for (const fields of [{ seats: '3' } as Record<string, string>, { seats: '3', _csrf: '' }, { seats: '3', _csrf: otherToken }, { seats: '3', _csrf: 'x'.repeat(43) }]) {
      const refused = await client.post('/admin/licenses', fields);
      assert.equal(refused.status, 403, JSON.stringify(fields));
      assert.match(text(refused.html), /This form has expired/);
    }
    const token = csrfToken((await client.get('/admin/licenses')).html);
    const forged = await client.fetch('/admin/licenses', {
      body: new URLSearchParams({ seats: '3', _csrf: token }).toString(),
      headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
    });
    assert.equal(forged.status, 403);
    const forgedApi = await client.fetch('/admin/queues/api/queues/mail/retry/failed', { method: 'PUT', headers: { origin: 'https://evil.example' } });
    assert.equal(forgedApi.status, 403, 'the dashboard API too');
    assert.equal(await licenseCount(db), before, 'nothing was issued');

    const issued = await client.post('/admin/licenses', { seats: '3', _csrf: token });
    assert.equal(issued.status, 201, text(issued.html));
    assert.equal(await licenseCount(db), before + 1);
  });

  it('issues a permanent license through the form, shows the key once, lists it, and revokes it after a confirmation', async () => {
    const client = await signedIn(server);
    const issued = await client.submit('/admin/licenses', '/admin/licenses', {
      seats: '2', email: 'buyer@analytical.example', customerType: 'business', name: 'Ada Lovelace', organization: 'Analytical Engines Ltd',
      address: '1 Engine Row, Leeds', country: 'gb',
    });
    assert.equal(issued.status, 201, text(issued.html));
    assert.equal(issued.headers.get('cache-control'), 'no-store');
    const key = /<code class="key" id="license-key">([^<]+)<\/code>/.exec(issued.html)?.[1];
    assert.ok(key && parseKey(key), `a well-formed key is on the page: ${key}`);
    const id = Number(/License (\d+) issued/.exec(text(issued.html))?.[1]);
    assert.match(text(issued.html), /Seats used 0 of 2/);
    assert.match(text(issued.html), /Analytical Engines Ltd, Ada Lovelace · business · United Kingdom \(GB\)/);

    // The key works, and takes a seat that the list shows.
    const fingerprint = newMachine();
    assert.equal((await request(`${server.url}/v1/activations`, { body: { key, fingerprint } })).status, 201);
    const list = await client.get('/admin/licenses?kind=permanent');
    const row = new RegExp(`<tr id="license-${id}">([\\s\\S]*?)</tr>`).exec(list.html)?.[1];
    assert.ok(row, 'the license is listed');
    assert.match(text(row), new RegExp(`^${id} permanent …\\w{5} active 1 / 2 Analytical Engines Ltd · Ada Lovelace · GB`));
    assert.ok(!list.html.includes(key!), 'the key is never shown again');

    const confirm = await client.get(`/admin/licenses/${id}/revoke`);
    assert.equal(confirm.status, 200);
    assert.match(text(confirm.html), /Revoke license \d+\?.*Every machine using it \(1 now\) loses it at its next validation/);
    const revoked = await client.post(`/admin/licenses/${id}/revoke`, { _csrf: csrfToken(confirm.html) });
    assert.equal(revoked.status, 303);
    assert.equal(revoked.location, `/admin/licenses?id=${id}&done=revoked`);
    const after = await client.get(revoked.location!);
    assert.match(text(after.html), /The license is revoked/);
    assert.match(text(new RegExp(`<tr id="license-${id}">([\\s\\S]*?)</tr>`).exec(after.html)![1]!), /revoked/);
    const again = await request(`${server.url}/v1/activations`, { body: { key, fingerprint: newMachine() } });
    assert.equal(again.status, 403);
    assert.equal(again.body.error.code, 'LICENSE_REVOKED');
    // The customer is told, as when the API revokes: a service notice (to the outbox, without SMTP).
    const notice = await until('the revocation notice', async () => {
      const [rows] = await db.query("SELECT to_email, template FROM sent_mail WHERE idempotency_key = ? AND status = 'sent'", [`license-revoked:${id}`]);
      return (rows as { to_email: string; template: string }[])[0];
    });
    assert.deepEqual({ ...notice }, { to_email: 'buyer@analytical.example', template: 'license-revoked' });
  });

  it('shows what is wrong next to each field of the issue form and issues nothing', async () => {
    const client = await signedIn(server);
    const before = await licenseCount(db);
    const answer = await client.submit('/admin/licenses', '/admin/licenses', { seats: '0', email: 'not-an-address', customerType: 'business', name: '', address: 'x', country: 'XX' });
    assert.equal(answer.status, 400);
    const errorOf = (field: string) => new RegExp(`id="${field}-error"[^>]*>([\\s\\S]*?)</p>`).exec(answer.html)?.[1]?.replace(/<[^>]+>/g, '').trim();
    assert.match(errorOf('seats')!, /whole number from 1 to 100,000/);
    assert.match(errorOf('email')!, /email address like/);
    assert.match(errorOf('name')!, /customer’s name/);
    assert.match(errorOf('organization')!, /business or organization/);
    assert.match(errorOf('country')!, /two-letter ISO code/);
    assert.match(answer.html, /value="not-an-address"/, 'what was typed stays in the form');
    assert.equal(await licenseCount(db), before);
  });

  it('files an export-compliance report from the form, and downloads the same bytes as the API', async () => {
    await issueLicense(server, 4, { customer: { type: 'business', name: 'Grace Hopper', organization: 'Compiler GmbH', address: 'Hauptstraße 1, Berlin', country: 'DE' } });
    const client = await signedIn(server);
    const today = dayOf(Date.now());
    const filed = await client.submit('/admin/reports', '/admin/reports', { from: today, to: today });
    assert.equal(filed.status, 303, text(filed.html));
    const id = Number(/report=(\d+)/.exec(filed.location!)?.[1]);
    const page = await client.get(filed.location!);
    assert.match(text(page.html), /The export-compliance report is filed/);
    const row = new RegExp(`<tr id="report-${id}" class="highlight">([\\s\\S]*?)</tr>`).exec(page.html)?.[1];
    assert.ok(row, 'the new report is listed');
    const [report] = (await db.query('SELECT row_count, csv_sha256 FROM export_reports WHERE id = ?', [id]))[0] as { row_count: number; csv_sha256: string }[];
    assert.ok(report!.row_count >= 1);
    assert.match(row, new RegExp(report!.csv_sha256));

    const csv = await client.get(`/admin/reports/${id}.csv`);
    assert.equal(csv.status, 200);
    assert.match(csv.headers.get('content-disposition')!, new RegExp(`attachment; filename="ferry-export-compliance-${today}-to-${today}-${id}\\.csv"`));
    const api = await fetch(`${server.url}/v1/admin/reports/${id}.csv`, { headers: { authorization: `Bearer ${server.adminToken}` } });
    assert.equal(csv.html, await api.text(), 'byte-identical to the API download');
    assert.match(csv.html, /Compiler GmbH/);
    const json = await client.get(`/admin/reports/${id}.json`);
    assert.equal(JSON.parse(json.html).report.csvSha256, report!.csv_sha256);
    assert.equal((await client.get('/admin/reports/999999.csv')).status, 404);

    const backwards = await client.submit('/admin/reports', '/admin/reports', { from: today, to: '2020-01-01' });
    assert.equal(backwards.status, 400);
    assert.match(text(backwards.html), /The period must end on or after the day it starts/);
  });

  it('queues the usage roll-up of a day on the usage-rollup queue', async () => {
    const client = await signedIn(server);
    const day = dayOf(Date.now() - 3 * DAY_MS);
    const queued: PageAnswer = await client.submit('/admin/reports', '/admin/reports/usage-rollup', { day });
    assert.equal(queued.status, 303, text(queued.html));
    const jobId = new URL(queued.location!, server.url).searchParams.get('job')!;
    const job = await server.app.jobs.queues.usageRollup.getJob(jobId);
    assert.deepEqual(job?.data, { day });
    const page = await client.get(queued.location!);
    assert.match(text(page.html), new RegExp(`Job ${jobId} rolls up`));
    assert.equal((await client.submit('/admin/reports', '/admin/reports/usage-rollup', { day: '2026-02-30' })).status, 400);
  });

  it('signs out: the session is gone from Redis and its cookie opens nothing', async () => {
    const client = await signedIn(server);
    const cookie = `ferry_admin=${client.cookies.get('ferry_admin')}`;
    const keysBefore = await adminSessionKeys(server);
    const out = await client.submit('/admin', '/admin/logout', {});
    assert.equal(out.status, 303);
    assert.equal(out.location, '/admin/login?done=signed-out');
    assert.equal((await adminSessionKeys(server)).length, keysBefore.length - 1);
    const res = await fetch(`${server.url}/admin/licenses`, { headers: { cookie }, redirect: 'manual' });
    assert.equal(res.status, 303);
  });

  it('leaves the JSON API alone: a form body to /v1 still gets 415, and no admin cookie or CSP there', async () => {
    const res = await request(`${server.url}/v1/admin/licenses`, {
      rawBody: 'kind=permanent&seats=1', token: server.adminToken, headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(res.status, 415);
    assert.equal(res.headers.get('content-security-policy'), null);
  });

  describe('in headless Chromium', function () {
    this.timeout(120_000);
    // Its own server: the statistics it shows are exactly the ones seeded here.
    let server: TestServer;
    let db: Pool;
    let browser: Browser;
    let context: BrowserContext | undefined;

    before(async () => {
      server = await startServer();
      db = await openDb(server.config.databaseUrl);
      const flagged = await issueLicense(server, 2, { customer: { type: 'business', name: 'Alan Turing', organization: 'Bletchley Systems', address: '1 Park, Milton Keynes', country: 'GB' } });
      await seedStatistics(db, flagged.id);
      browser = await launchChromium();
    });
    afterEach(async () => {
      await context?.close();
      context = undefined;
    });
    after(async () => {
      await browser?.close();
      await db?.end();
      await server?.close();
    });

    const nav = (page: Page, name: string) => page.getByRole('navigation', { name: 'Admin area' }).getByRole('link', { name, exact: true });

    const signIn = async (page: Page, path: string) => {
      await page.goto(`${server.url}${path}`);
      await page.waitForURL('**/admin/login?next=*');
      await page.getByLabel('Admin token').fill(server.adminToken);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(`${server.url}${path}`);
    };

    /** Every page: labels on every field, nothing wider than the window, no stack trace, nothing blocked by the CSP. */
    const looksRight = async (page: Page, name: string, blocked: string[]) => {
      await screenshot(page, `admin-${name}`);
      assert.deepEqual(await checkPage(page), [], `problems on ${page.url()}`);
      assert.deepEqual(blocked, [], `the CSP blocked something on ${page.url()}`);
    };

    const cspViolations = (page: Page): string[] => {
      const blocked: string[] = [];
      page.on('console', (message) => {
        if (message.type() === 'error' && /Content Security Policy/.test(message.text())) blocked.push(message.text());
      });
      return blocked;
    };

    it('signs in and shows each page on a phone, the statistics with their charts', async () => {
      context = await browser.newContext(PHONE);
      const page = await context.newPage();
      const blocked = cspViolations(page);
      await signIn(page, '/admin');
      await page.getByRole('heading', { name: 'Overview' }).waitFor();
      assert.match(await page.locator('main').innerText(), /permanent licenses/);
      await looksRight(page, 'overview', blocked);

      await nav(page, 'Licenses').click();
      await page.getByRole('heading', { name: 'Recent licenses' }).waitFor();
      await page.getByLabel('Seats (machines)').fill('5');
      await page.getByLabel('A business or organization').check();
      await page.getByLabel('Customer name').fill('Katherine Johnson');
      await page.getByLabel('Organization', { exact: true }).fill('Orbital Mechanics SARL');
      await page.getByLabel('Postal address').fill('2 Rue des Étoiles, Toulouse');
      await page.getByLabel('Country (ISO code)').fill('FR');
      await looksRight(page, 'licenses', blocked);
      await page.getByRole('button', { name: 'Issue license' }).click();
      const key = await page.locator('#license-key').innerText();
      assert.ok(parseKey(key), key);
      await looksRight(page, 'license-issued', blocked);

      await page.getByRole('link', { name: 'See it in the list' }).click();
      // Its own page: machines, history, and what staff can change.
      await page.locator('tr[id^="license-"] a').first().click();
      await page.getByRole('heading', { name: /^License \d+$/ }).waitFor();
      await page.getByLabel('Seats', { exact: true }).fill('6');
      await page.getByRole('button', { name: 'Set the seats' }).click();
      await page.getByText('The seats are changed').waitFor();
      assert.match(await page.locator('main').innerText(), /seats_changed\s+5 → 6 \(by staff\)/);
      await looksRight(page, 'license', blocked);
      await nav(page, 'Orders').click();
      await page.getByRole('heading', { name: 'Waiting for payment' }).waitFor();
      await looksRight(page, 'orders', blocked);
      await nav(page, 'Licenses').click();
      await page.getByLabel(/^Search by email/).fill('Orbital Mechanics');
      await page.getByRole('button', { name: 'Search' }).click();
      await page.getByRole('heading', { name: /^Licenses matching/ }).waitFor();
      await page.getByRole('link', { name: /^Revoke…/ }).click();
      await page.getByRole('heading', { name: /^Revoke license \d+\?$/ }).waitFor();
      await looksRight(page, 'revoke', blocked);
      await page.getByRole('button', { name: /^Revoke license \d+$/ }).click();
      await page.getByText('The license is revoked').waitFor();

      await nav(page, 'Reports').click();
      await page.getByRole('button', { name: 'File the report' }).click();
      await page.getByText('The export-compliance report is filed').waitFor();
      await looksRight(page, 'reports', blocked);
      const [download] = await Promise.all([page.waitForEvent('download'), page.locator('tr.highlight').getByRole('link', { name: /^CSV/ }).click()]);
      assert.match(download.suggestedFilename(), /^ferry-export-compliance-\d{4}-\d\d-\d\d-to-\d{4}-\d\d-\d\d-\d+\.csv$/);
      assert.match(await readFile((await download.path())!, 'utf8'), /^event,date,organization,/);

      await nav(page, 'Statistics').click();
      await page.getByRole('heading', { name: 'Statistics' }).waitFor();
      const charts = page.locator('main svg.chart');
      assert.equal(await charts.count(), 4, 'installations, active machines, countries, frequency');
      const titles = await page.locator('main svg.chart > title').allTextContents();
      assert.deepEqual(titles, ['Installations over time', 'Active machines over time', 'Trials by country', 'How often machines use Ferry']);
      assert.equal(await page.locator('#chart-installations-title').count(), 1);
      assert.equal(await page.getByRole('img', { name: 'Active machines over time' }).count(), 1, 'a chart is an image with a name');
      assert.equal(await page.locator('svg[aria-labelledby^="chart-active"] polyline').count(), 2, 'a line a day and a line a week');
      assert.equal(await page.locator('svg[aria-labelledby^="chart-countries"] rect').count(), 6, 'a bar a country');
      assert.equal(await page.locator('svg[aria-labelledby^="chart-frequency"] rect').count(), 4, 'a bar a bucket');
      assert.match(await page.locator('svg[aria-labelledby^="chart-countries"]').innerHTML(), /Germany/);
      const box = await charts.first().boundingBox();
      assert.ok(box && box.width > 300 && box.width <= 390, `the chart fills the phone's width (${box?.width})`);
      const signals = await page.locator('table.signals').innerText();
      assert.match(signals, /key over seats/);
      assert.match(signals, /trials from one address/);
      await looksRight(page, 'statistics', blocked);

      await nav(page, 'News').click();
      await page.getByRole('heading', { name: 'News', exact: true }).waitFor();
      await page.getByLabel('Subject').fill('Ferry learns to sync both ways');
      await page.getByLabel('Text').fill('Hello,\n\nsync now works in both directions.');
      await looksRight(page, 'news', blocked);
      await page.getByRole('button', { name: 'Preview' }).click();
      await page.getByRole('heading', { name: 'Preview: Ferry learns to sync both ways' }).waitFor();
      assert.match(await page.locator('pre.mail-preview').innerText(), /sync now works in both directions\.[\s\S]*To unsubscribe/);
      await looksRight(page, 'news-preview', blocked);
      await page.getByRole('button', { name: /^Send to 0 addresses$/ }).click();
      await page.getByText('The message is being sent').waitFor();
      assert.equal(await page.locator('#progress-pending').innerText(), '0');
      await looksRight(page, 'news-progress', blocked);
    });

    it('loads the queue dashboard with its seven queues', async () => {
      context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const page = await context.newPage();
      const blocked = cspViolations(page);
      await signIn(page, '/admin/queues');
      for (const queue of ['mail', 'marketing-mail', 'campaigns', 'reminders', 'export-report', 'usage-rollup', 'retention']) {
        await page.getByText(queue, { exact: true }).first().waitFor();
      }
      await screenshot(page, 'admin-queues');
      // Its web font would come from Google: the CSP keeps it away, and the UI uses the system's.
      assert.deepEqual(blocked.filter((b) => !/fonts\.googleapis\.com/.test(b)), [], 'nothing of its own was blocked');
      await page.goto(`${server.url}/admin/queues/queue/usage-rollup`);
      await page.getByText('usage-rollup').first().waitFor();
      await screenshot(page, 'admin-queue-usage-rollup');
    });

    it('shows the overview, statistics and sign-in on a desktop screen', async () => {
      context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const page = await context.newPage();
      const blocked = cspViolations(page);
      await page.goto(`${server.url}/admin/login`);
      await looksRight(page, 'login-desktop', blocked);
      await signIn(page, '/admin/statistics');
      assert.equal(await page.locator('main svg.chart').count(), 4);
      await looksRight(page, 'statistics-desktop', blocked);
      await nav(page, 'Overview').click();
      await page.getByRole('heading', { name: 'Jobs' }).waitFor();
      await looksRight(page, 'overview-desktop', blocked);
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByText('You are signed out.').waitFor();
    });
  });
});
