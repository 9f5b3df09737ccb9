import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { certifiedKey, issueToken, peekClaims, POLICIES, verifyTime } from '../licensing/index.js';
import { loadKeySet } from '../server/keys/store.js';
import { issueLicense, revokeLicense } from './support/admin.js';
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
    return { license, fingerprint, token: res.body.token as string, certificate: res.body.certificate as unknown };
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
    const { license, fingerprint, token } = await activated();
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

describe('revocation across server processes (activation caches, invalidated over Redis)', () => {
  let servers: ServerProcess[] = [];
  let env: Record<string, string>;
  before(async function () {
    this.timeout(120_000);
    env = testEnv({ LOG_LEVEL: 'warn' });
    servers = [await startServerProcess(env)];
    servers.push(...(await Promise.all([startServerProcess(env), startServerProcess(env)])));
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('a revoke on server A is refused by servers B and C at their next request, long before the cache would expire', async function () {
    this.timeout(60_000);
    const [a, b, c] = servers as [ServerProcess, ServerProcess, ServerProcess];
    const admin = { url: a.url, adminToken: env.ADMIN_TOKEN! };
    const license = await issueLicense(admin, 1);
    const fingerprint = newMachine();
    const activation = await request(`${a.url}/v1/activations`, { body: { key: license.key, fingerprint } });
    assert.equal(activation.status, 201);
    const token = activation.body.token as string;
    // B and C read the activation now and keep it.
    for (const s of [b, c]) assert.equal((await request(`${s.url}/v1/validate`, { body: { fingerprint, checkIn: true }, token })).status, 200);

    await revokeLicense(admin, license.id);
    for (const s of [a, b, c]) {
      // The message may still be on its way to a server the very moment the revoke answers.
      const refused = await until(`${s.url} refuses the revoked license`, async () => {
        const res = await request(`${s.url}/v1/validate`, { body: { fingerprint, checkIn: true }, token });
        return res.status === 403 && res.body;
      }, 10_000); // well within the 30 s a cached activation would otherwise live
      assert.equal(refused.error.code, 'LICENSE_REVOKED');
    }
  });
});
