import assert from 'node:assert/strict';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import {
  csrfToken, fieldError, newPerson, PortalClient, portalRoutes, signUp, startPortalWorld, type PortalWorld, startTrial, text, type Person,
} from './support/portal.js';
import { payByInvoice } from './support/payments.js';
import { type TestServer } from './support/server.js';
import type { TestSmtp } from './support/smtp.js';

/**
 * Customer A, logged in, tries every route of the portal against customer B's data: B's ids in the
 * address, B's claim code, B's orders. Nothing of B's is shown, changed or deleted. The list of
 * routes is checked against the server's own, so a new route without a case here fails the test.
 */
describe('MyAccount: a customer reaches only their own data', function () {
  this.timeout(120_000);
  let smtp: TestSmtp;
  let server: TestServer;
  let db: Pool;
  let world: PortalWorld;
  const a = newPerson('iso-a');
  const b = newPerson('iso-b');
  let clientA: PortalClient;
  let clientB: PortalClient;
  let bTrial: Awaited<ReturnType<typeof startTrial>>;
  let bPaidOrder: number;
  let bPendingOrder: number;
  /** B's permanent license, bought with bPaidOrder. */
  let bLicense: number;

  /** What B's row looks like now: compared before and after A's requests. */
  const snapshotOfB = async () => {
    const [customer] = await db.query<RowDataPacket[]>(
      'SELECT name, organization, address, country, email, password_hash, marketing_opt_in, status FROM customers WHERE email = ?', [b.email]);
    const [licenses] = await db.query<RowDataPacket[]>('SELECT id, customer_id, status, seats FROM licenses WHERE customer_id = (SELECT id FROM customers WHERE email = ?) ORDER BY id', [b.email]);
    const [machines] = await db.query<RowDataPacket[]>('SELECT id, active FROM activations WHERE license_id = ?', [bTrial.licenseId]);
    const [orders] = await db.query<RowDataPacket[]>('SELECT id, status, license_id FROM orders WHERE customer_id = (SELECT id FROM customers WHERE email = ?) ORDER BY id', [b.email]);
    const [optOut] = await db.query<RowDataPacket[]>('SELECT source FROM mail_opt_outs WHERE email = ?', [b.email]);
    return JSON.stringify({ customer, licenses, machines, orders, optOut });
  };

  /** Nothing of B's on a page A sees. */
  const assertNothingOfB = (html: string, where: string) => {
    for (const secret of [b.email, b.name, b.address, b.organization, 'b-workstation', bTrial.claimCode]) {
      assert.ok(!html.includes(secret), `${where} shows B's "${secret}"`);
    }
  };

  before(async () => {
    world = await startPortalWorld();
    ({ smtp, server, db } = world);
    clientA = await signUp(server, smtp, a);
    clientB = await signUp(server, smtp, b);
    // Started with B's address, so that B (the claimant) keeps seeing the machine's host name.
    bTrial = await startTrial(server, { hostname: 'b-workstation', email: b.email });
    assert.equal((await clientB.submit('/account/claim', '/account/claim', { code: bTrial.claimCode })).status, 303);
    const buy = async () => {
      const ordered = await clientB.submit('/account/buy', '/account/buy', { seats: '2', trial: '' });
      assert.equal(ordered.status, 303, text(ordered.html));
      return Number(/\/account\/orders\/(\d+)$/.exec(ordered.location!)![1]);
    };
    bPaidOrder = await buy();
    assert.equal((await payByInvoice(server, bPaidOrder)).status, 303);
    const [[paid]] = await db.query<RowDataPacket[]>('SELECT license_id FROM orders WHERE id = ?', [bPaidOrder]);
    bLicense = Number(paid!.license_id);
    bPendingOrder = await buy();
  });
  after(() => world?.close());

  /** Every route of the portal, and what A does with it. */
  const CASES: Record<string, (a: PortalClient) => Promise<void>> = {
    // Pages for everyone (A is logged in: the login and register pages send A on to My data).
    'GET /account': async (c) => assert.equal((await c.get('/account')).location, '/account/data'),
    'GET /account/style.css': async (c) => assert.equal((await c.get('/account/style.css')).status, 200),
    'GET /account/register': async (c) => assert.equal((await c.get('/account/register')).status, 303),
    'GET /account/login': async (c) => assert.equal((await c.get('/account/login')).status, 303),
    'GET /account/check-email': async (c) => assertNothingOfB((await c.get('/account/check-email')).html, 'check-email'),
    'GET /account/password/forgot': async (c) => assertNothingOfB((await c.get('/account/password/forgot')).html, 'forgot'),
    'GET /account/verify': async (c) => assert.equal((await c.get('/account/verify?token=not-a-token')).status, 400),
    'GET /account/password/reset': async (c) => assert.equal((await c.get('/account/password/reset?token=not-a-token')).status, 400),
    'GET /account/privacy': async (c) => assertNothingOfB((await c.get('/account/privacy')).html, 'privacy'),
    // Registering with B's address tells A nothing: the same "check your mail" as for a new address.
    'POST /account/register': async (c) => {
      const answer = await c.submit('/account/password/forgot', '/account/register', {
        email: b.email, password: 'some password 123', name: 'Mallory', type: 'individual', address: 'x', country: 'FR', age: 'yes',
      });
      assert.equal(answer.location, '/account/check-email');
    },
    'POST /account/verify/resend': async (c) => assert.equal((await c.submit('/account/check-email', '/account/verify/resend', { email: b.email })).status, 303),
    // Asking for B's password link sends it to B, not to A, and the page does not say whether B exists.
    'POST /account/password/forgot': async (c) => {
      const answer = await c.submit('/account/password/forgot', '/account/password/forgot', { email: b.email });
      assert.match(text(answer.html), /If an account has the address/);
    },
    'POST /account/password/reset': async (c) => {
      const answer = await c.submit('/account/password/forgot', '/account/password/reset', { token: 'x'.repeat(43), password: 'a new password 123' });
      assert.equal(answer.status, 400);
    },
    // A logging in with B's address and A's password gets nowhere.
    'POST /account/login': async () => {
      const stranger = new PortalClient(server.url);
      const answer = await stranger.submit('/account/login', '/account/login', { email: b.email, password: a.password });
      assert.equal(answer.status, 401);
      assert.ok(!stranger.cookies.has('ferry_session'));
    },
    // Signed-in pages: A's own data only.
    'GET /account/data': async (c) => {
      const page = await c.get('/account/data');
      assert.equal(page.status, 200);
      assert.ok(page.html.includes(a.email));
      assertNothingOfB(page.html, 'My data');
    },
    'GET /account/data.json': async (c) => {
      const file = await c.get('/account/data.json');
      const data = JSON.parse(file.html);
      assert.equal(data.profile.email, a.email);
      assert.deepEqual(data.licenses, []);
      assert.deepEqual(data.orders, []);
      assertNothingOfB(file.html, 'data.json');
    },
    'GET /account/profile': async (c) => assertNothingOfB((await c.get('/account/profile')).html, 'profile'),
    'GET /account/email': async (c) => assertNothingOfB((await c.get('/account/email')).html, 'email'),
    'GET /account/password': async (c) => assertNothingOfB((await c.get('/account/password')).html, 'password'),
    'GET /account/communications': async (c) => assertNothingOfB((await c.get('/account/communications')).html, 'communications'),
    'GET /account/claim': async (c) => assertNothingOfB((await c.get('/account/claim')).html, 'claim'),
    'GET /account/buy': async (c) => {
      const page = await c.get('/account/buy');
      assertNothingOfB(page.html, 'buy');
      assert.ok(!page.html.includes(`id="trial-${bTrial.licenseId}"`), 'B\'s trial is not offered to A');
    },
    'GET /account/cancel': async (c) => assertNothingOfB((await c.get('/account/cancel')).html, 'cancel'),
    'GET /account/delete': async (c) => assertNothingOfB((await c.get('/account/delete')).html, 'delete'),
    'GET /account/orders/:id': async (c) => {
      for (const id of [bPaidOrder, bPendingOrder]) {
        const page = await c.get(`/account/orders/${id}`);
        assert.equal(page.status, 404);
        assertNothingOfB(page.html, `order ${id}`);
      }
    },
    'POST /account/orders/:id/checkout': async (c) => {
      const answer = await c.submit('/account/buy', `/account/orders/${bPendingOrder}/checkout`, {});
      assert.equal(answer.status, 404);
    },
    // B's license: not there for A, neither to look at nor to change its seats (B's seats are in the snapshot).
    'GET /account/licenses/:id/seats': async (c) => {
      const page = await c.get(`/account/licenses/${bLicense}/seats`);
      assert.equal(page.status, 404);
      assertNothingOfB(page.html, 'seats');
    },
    'POST /account/licenses/:id/seats/add': async (c) => {
      assert.equal((await c.submit('/account/data', `/account/licenses/${bLicense}/seats/add`, { add: '5' })).status, 404);
    },
    'POST /account/licenses/:id/seats/remove': async (c) => {
      assert.equal((await c.submit('/account/data', `/account/licenses/${bLicense}/seats/remove`, { remove: '1' })).status, 404);
    },
    'POST /account/machines/:id/deactivate': async (c) => {
      const answer = await c.submit('/account/data', `/account/machines/${bTrial.activationId}/deactivate`, {});
      assert.equal(answer.status, 404);
    },
    'POST /account/claim': async (c) => {
      const answer = await c.submit('/account/claim', '/account/claim', { code: bTrial.claimCode });
      assert.equal(answer.status, 400);
      assert.match(fieldError(answer.html, 'code')!, /No unclaimed trial has this code/);
    },
    'POST /account/buy': async (c) => {
      const answer = await c.submit('/account/buy', '/account/buy', { seats: '1', trial: String(bTrial.licenseId) });
      assert.equal(answer.status, 400);
      assert.match(fieldError(answer.html, 'trial')!, /Choose one of your trials/);
    },
    // Forms without ids act on the signed-in customer only: B is untouched (checked after all cases).
    'POST /account/profile': async (c) => {
      const answer = await c.submit('/account/profile', '/account/profile', { name: 'A Renamed', type: 'individual', address: '1 A Street', country: 'FR', customer_id: '0', id: '0' });
      assert.equal(answer.status, 303);
    },
    'POST /account/email': async (c) => {
      // B's address: the same answer as for a free one (nothing says it has an account); B is untouched.
      const answer = await c.submit('/account/email', '/account/email', { email: b.email, password: a.password });
      assert.equal(answer.status, 200);
      assert.match(text(answer.html), /Check .* for a link/);
    },
    'POST /account/password': async (c) => {
      const answer = await c.submit('/account/password', '/account/password', { current: b.password, password: 'another password 42' });
      assert.equal(answer.status, 400);
      assert.match(fieldError(answer.html, 'current')!, /not your current password/);
    },
    'POST /account/communications': async (c) => assert.equal((await c.submit('/account/communications', '/account/communications', { choice: 'none' })).status, 303),
    'POST /account/cancel': async (c) => assert.equal((await c.submit('/account/cancel', '/account/cancel', { confirm: 'yes' })).status, 303),
    'POST /account/delete': async (c) => {
      const withB = await c.submit('/account/delete', '/account/delete', { password: b.password });
      assert.equal(withB.status, 400, 'B\'s password does not delete A');
      const answer = await c.submit('/account/delete', '/account/delete', { password: a.password });
      assert.equal(answer.status, 200);
    },
    'POST /account/logout': async (c) => assert.equal((await c.submit('/account/data', '/account/logout', {})).location, '/account/login?done=logged-out'),
  };

  it('has a case below for every route of the portal', () => {
    assert.deepEqual(portalRoutes(server.app), Object.keys(CASES).sort());
  });

  it('shows, changes and deletes nothing of customer B, whatever A sends to any route', async () => {
    const before = await snapshotOfB();
    // Logout and delete end A's session: they go last.
    const last = ['POST /account/delete', 'POST /account/logout'];
    for (const [route, run] of Object.entries(CASES)) if (!last.includes(route)) await run(clientA);
    assert.equal(await snapshotOfB(), before, 'B\'s data changed');
    await CASES['POST /account/logout']!(clientA);
    clientA = await logInAgain(a);
    await CASES['POST /account/delete']!(clientA);
    assert.equal(await snapshotOfB(), before, 'B\'s data changed');
    // And B still has everything.
    const page = await clientB.get('/account/data');
    assert.equal(page.status, 200);
    assert.ok(page.html.includes(b.name) && page.html.includes('b-workstation'));
  });

  it('sends a stranger to the login page from every signed-in page, and refuses their forms', async () => {
    const stranger = new PortalClient(server.url);
    const signedInRoutes = Object.keys(CASES).filter((r) => /\/(data|profile|email|password|communications|claim|buy|cancel|delete|orders|machines|licenses|logout)\b/.test(r) && !/forgot|reset/.test(r));
    for (const route of signedInRoutes) {
      const [method, pattern] = route.split(' ') as [string, string];
      const path = pattern.replace(':id', String(bPendingOrder));
      const answer = method === 'GET' ? await stranger.get(path) : await stranger.post(path, { _csrf: csrfToken((await stranger.get('/account/login')).html) });
      assert.equal(answer.status, 303, route);
      assert.match(answer.location!, /^\/account\/login/, route);
    }
  });

  async function logInAgain(person: Person): Promise<PortalClient> {
    const client = new PortalClient(server.url);
    const answer = await client.submit('/account/login', '/account/login', { email: person.email, password: person.password });
    assert.equal(answer.status, 303);
    return client;
  }
});
