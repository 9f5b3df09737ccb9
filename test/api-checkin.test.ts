import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { certifiedKey, issueToken, peekClaims, POLICIES, verifyTime } from '../licensing/index.js';
import { loadKeySet } from '../server/keys/store.js';
import type { Pool } from 'mysql2/promise';
import { issueLicense, revokeLicense } from './support/admin.js';
import { adminClient } from './support/payments.js';
import { request } from './support/http.js';
import { newMachine } from './support/machines.js';
import { startServerProcess, until, type ServerProcess } from './support/processes.js';
import { openDb, startServer, testEnv, type TestServer } from './support/server.js';
import { TEST_ROOT } from './support/trust-root.js';

const DAY = 86_400_000;

describe('POST /v1/validate as a check-in', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  const validate = (token: string, body: unknown = {}) => request(`${server.url}/v1/validate`, { body, token });

  async function activated() {
    const license = await issueLicense(server, 1);
    const fingerprint = newMachine();
    const res = await request(`${server.url}/v1/activations`, { body: { key: license.key, fingerprint } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return { license, fingerprint, token: res.body.token as string, shown: res.body.license, certificate: res.body.certificate as unknown };
  }

  /** The token the server would have issued this activation `ageMs` ago. */
  async function tokenIssuedAgo(token: string, ageMs: number): Promise<string> {
    const claims = peekClaims(token)!;
    const { keys } = await loadKeySet(server.config.dataDir);
    const issuedAt = Date.now() - ageMs;
    return issueToken({
      licenseId: claims.sub, activationId: claims.aid, fingerprint: claims.fp, kind: claims.kind,
      leaseEndsAt: issuedAt + POLICIES[claims.kind].leaseMs, licenseExpiresAt: null, now: issuedAt,
    }, keys.active);
  }

  it('answers a check-in that changes nothing without a new token, and says when it checked', async () => {
    const { license, fingerprint, token, shown } = await activated();
    const before = Date.now();
    for (let i = 0; i < 2; i++) {
      const res = await validate(token, { fingerprint, checkIn: true });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.valid, true);
      assert.equal(res.body.license.id, license.id);
      assert.equal(res.body.token, undefined, 'nothing to renew: nothing signed');
      assert.equal(res.body.certificate, undefined);
      assert.ok(Date.parse(res.body.checkedAt) >= before - 1000);
    }
    // The answer is put together by hand (routes.ts): the license reads exactly as in the activation's answer.
    const again = await validate(token, { fingerprint, checkIn: true });
    assert.deepEqual(again.body.license, shown);
    assert.deepEqual(Object.keys(again.body).sort(), ['checkedAt', 'license', 'time', 'valid']);
    assert.deepEqual(Object.keys(again.body.time).sort(), ['payload', 'signature'], 'the signed time, as the schema says');
    const trial = await request(`${server.url}/v1/trials`, { body: { fingerprint: newMachine() } });
    const trialCheckIn = await validate(trial.body.token, { checkIn: true });
    assert.equal(trialCheckIn.status, 200);
    assert.deepEqual(trialCheckIn.body.license, trial.body.license, 'a trial: its end and claim code too');
    assert.equal(typeof trialCheckIn.body.license.claimCode, 'string');
    // An agent from before check-ins asks without `checkIn`, and gets the new token it expects.
    const renewal = await validate(token, { fingerprint });
    assert.equal(typeof renewal.body.token, 'string');
    assert.equal(typeof renewal.body.certificate.payload, 'string');
  });

  it('signs its time in every answer, check-ins that renew nothing included, under the key the root certified', async () => {
    const { fingerprint, token, certificate } = await activated();
    const key = certifiedKey(TEST_ROOT.publicKey, certificate);
    const before = Date.now();
    const checkIn = await validate(token, { fingerprint, checkIn: true });
    assert.equal(checkIn.body.token, undefined);
    const renewal = await validate(token, { fingerprint });
    for (const answer of [checkIn, renewal]) {
      const t = verifyTime(answer.body.time, key);
      // Signed at most once a second: up to a second behind the answer, never ahead of the server's clock.
      assert.ok(t >= before - 1_000 && t <= Date.now(), `signed time ${t} within the request`);
    }
  });

  it('renews the current token once its lease passes the point where the agent renews, with the certificate', async () => {
    const { fingerprint, token } = await activated();
    // The token this activation last got, three and a half days ago (what the server stored of it).
    const old = await tokenIssuedAgo(token, 3.5 * DAY);
    const db = await openDb(server.config.databaseUrl);
    try {
      await db.query('UPDATE activations SET token_digest = ? WHERE id = ?', [createHash('sha256').update(old).digest(), peekClaims(old)!.aid]);
    } finally {
      await db.end();
    }
    const res = await validate(old, { fingerprint, checkIn: true });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(typeof res.body.token, 'string');
    assert.equal(typeof res.body.certificate.payload, 'string');
    const renewed = peekClaims(res.body.token)!;
    assert.ok(renewed.exp > peekClaims(old)!.exp);
    assert.equal(renewed.exp - renewed.iat, POLICIES.permanent.leaseMs / 1000);
    // And the renewed token is the current one now: its next check-in signs nothing.
    assert.equal((await validate(res.body.token, { fingerprint, checkIn: true })).body.token, undefined);
  });

  it('verifies an older token in full and renews it; a forged one is still refused', async () => {
    const { fingerprint, token } = await activated();
    const older = await tokenIssuedAgo(token, DAY);
    const res = await validate(older, { fingerprint, checkIn: true });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(typeof res.body.token, 'string', 'not the current token: a new one');
    const [header, payload] = token.split('.');
    const forged = `${header}.${payload}.${'A'.repeat(86)}`;
    assert.equal((await validate(forged, { fingerprint, checkIn: true })).status, 401);
  });
});

/** Three ferry-server processes on one database and one Redis, as behind a load balancer. */
function threeServers(extraEnv: Record<string, string>) {
  const trio = { servers: [] as ServerProcess[], env: {} as Record<string, string>, db: undefined as unknown as Pool };
  before(async function () {
    this.timeout(180_000);
    trio.env = testEnv({ LOG_LEVEL: 'warn', ...extraEnv });
    trio.servers = [await startServerProcess(trio.env)];
    trio.servers.push(...(await Promise.all([startServerProcess(trio.env), startServerProcess(trio.env)])));
    trio.db = await openDb(trio.env.DATABASE_URL!);
  });
  after(async () => {
    await trio.db?.end();
    await Promise.all(trio.servers.map((s) => s.stop()));
  });
  const admin = () => ({ url: trio.servers[0]!.url, adminToken: trio.env.ADMIN_TOKEN! });
  const checkIn = (s: ServerProcess, token: string, fingerprint: string) =>
    request(`${s.url}/v1/validate`, { body: { fingerprint, checkIn: true }, token });
  /** A license of `seats` activated on server A, and checked in on B and C: all three hold it. */
  async function activatedEverywhere(seats = 1) {
    const [a, b, c] = trio.servers as [ServerProcess, ServerProcess, ServerProcess];
    const license = await issueLicense(admin(), seats);
    const fingerprint = newMachine();
    const activation = await request(`${a.url}/v1/activations`, { body: { key: license.key, fingerprint } });
    assert.equal(activation.status, 201);
    const token = activation.body.token as string;
    for (const s of [b, c]) assert.equal((await checkIn(s, token, fingerprint)).status, 200);
    return { license, fingerprint, token };
  }
  return { trio, admin, checkIn, activatedEverywhere };
}

describe('license changes across three server processes, told over Redis (activation state in memory)', () => {
  // Catch-ups an hour apart: whatever the servers see here, the change messages told them.
  const { trio, admin, checkIn, activatedEverywhere } = threeServers({ LICENSE_CATCH_UP_EVERY: '1h' });

  it('a revoke on server A is refused by servers B and C at their next request', async function () {
    this.timeout(60_000);
    const { license, fingerprint, token } = await activatedEverywhere();
    await revokeLicense(admin(), license.id);
    for (const s of trio.servers) {
      // The message may still be on its way to a server the very moment the revoke answers.
      const refused = await until(`${s.url} refuses the revoked license`, async () => {
        const res = await checkIn(s, token, fingerprint);
        return res.status === 403 && res.body;
      }, 10_000);
      assert.equal(refused.error.code, 'LICENSE_REVOKED');
    }
  });

  it('a seat change made on server A shows on B and C at their next check-in, with no new token', async function () {
    this.timeout(60_000);
    const { license, fingerprint, token } = await activatedEverywhere(1);
    const staff = await adminClient(admin());
    const changed = await staff.submit(`/admin/licenses/${license.id}`, `/admin/licenses/${license.id}/seats`, { seats: '4' });
    assert.equal(changed.location, `/admin/licenses/${license.id}?done=seats-changed`);
    for (const s of trio.servers) {
      const seen = await until(`${s.url} answers with 4 seats`, async () => {
        const res = await checkIn(s, token, fingerprint);
        return res.status === 200 && res.body.license.seats === 4 && res.body;
      }, 10_000);
      assert.equal(seen.token, undefined);
    }
  });

  it('a machine deactivated on server A is refused by B and C', async function () {
    this.timeout(60_000);
    const { fingerprint, token } = await activatedEverywhere();
    const activationId = peekClaims(token)!.aid;
    const gone = await request(`${trio.servers[0]!.url}/v1/activations/${activationId}`, { method: 'DELETE', token });
    assert.equal(gone.status, 204);
    for (const s of trio.servers) {
      const refused = await until(`${s.url} refuses the deactivated machine`, async () => {
        const res = await checkIn(s, token, fingerprint);
        return res.status === 403 && res.body;
      }, 10_000);
      assert.equal(refused.error.code, 'ACTIVATION_INACTIVE');
    }
  });

  it('a machine activated on server A a moment ago checks in on B and C at once', async () => {
    const [a, b, c] = trio.servers as [ServerProcess, ServerProcess, ServerProcess];
    const license = await issueLicense(admin(), 2);
    const fingerprint = newMachine();
    const activation = await request(`${a.url}/v1/activations`, { body: { key: license.key, fingerprint } });
    assert.equal(activation.status, 201);
    // B and C never held this activation: it is newer than their load, and no catch-up ran since.
    for (const s of [b, c]) {
      const res = await checkIn(s, activation.body.token, fingerprint);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.license.id, license.id);
    }
  });
});

describe('license changes across three server processes, with no message (the catch-up)', () => {
  const { trio, checkIn, activatedEverywhere } = threeServers({});

  it('a change no server was told of (a lost message; here made in MariaDB directly) is seen by all within the 5 s catch-up', async function () {
    this.timeout(90_000);
    const { license, fingerprint, token } = await activatedEverywhere();
    await trio.db.query("UPDATE licenses SET status = 'suspended' WHERE id = ?", [license.id]);
    for (const s of trio.servers) {
      const refused = await until(`${s.url} refuses the suspended license`, async () => {
        const res = await checkIn(s, token, fingerprint);
        return res.status === 403 && res.body;
      }, 30_000, 250);
      assert.equal(refused.error.code, 'LICENSE_SUSPENDED');
    }
    await trio.db.query("UPDATE licenses SET status = 'active' WHERE id = ?", [license.id]);
    for (const s of trio.servers) {
      await until(`${s.url} accepts the license again`, async () => (await checkIn(s, token, fingerprint)).status === 200, 30_000, 250);
    }
  });
});
