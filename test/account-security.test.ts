import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import {
  csrfToken, fieldError, linkIn, logIn, newPerson, registerAndVerify, PortalClient, portalRoutes, signUp, startPortalWorld, type PortalWorld, startTrial, text, uniqueEmail,
} from './support/portal.js';
import { freePort } from './support/processes.js';
import { REDIS_URL, startServer, type TestServer } from './support/server.js';
import type { TestSmtp } from './support/smtp.js';

/** No page of the portal ever shows these: a stack trace, a file path, an internal error name. */
const INTERNALS = /\bat [\w.<>]+ \(|\.(js|ts):\d+|node_modules|TypeError|ReferenceError|ER_[A-Z_]+|FST_[A-Z_]+/;

describe('MyAccount security', function () {
  this.timeout(120_000);
  let smtp: TestSmtp;
  let server: TestServer;
  let db: Pool;
  let world: PortalWorld;
  before(async () => {
    world = await startPortalWorld({ trustProxy: true });
    ({ smtp, server, db } = world);
  });
  after(() => world?.close());

  const profileName = async (email: string) => {
    const [rows] = await db.query<RowDataPacket[]>('SELECT name, status FROM customers WHERE email = ?', [email]);
    return rows[0] as { name: string; status: string } | undefined;
  };

  describe('CSRF', () => {
    it('refuses a form without the CSRF token on every POST route, and changes nothing', async () => {
      const person = newPerson('csrf');
      const client = await signUp(server, smtp, person);
      const trial = await startTrial(server);
      await client.submit('/account/claim', '/account/claim', { code: trial.claimCode });
      const posts = portalRoutes(server.app).filter((r) => r.startsWith('POST '));
      assert.ok(posts.length >= 15, `only ${posts.length} POST routes found`);
      for (const route of posts) {
        const path = route.slice(5).replace(':id', String(trial.activationId));
        const fields = { email: person.email, password: person.password, current: person.password, name: 'Changed', type: 'individual', address: 'x', country: 'FR', confirm: 'yes', choice: 'none', code: trial.claimCode, seats: '1', age: 'yes' };
        const answer = await client.post(path, fields);
        assert.equal(answer.status, 403, `${route} without a token answered ${answer.status}`);
        assert.match(text(answer.html), /This form has expired/, route);
      }
      // Still logged in, still there, unchanged: no logout, no deletion, no cancellation, no new name.
      assert.equal((await client.get('/account/data')).status, 200);
      assert.deepEqual(await profileName(person.email), { name: person.name, status: 'active' });
      const [optOuts] = await db.query<RowDataPacket[]>('SELECT 1 FROM mail_opt_outs WHERE email = ?', [person.email]);
      assert.equal(optOuts.length, 0);
    });

    it('refuses a token of another session, and a token from before logging in', async () => {
      const a = newPerson('csrf-a');
      const b = newPerson('csrf-b');
      const clientA = await signUp(server, smtp, a);
      const clientB = await signUp(server, smtp, b);
      const tokenOfB = csrfToken((await clientB.get('/account/profile')).html);
      const withTokenOfB = await clientA.post('/account/profile', { _csrf: tokenOfB, name: 'Forged', type: 'individual', address: 'x', country: 'FR' });
      assert.equal(withTokenOfB.status, 403);

      const fresh = new PortalClient(server.url);
      const tokenBeforeLogin = csrfToken((await fresh.get('/account/login')).html);
      await logIn(fresh, a);
      const stale = await fresh.post('/account/profile', { _csrf: tokenBeforeLogin, name: 'Forged', type: 'individual', address: 'x', country: 'FR' });
      assert.equal(stale.status, 403);
      assert.equal((await profileName(a.email))!.name, a.name);
    });
  });

  describe('login rate limit', () => {
    it('gives an unknown address and a wrong password the same answer', async () => {
      const person = newPerson('same-answer');
      await signUp(server, smtp, person);
      const client = new PortalClient(server.url);
      const headers = { 'x-forwarded-for': '198.51.100.7' };
      const attempt = async (email: string) => {
        const page = await client.get('/account/login');
        return client.fetch('/account/login', { headers, body: new URLSearchParams({ _csrf: csrfToken(page.html), email, password: 'wrong password 1' }).toString() });
      };
      const wrongPassword = await attempt(person.email);
      const unknown = await attempt(uniqueEmail('nobody'));
      assert.equal(wrongPassword.status, 401);
      assert.equal(unknown.status, 401);
      assert.equal(fieldError(wrongPassword.html, 'password'), 'The email address or the password is not right.');
      assert.equal(fieldError(unknown.html, 'password'), fieldError(wrongPassword.html, 'password'));
      assert.equal(fieldError(unknown.html, 'email'), null);
    });

    it('stops guessing one account after 10 tries, from any address and any server instance, even with the right password', async () => {
      const person = newPerson('limit-account');
      await registerAndVerify(server, smtp, person);
      // A second server instance on the same MySQL and Redis: the count is shared.
      const port = await freePort();
      const second = await startServer({ ...server.config, port, publicUrl: `http://127.0.0.1:${port}` });
      try {
        for (let i = 0; i < 10; i++) {
          const client = new PortalClient(i % 2 === 0 ? server.url : second.url);
          const page = await client.get('/account/login');
          const answer = await client.fetch('/account/login', {
            headers: { 'x-forwarded-for': `203.0.113.${i + 1}` },
            body: new URLSearchParams({ _csrf: csrfToken(page.html), email: person.email, password: `guess number ${i}` }).toString(),
          });
          assert.equal(answer.status, 401, `try ${i + 1}`);
        }
        const client = new PortalClient(second.url);
        const page = await client.get('/account/login');
        const refused = await client.fetch('/account/login', {
          headers: { 'x-forwarded-for': '203.0.113.99' },
          body: new URLSearchParams({ _csrf: csrfToken(page.html), email: person.email, password: person.password }).toString(),
        });
        assert.equal(refused.status, 429);
        assert.ok(Number(refused.headers.get('retry-after')) > 0);
        assert.match(text(refused.html), /Too many login attempts for this account\. Try again in \d+ minutes?\./);
        assert.ok(!client.cookies.has('ferry_session'));
      } finally {
        await second.close();
      }
      // Another account from the same addresses is not affected.
      const other = newPerson('limit-other');
      await signUp(server, smtp, other);
    });

    it('stops one address after 50 tries, whichever accounts it tries', async () => {
      const headers = { 'x-forwarded-for': '192.0.2.50' };
      const client = new PortalClient(server.url);
      let token = csrfToken((await client.get('/account/login')).html);
      for (let i = 0; i < 50; i++) {
        const answer = await client.fetch('/account/login', { headers, body: new URLSearchParams({ _csrf: token, email: uniqueEmail('spray'), password: 'password 12345' }).toString() });
        assert.equal(answer.status, 401, `try ${i + 1}`);
        token = csrfToken(answer.html);
      }
      const person = newPerson('limit-address');
      await signUp(server, smtp, person);
      const refused = await client.fetch('/account/login', { headers, body: new URLSearchParams({ _csrf: token, email: person.email, password: person.password }).toString() });
      assert.equal(refused.status, 429);
      assert.match(text(refused.html), /Too many login attempts from your network/);
      // From another address the same account logs in.
      const elsewhere = new PortalClient(server.url);
      const page = await elsewhere.get('/account/login');
      const ok = await elsewhere.fetch('/account/login', { headers: { 'x-forwarded-for': '192.0.2.51' }, body: new URLSearchParams({ _csrf: csrfToken(page.html), email: person.email, password: person.password }).toString() });
      assert.equal(ok.status, 303);
    });
  });

  describe('sessions, cookies and headers', () => {
    it('keeps only a random id in an HttpOnly, SameSite=Lax cookie, and the session in Redis until logout', async () => {
      const person = newPerson('cookie');
      await signUp(server, smtp, person);
      const fresh = new PortalClient(server.url);
      const page = await fresh.get('/account/login');
      const answer = await fresh.fetch('/account/login', { body: new URLSearchParams({ _csrf: csrfToken(page.html), email: person.email, password: person.password }).toString() });
      const setCookie = answer.headers.getSetCookie().find((c) => c.startsWith('ferry_session='))!;
      assert.match(setCookie, /^ferry_session=[A-Za-z0-9_-]{43}; Path=\/account; HttpOnly; SameSite=Lax$/);
      for (const cookie of answer.headers.getSetCookie()) {
        assert.ok(!cookie.includes(encodeURIComponent(person.email)) && !cookie.includes(person.email) && !cookie.includes(person.name), cookie);
      }
      const id = fresh.cookies.get('ferry_session')!;
      const redis = new Redis(REDIS_URL);
      try {
        const keys = await redis.keys(`${server.config.redisPrefix}:session:*`);
        assert.ok(keys.length > 0);
        assert.ok(keys.every((k) => !k.includes(id)), 'Redis keys name a digest of the id, not the id');
        // Logout ends it: the old cookie opens nothing.
        await fresh.submit('/account/data', '/account/logout', {});
        const replay = new PortalClient(server.url);
        replay.cookies.set('ferry_session', id);
        assert.equal((await replay.get('/account/data')).status, 303);
      } finally {
        redis.disconnect();
      }
    });

    it('sends security headers, and no page is cached', async () => {
      const page = await new PortalClient(server.url).get('/account/login');
      const csp = page.headers.get('content-security-policy')!;
      for (const directive of ["default-src 'none'", "style-src 'self'", "form-action 'self'", "frame-ancestors 'none'"]) assert.ok(csp.includes(directive), csp);
      assert.ok(!/script-src/.test(csp), 'no script is allowed at all');
      assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
      assert.equal(page.headers.get('cache-control'), 'no-store');
      assert.match(page.html, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
      assert.ok(!/<script/i.test(page.html));
      // The JSON API is not affected: no portal headers, and forms are still 415 there.
      const api = await fetch(`${server.url}/v1/trials`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=b' });
      assert.equal(api.status, 415);
      assert.equal(api.headers.get('content-security-policy'), null);
    });

    it('marks cookies Secure and sends HSTS when served over HTTPS', async () => {
      const port = await freePort();
      const https = await startServer({ port, publicUrl: `https://ferry.example`, smtpUrl: smtp.url, runWorkers: false });
      try {
        const page = await new PortalClient(https.url).get('/account/login');
        assert.match(page.headers.getSetCookie().find((c) => c.startsWith('ferry_csrf='))!, /; Secure/);
        assert.match(page.headers.get('strict-transport-security')!, /max-age=31536000/);
        assert.match(page.headers.get('content-security-policy')!, /upgrade-insecure-requests/);
      } finally {
        await https.close();
      }
    });

    it('stores passwords as salted scrypt hashes, never as given', async () => {
      const person = newPerson('hash');
      await signUp(server, smtp, person);
      const [rows] = await db.query<RowDataPacket[]>('SELECT password_hash FROM customers WHERE email = ?', [person.email]);
      const hash = rows[0]!.password_hash as string;
      assert.match(hash, /^scrypt\$15\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
      assert.ok(!hash.includes(person.password));
    });
  });

  describe('password reset', () => {
    it('works once through the mailed link, logs every session out, and refuses the link again or when expired', async () => {
      const person = newPerson('reset');
      const signedIn = await signUp(server, smtp, person);
      const client = new PortalClient(server.url);
      await client.submit('/account/password/forgot', '/account/password/forgot', { email: person.email });
      const mail = (await smtp.waitFor(person.email, 2)).find((m) => m.parsed.subject === 'Choose a new Ferry password')!;
      const link = new URL(linkIn(mail, `${server.url}/account/password/reset?token=`));
      const form = await client.get(link.pathname + link.search);
      assert.equal(form.status, 200);
      const tooShort = await client.post('/account/password/reset', { _csrf: csrfToken(form.html), token: link.searchParams.get('token')!, password: 'short' });
      assert.equal(tooShort.status, 400);
      assert.match(fieldError(tooShort.html, 'password')!, /at least 10 characters/);
      const done = await client.post('/account/password/reset', { _csrf: csrfToken(form.html), token: link.searchParams.get('token')!, password: 'a brand new password' });
      assert.equal(done.location, '/account/login?done=password-reset');
      assert.equal((await signedIn.get('/account/data')).status, 303, 'the old session is logged out');
      await logIn(new PortalClient(server.url), { email: person.email, password: 'a brand new password' });
      assert.equal((await client.get(link.pathname + link.search)).status, 400, 'the link works once');
      const again = await client.post('/account/password/reset', { _csrf: csrfToken(form.html), token: link.searchParams.get('token')!, password: 'yet another password' });
      assert.equal(again.status, 400);
      await smtp.waitFor(person.email, 3); // the "password changed" notice

      await client.submit('/account/password/forgot', '/account/password/forgot', { email: person.email });
      const second = (await smtp.waitFor(person.email, 4)).filter((m) => m.parsed.subject === 'Choose a new Ferry password').at(-1)!;
      const expiring = new URL(linkIn(second, `${server.url}/account/password/reset?token=`));
      await db.query("UPDATE account_tokens SET expires_at = NOW(3) - INTERVAL 1 SECOND WHERE purpose = 'reset_password' AND used_at IS NULL");
      const expired = await client.get(expiring.pathname + expiring.search);
      assert.equal(expired.status, 400);
      assert.match(text(expired.html), /does not work any more/);
    });
  });

  describe('bad input', () => {
    it('answers bad forms with a 4xx page and a message per field, never a 500 or a stack trace', async () => {
      const person = newPerson('bad-input');
      const client = await signUp(server, smtp, person);
      const anonymous = new PortalClient(server.url);
      const token = csrfToken((await anonymous.get('/account/register')).html);
      const cases: { client: PortalClient; path: string; body: string; contentType?: string; field?: string }[] = [
        { client: anonymous, path: '/account/register', body: `_csrf=${token}&email=a@b.example&email=c@d.example&password=x&name=${'n'.repeat(5000)}&type=alien&country=XX&age=`, field: 'name' },
        { client: anonymous, path: '/account/register', body: `_csrf=${token}&email=not-an-address&password=long enough password&name=Ada%00Lovelace&type=individual&address=x&country=DE&age=yes`, field: 'email' },
        { client: anonymous, path: '/account/register', body: JSON.stringify({ _csrf: token, email: ['x'], name: { a: 1 }, age: true }), contentType: 'application/json', field: 'email' },
        { client: anonymous, path: '/account/register', body: 'just text', contentType: 'text/plain' },
        { client: anonymous, path: '/account/register', body: `_csrf=${token}&name=${'x'.repeat(1_200_000)}` },
        { client, path: '/account/buy', body: `_csrf=${csrfToken((await client.get('/account/buy')).html)}&seats=1e3&trial=`, field: 'seats' },
        { client, path: '/account/buy', body: `_csrf=${csrfToken((await client.get('/account/buy')).html)}&seats=99999999999999999999&trial=abc`, field: 'seats' },
        { client, path: '/account/claim', body: `_csrf=${csrfToken((await client.get('/account/claim')).html)}&code=${'%F0%9F%98%80'.repeat(20)}`, field: 'code' },
        { client, path: '/account/communications', body: `_csrf=${csrfToken((await client.get('/account/communications')).html)}&choice=everything`, field: 'choice' },
        { client, path: '/account/profile', body: `_csrf=${csrfToken((await client.get('/account/profile')).html)}&type=business&name=Ada&address=x&country=de`, field: 'organization' },
      ];
      for (const c of cases) {
        const answer = await c.client.fetch(c.path, { body: c.body, contentType: c.contentType });
        assert.ok(answer.status >= 400 && answer.status < 500, `${c.path} ${c.body.slice(0, 60)} answered ${answer.status}`);
        assert.match(answer.headers.get('content-type') ?? '', /^text\/(html|plain)/);
        assert.ok(!INTERNALS.test(answer.html), `${c.path} shows internals: ${text(answer.html).slice(0, 300)}`);
        if (c.field) assert.ok(fieldError(answer.html, c.field), `${c.path}: no message next to "${c.field}" in ${text(answer.html).slice(0, 400)}`);
      }
      for (const path of ['/account/orders/abc', '/account/orders/99999999999999999999999', '/account/orders/-1', '/account/nothing-here', '/account/verify?token[]=1', '/account/password/reset?token=%00']) {
        const answer = await client.get(path);
        assert.ok(answer.status >= 400 && answer.status < 500, `${path} answered ${answer.status}`);
        assert.ok(!INTERNALS.test(answer.html), `${path} shows internals`);
      }
      const machine = await client.submit('/account/data', '/account/machines/not-a-number/deactivate', {});
      assert.equal(machine.status, 404);
    });

    it('refuses registration without the age confirmation', async () => {
      const person = newPerson('young');
      const client = new PortalClient(server.url);
      const answer = await client.submit('/account/register', '/account/register', {
        email: person.email, password: person.password, name: person.name, type: 'individual', address: person.address, country: 'DE',
      });
      assert.equal(answer.status, 400);
      assert.equal(fieldError(answer.html, 'age'), 'You must be 13 or older to have a Ferry account.');
      assert.equal(await profileName(person.email), undefined);
    });
  });
});
