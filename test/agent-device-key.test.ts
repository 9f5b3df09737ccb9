import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type mysql from 'mysql2/promise';
import { fingerprint } from '../licensing/index.js';
import { request } from './support/http.js';
import { startServerWorld, type ServerWorld, type TestServer } from './support/server.js';
import { Machine, type Run } from './support/ferry-machine.js';

function expectExit(run: Run, code: number, what: string): void {
  assert.equal(run.code, code, `${what}: exit ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
}

/** The raw public key of the device key in a machine's home, base64url, as the server should hold it. */
function homeDeviceKey(machine: Machine): string {
  const pem = readFileSync(join(machine.home, 'device-key.pem'), 'utf8');
  const jwk = createPublicKey(createPrivateKey(pem)).export({ format: 'jwk' });
  return jwk.x!;
}

describe('device keys: each activation holds a key pair made on the machine', function () {
  let server: TestServer;
  let db: mysql.Pool;
  let world: ServerWorld;
  before(async () => {
    world = await startServerWorld();
    ({ server, db } = world);
  });
  after(() => world?.close());

  async function storedKey(activationId: number): Promise<string | null> {
    const [rows] = await db.query('SELECT device_key FROM activations WHERE id = ?', [activationId]);
    const key = (rows as { device_key: Buffer | null }[])[0]?.device_key ?? null;
    return key === null ? null : key.toString('base64url');
  }

  it('makes the key (0600) at the trial and the server keeps its public half with the activation', async () => {
    const machine = new Machine();
    expectExit(await machine.run(['activate', '--trial', '--server', server.url]), 0, 'activate --trial');
    const file = join(machine.home, 'device-key.pem');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(createPrivateKey(readFileSync(file, 'utf8')).asymmetricKeyType, 'ed25519', 'an Ed25519 private key the agent made');
    assert.equal(await storedKey(machine.license().activationId), homeDeviceKey(machine));
  });

  it('gives a new activation a new key after deactivation', async () => {
    const issued = await request(`${server.url}/v1/admin/licenses`, { token: server.adminToken, body: { kind: 'permanent', seats: 1 } });
    const machine = new Machine();
    expectExit(await machine.run(['activate', '--key', issued.body.license.key, '--server', server.url]), 0, 'activate --key');
    const first = homeDeviceKey(machine);
    assert.equal(await storedKey(machine.license().activationId), first);
    expectExit(await machine.run(['deactivate']), 0, 'deactivate');
    assert.equal(existsSync(join(machine.home, 'device-key.pem')), false, 'the key goes with the activation');
    expectExit(await machine.run(['activate', '--key', issued.body.license.key, '--server', server.url]), 0, 'activate again');
    const second = homeDeviceKey(machine);
    assert.notEqual(second, first);
    assert.equal(await storedKey(machine.license().activationId), second, 'the server holds the new key');
  });

  it('keeps the key a re-made ferry home presents, and shows staff that it changed', async () => {
    const issued = await request(`${server.url}/v1/admin/licenses`, { token: server.adminToken, body: { kind: 'permanent', seats: 1 } });
    const machine = new Machine();
    expectExit(await machine.run(['activate', '--key', issued.body.license.key, '--server', server.url]), 0, 'activate');
    const again = new Machine({ id: machine.id }); // the same machine, its ferry home made anew
    expectExit(await again.run(['activate', '--key', issued.body.license.key, '--server', server.url]), 0, 'activate from the new home');
    assert.equal(again.license().activationId, machine.license().activationId, 'the same seat');
    assert.equal(await storedKey(again.license().activationId), homeDeviceKey(again));
    const [rows] = await db.query("SELECT COUNT(*) AS n FROM license_events WHERE license_id = ? AND kind = 'device_key_replaced'", [issued.body.license.id]);
    assert.equal(Number((rows as { n: number }[])[0]!.n), 1);
  });

  it('says in one line, exit 2, when the device key file is damaged', async () => {
    const machine = new Machine();
    writeFileSync(join(machine.home, 'device-key.pem'), 'not a key\n', { mode: 0o600 });
    const run = await machine.run(['activate', '--trial', '--server', server.url]);
    expectExit(run, 2, 'activate with a damaged key');
    assert.match(run.stderr, /^ferry: .*device-key\.pem is damaged/m);
    assert.doesNotMatch(run.stderr, /\n\s+at /);
  });

  it('answers 400 VALIDATION_FAILED to a device key that is not 32 bytes of base64url', async () => {
    const res = await request(`${server.url}/v1/trials`, {
      body: { fingerprint: fingerprint('device-key-bad-machine'), devicePublicKey: 'too-short' },
    });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'VALIDATION_FAILED');
  });
});
