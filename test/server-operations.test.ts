import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadKeySet } from '../server/keys/store.js';
import { request } from './support/http.js';
import { newMachine } from './support/machines.js';
import { freePort, SERVER_MAIN, startServerProcess } from './support/processes.js';
import { startServer, testEnv } from './support/server.js';

const run = promisify(execFile);

async function serverCommand(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [SERVER_MAIN, ...args], { env: { ...process.env, ...env }, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('ferry-server start-up', () => {
  it('stops with a one-line message naming the variable when a setting is wrong', async () => {
    const deadPort = await freePort();
    const cases: [Record<string, string>, RegExp][] = [
      [{ PORT: 'eighty' }, /PORT: must be a whole number/],
      [{ TRIAL_LENGTH: '30 days' }, /TRIAL_LENGTH: must be a duration/],
      [{ DATABASE_URL: 'postgres://x/y' }, /DATABASE_URL: must start with mysql:/],
      [{ RATE_LIMIT_PER_MINUTE: '0' }, /RATE_LIMIT_PER_MINUTE/],
      [{ TRIAL_LENGTH: '60s', REMINDERS_BEFORE_END: '7d' }, /REMINDERS_BEFORE_END: 7d before the end is not within a trial of 1m/],
      [{ ADMIN_TOKEN: 'short' }, /ADMIN_TOKEN: must be at least 16/],
      // Out of range: a trial ending after the year 275760 made every trial call answer 500.
      [{ TRIAL_LENGTH: '99999999d' }, /TRIAL_LENGTH: must be from 10s to 3650d/],
      [{ REMINDER_SWEEP_EVERY: '400d' }, /REMINDER_SWEEP_EVERY: must be from 1s to 1d/],
      [{ RETAIN_TRIAL_USAGE: '1s' }, /RETAIN_TRIAL_USAGE: must be from 1h to 3650d/],
      // Stopped at "onReady hook timed out" without naming Redis.
      [{ REDIS_URL: `redis://127.0.0.1:${deadPort}` }, /REDIS_URL: cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+/],
      [{ DATABASE_URL: `mysql://root@127.0.0.1:${deadPort}/ferry_unreachable` }, /DATABASE_URL: cannot reach MySQL at mysql:\/\/127\.0\.0\.1:\d+/],
      // Node's recursive mkdir spun a core here for ever, saying nothing.
      [{ FERRY_DATA_DIR: '/proc/ferry-data' }, /FERRY_DATA_DIR: cannot create or write \/proc\/ferry-data/],
    ];
    for (const [bad, message] of cases) {
      const result = await serverCommand([], testEnv(bad));
      // serverCommand kills the process after 30 s: a start that hangs or spins fails here.
      assert.equal(result.code, 2, `${JSON.stringify(bad)}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    }
  });

  it('migrates a new database, records what ran, and does nothing the second time', async () => {
    const env = testEnv();
    const first = await serverCommand(['migrate'], env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /applied 001\.do\.licensing\.sql/);
    const second = await serverCommand(['migrate'], env);
    assert.match(second.stdout, /schema is up to date/);
  });

  it('generates the signing key and admin token at first start, 0600, and prints the token once', async () => {
    const env = testEnv();
    delete (env as Record<string, string | undefined>).ADMIN_TOKEN;
    const first = await startServerProcess(env);
    await first.stop();
    const token = /\n {2}(\S+)\n/.exec(first.output())?.[1];
    assert.ok(token, first.output());
    const keys = join(env.FERRY_DATA_DIR!, 'signing-keys');
    for (const file of [join(env.FERRY_DATA_DIR!, 'admin-token'), ...readdirSync(keys).filter((f) => f.endsWith('.pem')).map((f) => join(keys, f))]) {
      assert.equal(statSync(file).mode & 0o777, 0o600, file);
    }
    // Printed on stderr; stdout is the JSON log, which a log shipper may collect: never there.
    assert.ok(!first.logOutput().includes(token), 'token kept out of the log stream');
    const second = await startServerProcess(env);
    await second.stop();
    assert.ok(!second.output().includes(token), 'not printed again');
    const admin = await startServerProcess(env);
    try {
      const res = await request(`${admin.url}/v1/admin/licenses`, { body: { kind: 'permanent', seats: 1 }, token });
      assert.equal(res.status, 201);
    } finally {
      await admin.stop();
    }
  });
});

describe('signing key rotation', () => {
  it('keeps verifying tokens of a rotated-out key until it is retired', async () => {
    const env = testEnv();
    let server = await startServer({ ...(await import('../server/config.js')).loadConfig(env) });
    const fingerprint = newMachine();
    const trial = await request(`${server.url}/v1/trials`, { body: { fingerprint } });
    const oldKid = JSON.parse(Buffer.from(trial.body.token.split('.')[0], 'base64url').toString()).kid;
    await server.close();

    assert.equal((await serverCommand(['keys', 'rotate'], env)).code, 0);
    const config = (await import('../server/config.js')).loadConfig(env);
    server = await startServer(config);
    try {
      const jwks = await request(`${server.url}/.well-known/jwks.json`);
      assert.equal(jwks.body.keys.length, 2);
      const renewed = await request(`${server.url}/v1/validate`, { body: { fingerprint }, token: trial.body.token });
      assert.equal(renewed.status, 200, 'the old key still verifies');
      const newKid = JSON.parse(Buffer.from(renewed.body.token.split('.')[0], 'base64url').toString()).kid;
      assert.notEqual(newKid, oldKid, 'the new key signs');
    } finally {
      await server.close();
    }

    const retireActive = await serverCommand(['keys', 'retire', (await loadKeySet(env.FERRY_DATA_DIR!)).keys.active.kid], env);
    assert.notEqual(retireActive.code, 0, 'the signing key cannot be retired');
    assert.equal((await serverCommand(['keys', 'retire', oldKid], env)).code, 0);
    server = await startServer(config);
    try {
      const jwks = await request(`${server.url}/.well-known/jwks.json`);
      assert.deepEqual(jwks.body.keys.map((k: { kid: string }) => k.kid).includes(oldKid), false);
      const refused = await request(`${server.url}/v1/validate`, { body: { fingerprint }, token: trial.body.token });
      assert.equal(refused.status, 401);
      assert.equal(refused.body.error.code, 'TOKEN_UNKNOWN_KEY');
    } finally {
      await server.close();
    }
  });
});

describe('documentation and probes', () => {
  it('serves OpenAPI docs of every API call at /docs', async () => {
    const server = await startServer();
    try {
      const page = await fetch(`${server.url}/docs/`);
      assert.equal(page.status, 200);
      const spec = await request(`${server.url}/docs/json`);
      for (const path of ['/v1/trials', '/v1/activations', '/v1/validate', '/v1/activations/{id}', '/v1/usage', '/v1/admin/licenses', '/v1/admin/licenses/{id}/revoke']) {
        assert.ok(spec.body.paths[path], `${path} documented`);
      }
      assert.deepEqual((await request(`${server.url}/healthz`)).body, { ok: true });
      assert.deepEqual((await request(`${server.url}/readyz`)).body, { ready: true, mysql: true, redis: true });
    } finally {
      await server.close();
    }
  });

  it('keeps admin calls behind ADMIN_TOKEN', async () => {
    const server = await startServer();
    try {
      for (const token of [undefined, 'wrong-token-of-some-length', `${server.adminToken}x`]) {
        const res = await request(`${server.url}/v1/admin/licenses`, { body: { kind: 'permanent', seats: 1 }, token });
        assert.equal(res.status, 401);
        assert.equal(res.body.error.code, 'ADMIN_AUTH_REQUIRED');
      }
      const bad = await request(`${server.url}/v1/admin/licenses`, { body: { kind: 'permanent', seats: 0 }, token: server.adminToken });
      assert.equal(bad.status, 400);
      const missing = await request(`${server.url}/v1/admin/licenses/999999/revoke`, { method: 'POST', token: server.adminToken });
      assert.equal(missing.status, 404);
      assert.equal(missing.body.error.code, 'LICENSE_NOT_FOUND');
    } finally {
      await server.close();
    }
  });
});
