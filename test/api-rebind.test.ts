import assert from 'node:assert/strict';
import type { Pool } from 'mysql2/promise';
import { issueLicense } from './support/admin.js';
import { newDeviceKey, rebindBody, type TestDeviceKey as DeviceKey } from './support/device-keys.js';
import { request, type Answer } from './support/http.js';
import { newActivationSecret, newMachine } from './support/machines.js';
import { startServerProcess, until, type ServerProcess } from './support/processes.js';
import { openDb, startServer, startServerWorld, type ServerWorld, testEnv, type TestServer } from './support/server.js';

/**
 * Moving an activation to a new fingerprint (`/v1/activations/:id/rebind`), over HTTP as an agent
 * would, with device keys made here; and the pace of new machines per license and new trials per
 * address.
 */

/** An activated machine as the API knows it: its fingerprint, device key, activation and token. */
interface Activated {
  fingerprint: string;
  key: DeviceKey;
  activationId: number;
  licenseId: number;
  token: string;
}

async function rows<T>(db: Pool, sql: string, params: unknown[]): Promise<T[]> {
  return (await db.query(sql, params))[0] as T[];
}

describe('POST /v1/activations/:id/rebind: a machine whose id changed keeps its activation', function () {
  this.timeout(30_000);
  let server: TestServer;
  let db: Pool;
  let world: ServerWorld;
  before(async () => {
    world = await startServerWorld();
    ({ server, db } = world);
  });
  after(() => world?.close());

  async function activateKey(key: string): Promise<Activated> {
    const device = newDeviceKey();
    const fingerprint = newMachine();
    const res = await request(`${server.url}/v1/activations`, { body: { key, fingerprint, devicePublicKey: device.publicKey } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return { fingerprint, key: device, activationId: res.body.activation.id, licenseId: res.body.license.id, token: res.body.token };
  }

  async function challenge(a: Activated): Promise<string> {
    const res = await request(`${server.url}/v1/activations/${a.activationId}/rebind-challenge`, { method: 'POST', token: a.token });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.challenge;
  }

  const signedBody = (a: Activated, to: string, challengeText: string, by: DeviceKey = a.key) =>
    rebindBody(a.activationId, a.fingerprint, to, challengeText, by);

  const rebind = (a: Activated, body: unknown): Promise<Answer> =>
    request(`${server.url}/v1/activations/${a.activationId}/rebind`, { token: a.token, body });

  const recorded = (activationId: number) =>
    rows<{ outcome: string; reason: string | null; to_fingerprint: string }>(db,
      'SELECT outcome, reason, to_fingerprint FROM activation_rebinds WHERE activation_id = ? ORDER BY id', [activationId]);

  it('moves the activation of a 1-seat license: the same seat, a token for the new fingerprint, the old token refused', async () => {
    const license = await issueLicense(server, 1);
    const a = await activateKey(license.key);
    const to = newMachine();
    const res = await rebind(a, signedBody(a, to, await challenge(a)));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.activation.id, a.activationId);
    assert.equal(res.body.activation.fingerprint, to);
    assert.deepEqual(res.body.rebinds, { used: 1, budget: 3, left: 2 });
    assert.deepEqual(await rows(db, 'SELECT fingerprint, active FROM activations WHERE license_id = ?', [license.id]), [{ fingerprint: to, active: 1 }]);

    const moved = await request(`${server.url}/v1/validate`, { token: res.body.token, body: { fingerprint: to } });
    assert.equal(moved.status, 200, JSON.stringify(moved.body));
    const old = await request(`${server.url}/v1/validate`, { token: a.token, body: { fingerprint: a.fingerprint } });
    assert.equal(old.status, 401);
    assert.equal(old.body.error.code, 'TOKEN_UNKNOWN_ACTIVATION');
    // The seat is still the one: another machine finds it taken.
    const other = await request(`${server.url}/v1/activations`, { body: { key: license.key, fingerprint: newMachine() } });
    assert.equal(other.status, 409);
    assert.equal(other.body.error.code, 'SEATS_EXHAUSTED');
    assert.deepEqual(await recorded(a.activationId), [{ outcome: 'rebound', reason: null, to_fingerprint: to }]);
  });

  it('refuses a rebind signed by another key with 403 REBIND_SIGNATURE_INVALID, and records it', async () => {
    const license = await issueLicense(server, 1);
    const a = await activateKey(license.key);
    const to = newMachine();
    const res = await rebind(a, signedBody(a, to, await challenge(a), newDeviceKey()));
    assert.equal(res.status, 403);
    assert.equal(res.body.error.code, 'REBIND_SIGNATURE_INVALID');
    assert.deepEqual(await rows(db, 'SELECT fingerprint FROM activations WHERE id = ?', [a.activationId]), [{ fingerprint: a.fingerprint }]);
    assert.deepEqual(await recorded(a.activationId), [{ outcome: 'refused', reason: 'bad_signature', to_fingerprint: to }]);
    assert.deepEqual(await rows(db, "SELECT detail FROM license_events WHERE license_id = ? AND kind = 'rebind_refused'", [license.id]), [{ detail: 'bad_signature' }]);
  });

  it('refuses a replayed rebind with 401 REBIND_CHALLENGE_INVALID, and a made-up challenge too', async () => {
    const license = await issueLicense(server, 2);
    const a = await activateKey(license.key);
    const body = signedBody(a, newMachine(), await challenge(a));
    assert.equal((await rebind(a, body)).status, 200);
    const replayed = await rebind(a, body);
    assert.equal(replayed.status, 401);
    assert.equal(replayed.body.error.code, 'REBIND_CHALLENGE_INVALID');

    const b = await activateKey(license.key);
    const madeUp = await rebind(b, signedBody(b, newMachine(), 'A'.repeat(43)));
    assert.equal(madeUp.status, 401);
    assert.equal(madeUp.body.error.code, 'REBIND_CHALLENGE_INVALID');
    assert.deepEqual((await recorded(a.activationId)).map((r) => r.reason), [null, 'challenge_unknown']);
    assert.deepEqual((await recorded(b.activationId)).map((r) => r.reason), ['challenge_unknown']);
  });

  it('lets a token ask only for its own activation (403 TOKEN_NOT_FOR_ACTIVATION), and no token at all is 401', async () => {
    const license = await issueLicense(server, 2);
    const a = await activateKey(license.key);
    const b = await activateKey(license.key);
    const res = await request(`${server.url}/v1/activations/${b.activationId}/rebind-challenge`, { method: 'POST', token: a.token });
    assert.equal(res.status, 403);
    assert.equal(res.body.error.code, 'TOKEN_NOT_FOR_ACTIVATION');
    const none = await request(`${server.url}/v1/activations/${a.activationId}/rebind-challenge`, { method: 'POST' });
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, 'TOKEN_MISSING');
  });

  it('refuses the move after the budget with 403 REBIND_BUDGET_EXHAUSTED, saying when the next is possible', async () => {
    const license = await issueLicense(server, 1);
    await db.query('UPDATE licenses SET rebind_budget = 1 WHERE id = ?', [license.id]);
    let a = await activateKey(license.key);
    const to = newMachine();
    const first = await rebind(a, signedBody(a, to, await challenge(a)));
    assert.equal(first.status, 200);
    assert.deepEqual(first.body.rebinds, { used: 1, budget: 1, left: 0 });
    a = { ...a, fingerprint: to, token: first.body.token };
    const second = await rebind(a, signedBody(a, newMachine(), await challenge(a)));
    assert.equal(second.status, 403);
    assert.equal(second.body.error.code, 'REBIND_BUDGET_EXHAUSTED');
    assert.match(second.body.error.message, /1 times in the last 365 days, its whole budget \(1 a year\)\. The next move is possible from \d{4}-\d\d-\d\d/);
    assert.match(second.body.error.message, /contact support/);
    assert.deepEqual(await rows(db, 'SELECT fingerprint FROM activations WHERE id = ?', [a.activationId]), [{ fingerprint: to }]);
  });

  it('moves a trial without making a second one: its end stays, and the new fingerprint has had the trial', async () => {
    const device = newDeviceKey();
    const fingerprint = newMachine();
    const secret = newActivationSecret();
    const trial = await request(`${server.url}/v1/trials`, { body: { fingerprint, activationSecret: secret, devicePublicKey: device.publicKey } });
    assert.equal(trial.status, 201);
    const a: Activated = { fingerprint, key: device, activationId: trial.body.activation.id, licenseId: trial.body.license.id, token: trial.body.token };
    const to = newMachine();
    const res = await rebind(a, signedBody(a, to, await challenge(a)));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.license.id, trial.body.license.id);
    assert.equal(res.body.license.expiresAt, trial.body.license.expiresAt);
    assert.deepEqual(await rows(db, "SELECT COUNT(*) AS n FROM licenses WHERE kind = 'trial' AND trial_fingerprint = ?", [to]), [{ n: 0 }]);

    // Another installation on the new machine id (without this trial's secret) gets no trial.
    const stranger = await request(`${server.url}/v1/trials`, { body: { fingerprint: to, activationSecret: newActivationSecret() } });
    assert.equal(stranger.status, 409);
    assert.equal(stranger.body.error.code, 'TRIAL_EXISTS');
    // The installation itself, asking from its new id, has its trial.
    const same = await request(`${server.url}/v1/trials`, { body: { fingerprint: to, activationSecret: secret } });
    assert.equal(same.status, 200);
    assert.equal(same.body.activation.id, a.activationId);
    // An old copy of its home, on the id it left, cannot take the trial up beside it.
    const left = await request(`${server.url}/v1/trials`, { body: { fingerprint, activationSecret: secret } });
    assert.equal(left.status, 409);
    assert.equal(left.body.error.code, 'TRIAL_MOVED');
  });

  it('refuses to move a trial onto a machine id that had a trial of its own', async () => {
    const device = newDeviceKey();
    const fingerprint = newMachine();
    const trial = await request(`${server.url}/v1/trials`, { body: { fingerprint, activationSecret: newActivationSecret(), devicePublicKey: device.publicKey } });
    const other = newMachine();
    assert.equal((await request(`${server.url}/v1/trials`, { body: { fingerprint: other, activationSecret: newActivationSecret() } })).status, 201);
    const a: Activated = { fingerprint, key: device, activationId: trial.body.activation.id, licenseId: trial.body.license.id, token: trial.body.token };
    const res = await rebind(a, signedBody(a, other, await challenge(a)));
    assert.equal(res.status, 409);
    assert.equal(res.body.error.code, 'TRIAL_EXISTS');
    assert.deepEqual((await recorded(a.activationId)).map((r) => r.reason), ['trial_of_other_machine']);
  });

  it('answers 400 VALIDATION_FAILED to a signature that is not 64 bytes of base64url', async () => {
    const license = await issueLicense(server, 1);
    const a = await activateKey(license.key);
    const res = await rebind(a, { fingerprint: newMachine(), challenge: await challenge(a), signature: 'short' });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'VALIDATION_FAILED');
  });
});

describe('a rebind across server processes (activation caches, invalidated over Redis)', () => {
  let servers: ServerProcess[] = [];
  let env: Record<string, string>;
  before(async function () {
    this.timeout(120_000);
    env = testEnv({ LOG_LEVEL: 'warn' });
    servers = [await startServerProcess(env)];
    servers.push(await startServerProcess(env));
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('a move on server A makes server B refuse the old fingerprint\'s token at once, though B had it cached', async function () {
    this.timeout(60_000);
    const [a, b] = servers as [ServerProcess, ServerProcess];
    const license = await issueLicense({ url: a.url, adminToken: env.ADMIN_TOKEN! }, 1);
    const device = newDeviceKey();
    const from = newMachine();
    const activated = await request(`${a.url}/v1/activations`, { body: { key: license.key, fingerprint: from, devicePublicKey: device.publicKey } });
    const id = activated.body.activation.id as number;
    const oldToken = activated.body.token as string;
    // B reads the activation now and keeps it (with the old token's digest) for up to 30 s.
    assert.equal((await request(`${b.url}/v1/validate`, { body: { fingerprint: from, checkIn: true }, token: oldToken })).status, 200);

    const challenge = (await request(`${a.url}/v1/activations/${id}/rebind-challenge`, { method: 'POST', token: oldToken })).body.challenge as string;
    const moved = await request(`${a.url}/v1/activations/${id}/rebind`, { token: oldToken, body: rebindBody(id, from, newMachine(), challenge, device) });
    assert.equal(moved.status, 200, JSON.stringify(moved.body));
    const refused = await until(`${b.url} refuses the old fingerprint's token`, async () => {
      const res = await request(`${b.url}/v1/validate`, { body: { fingerprint: from, checkIn: true }, token: oldToken });
      return res.status === 401 && res.body;
    }, 10_000); // well within the 30 s a cached activation would otherwise live
    assert.equal(refused.error.code, 'TOKEN_UNKNOWN_ACTIVATION');
  });
});

describe('the pace of new machines', function () {
  this.timeout(30_000);

  it('refuses the 3rd new machine of a license within a day with 429 ACTIVATION_VELOCITY and Retry-After, and records why', async () => {
    const server = await startServer({ newMachinesPerLicensePerDay: 2, newMachinesPerLicensePerHour: 2 });
    const db = await openDb(server.config.databaseUrl);
    try {
      const license = await issueLicense(server, 1);
      const machines: { fingerprint: string; id: number; token: string }[] = [];
      // One seat passed round: each machine activates, then gives it back for the next.
      for (let i = 0; i < 2; i++) {
        const fingerprint = newMachine();
        const res = await request(`${server.url}/v1/activations`, { body: { key: license.key, fingerprint } });
        assert.equal(res.status, 201, JSON.stringify(res.body));
        machines.push({ fingerprint, id: res.body.activation.id, token: res.body.token });
        assert.equal((await request(`${server.url}/v1/activations/${res.body.activation.id}`, { method: 'DELETE', token: res.body.token })).status, 204);
      }
      const third = await request(`${server.url}/v1/activations`, { body: { key: license.key, fingerprint: newMachine() } });
      assert.equal(third.status, 429);
      assert.equal(third.body.error.code, 'ACTIVATION_VELOCITY');
      const retryAfter = Number(third.headers.get('retry-after'));
      assert.ok(retryAfter > 0 && retryAfter <= 3_600, `Retry-After ${third.headers.get('retry-after')}`);
      assert.deepEqual(await rows(db, "SELECT detail FROM license_events WHERE license_id = ? AND kind = 'activation_velocity'", [license.id]),
        [{ detail: '2 new machines within an hour (limit 2)' }]);
      // A machine the license had before is no new machine.
      const again = await request(`${server.url}/v1/activations`, { body: { key: license.key, fingerprint: machines[0]!.fingerprint } });
      assert.equal(again.status, 200, JSON.stringify(again.body));
    } finally {
      await db.end();
      await server.close();
    }
  });

  it('lets a license take as many new machines as its seats, whatever the limit', async () => {
    const server = await startServer({ newMachinesPerLicensePerDay: 1, newMachinesPerLicensePerHour: 1 });
    try {
      const license = await issueLicense(server, 3);
      for (let i = 0; i < 3; i++) {
        const res = await request(`${server.url}/v1/activations`, { body: { key: license.key, fingerprint: newMachine() } });
        assert.equal(res.status, 201, JSON.stringify(res.body));
      }
    } finally {
      await server.close();
    }
  });

  it('refuses the 3rd new trial from one address within a day with 429 TRIAL_VELOCITY, and still answers a trial asked for again', async () => {
    const server = await startServer({ trialsPerAddressPerDay: 2 });
    const db = await openDb(server.config.databaseUrl);
    try {
      const first = { fingerprint: newMachine(), activationSecret: newActivationSecret() };
      assert.equal((await request(`${server.url}/v1/trials`, { body: first })).status, 201);
      assert.equal((await request(`${server.url}/v1/trials`, { body: { fingerprint: newMachine(), activationSecret: newActivationSecret() } })).status, 201);
      const refusedMachine = newMachine();
      const third = await request(`${server.url}/v1/trials`, { body: { fingerprint: refusedMachine, activationSecret: newActivationSecret() } });
      assert.equal(third.status, 429);
      assert.equal(third.body.error.code, 'TRIAL_VELOCITY');
      const retryAfter = Number(third.headers.get('retry-after'));
      assert.ok(retryAfter > 3_000 && retryAfter <= 86_400, `Retry-After ${third.headers.get('retry-after')}`);
      assert.equal((await request(`${server.url}/v1/trials`, { body: first })).status, 200, 'an existing trial is no new one');
      assert.deepEqual(await rows(db, "SELECT license_id, ip, detail FROM license_events WHERE kind = 'trial_velocity' AND fingerprint = ?", [refusedMachine]),
        [{ license_id: null, ip: '127.0.0.1', detail: '2 new trials from this address within 24 hours (limit 2)' }]);
      assert.deepEqual(await rows(db, 'SELECT COUNT(*) AS n FROM licenses WHERE trial_fingerprint = ?', [refusedMachine]), [{ n: 0 }]);
    } finally {
      await db.end();
      await server.close();
    }
  });
});
