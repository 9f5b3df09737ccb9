import assert from 'node:assert/strict';
import { issueLicense, revokeLicense } from './support/admin.js';
import { request } from './support/http.js';
import { newActivationSecret, newMachine } from './support/machines.js';
import { startServerProcess, type ServerProcess } from './support/processes.js';
import { openDb, startServer, testEnv, type TestServer } from './support/server.js';

describe('POST /v1/activations', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  const activate = (key: string, fingerprint = newMachine()) => request(`${server.url}/v1/activations`, { body: { key, fingerprint } });

  it('activates a key on a machine and answers the same machine again with 200 and the same activation', async () => {
    const license = await issueLicense(server, 2);
    const fingerprint = newMachine();
    const first = await activate(license.key, fingerprint);
    assert.equal(first.status, 201);
    assert.equal(first.body.license.kind, 'permanent');
    assert.equal(first.body.license.expiresAt, null);
    assert.equal(first.body.license.keyHint, license.key.slice(-5));
    const again = await activate(license.key.toLowerCase().replace(/-/g, ''), fingerprint);
    assert.equal(again.status, 200);
    assert.equal(again.body.activation.id, first.body.activation.id);
  });

  it('gives the machine after the last seat 409 SEATS_EXHAUSTED', async () => {
    const license = await issueLicense(server, 2);
    assert.equal((await activate(license.key)).status, 201);
    assert.equal((await activate(license.key)).status, 201);
    const third = await activate(license.key);
    assert.equal(third.status, 409);
    assert.equal(third.body.error.code, 'SEATS_EXHAUSTED');
  });

  it('frees the seat when a machine deactivates, so another machine can take it', async () => {
    const license = await issueLicense(server, 1);
    const first = await activate(license.key);
    assert.equal((await activate(license.key)).status, 409);
    const off = await request(`${server.url}/v1/activations/${first.body.activation.id}`, { method: 'DELETE', token: first.body.token });
    assert.equal(off.status, 204);
    assert.equal((await activate(license.key)).status, 201);
  });

  it('lets a token deactivate only its own activation', async () => {
    const license = await issueLicense(server, 2);
    const a = await activate(license.key);
    const b = await activate(license.key);
    const res = await request(`${server.url}/v1/activations/${b.body.activation.id}`, { method: 'DELETE', token: a.body.token });
    assert.equal(res.status, 403);
    assert.equal(res.body.error.code, 'TOKEN_NOT_FOR_ACTIVATION');
    const none = await request(`${server.url}/v1/activations/${b.body.activation.id}`, { method: 'DELETE' });
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, 'TOKEN_MISSING');
  });

  it('answers an unknown key 404 LICENSE_NOT_FOUND, a mistyped one 400 KEY_FORMAT, a revoked one 403', async () => {
    const unknown = await activate('00000-00000-00000-00000-00000');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, 'LICENSE_NOT_FOUND');
    const license = await issueLicense(server, 1);
    const typo = license.key.slice(0, -1) + (license.key.endsWith('0') ? '1' : '0');
    const mistyped = await activate(typo);
    assert.equal(mistyped.status, 400);
    assert.equal(mistyped.body.error.code, 'KEY_FORMAT');
    await revokeLicense(server, license.id);
    const revoked = await activate(license.key);
    assert.equal(revoked.status, 403);
    assert.equal(revoked.body.error.code, 'LICENSE_REVOKED');
  });

  it('records a refused seat for piracy signals', async () => {
    const license = await issueLicense(server, 1);
    await activate(license.key);
    const pirate = newMachine();
    await activate(license.key, pirate);
    const db = await openDb(server.config.databaseUrl);
    try {
      const [rows] = await db.query("SELECT fingerprint FROM license_events WHERE license_id = ? AND kind = 'seat_refused'", [license.id]);
      assert.deepEqual(rows, [{ fingerprint: pirate }]);
    } finally {
      await db.end();
    }
  });
});

describe('seat limits under concurrency, across server processes', () => {
  let servers: ServerProcess[] = [];
  let env: Record<string, string>;
  before(async function () {
    this.timeout(120_000);
    env = testEnv({ LOG_LEVEL: 'warn' });
    // Start one first so that it migrates; the others then find the schema in place.
    servers = [await startServerProcess(env)];
    servers.push(...(await Promise.all([startServerProcess(env), startServerProcess(env)])));
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('gives 100 machines racing for a 5-seat license exactly 5 activations and 95 409 SEATS_EXHAUSTED', async () => {
    const license = await issueLicense({ url: servers[0]!.url, adminToken: env.ADMIN_TOKEN! }, 5);
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        request(`${servers[i % servers.length]!.url}/v1/activations`, { body: { key: license.key, fingerprint: newMachine() } }),
      ),
    );
    const count = (status: number) => answers.filter((a) => a.status === status).length;
    assert.equal(count(201), 5, JSON.stringify(answers.filter((a) => a.status !== 201 && a.status !== 409).map((a) => a.body)));
    assert.equal(count(409), 95);
    assert.ok(answers.filter((a) => a.status === 409).every((a) => a.body.error.code === 'SEATS_EXHAUSTED'));
    const db = await openDb(env.DATABASE_URL!);
    try {
      const [rows] = await db.query('SELECT COUNT(*) AS n FROM activations WHERE license_id = ? AND active', [license.id]);
      assert.equal((rows as { n: number }[])[0]!.n, 5);
    } finally {
      await db.end();
    }
  });

  it('creates one trial when one machine asks every server at once', async () => {
    const fingerprint = newMachine();
    const activationSecret = newActivationSecret();
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) => request(`${servers[i % servers.length]!.url}/v1/trials`, { body: { fingerprint, activationSecret } })),
    );
    assert.equal(answers.filter((a) => a.status === 201).length, 1);
    assert.equal(answers.filter((a) => a.status === 200).length, 29);
    assert.equal(new Set(answers.map((a) => a.body.license.id)).size, 1);
  });
});
