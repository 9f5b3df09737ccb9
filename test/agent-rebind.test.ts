import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Pool } from 'mysql2/promise';
import { fingerprint } from '../licensing/index.js';
import { issueLicense } from './support/admin.js';
import { Machine, type Run } from './support/ferry-machine.js';
import { request } from './support/http.js';
import { startServerWorld, type ServerWorld, type TestServer } from './support/server.js';

/**
 * A machine whose id changed (a kernel upgrade, a VM move, WSL) with ferry's home as it was: the
 * agent moves its license to the new id, proven by its device key, and keeps its seat or its trial.
 */

function expectExit(run: Run, code: number, what: string): void {
  assert.equal(run.code, code, `${what}: exit ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
}

const MOVED = /^ferry: this machine's id changed; license moved to it \(rebinds left this year: (\d+)\)$/m;

describe('ferry on a machine whose id changed', function () {
  this.timeout(60_000);
  let server: TestServer;
  let db: Pool;
  let world: ServerWorld;
  before(async () => {
    world = await startServerWorld();
    ({ server, db } = world);
  });
  after(() => world?.close());

  const activations = async (licenseId: string | number) =>
    (await db.query('SELECT id, fingerprint, active FROM activations WHERE license_id = ? ORDER BY id', [licenseId]))[0] as { id: number; fingerprint: string; active: number }[];

  it('keeps the one seat of its license: the moved machine works, says so once, and the old token no longer counts', async () => {
    const license = await issueLicense(server, 1);
    const before = new Machine();
    expectExit(await before.run(['activate', '--key', license.key, '--server', server.url]), 0, 'activate');
    const oldToken = before.license().token;
    const activationId = before.license().activationId;

    const after = before.withNewId();
    const status = await after.run(['status']);
    expectExit(status, 0, 'status after the id changed');
    assert.equal(MOVED.exec(status.stderr)?.[1], '2', status.stderr);
    assert.equal(after.license().activationId, activationId, 'the same activation');
    assert.deepEqual(await activations(license.id), [{ id: activationId, fingerprint: fingerprint(after.id), active: 1 }], 'no second seat');

    const again = await after.run(['status']);
    expectExit(again, 0, 'status again');
    assert.doesNotMatch(again.stderr, /id changed/, 'said once');

    const old = await request(`${server.url}/v1/validate`, { token: oldToken, body: { fingerprint: fingerprint(before.id) } });
    assert.equal(old.status, 401);
    assert.equal(old.body.error.code, 'TOKEN_UNKNOWN_ACTIVATION');
    // Another machine still finds the one seat taken.
    const other = new Machine();
    expectExit(await other.run(['activate', '--key', license.key, '--server', server.url]), 13, 'another machine');
  });

  it('refuses a move beyond the budget with one line and exit 40, keeping the license as it was', async () => {
    const license = await issueLicense(server, 1);
    await db.query('UPDATE licenses SET rebind_budget = 1 WHERE id = ?', [license.id]);
    const first = new Machine();
    expectExit(await first.run(['activate', '--key', license.key, '--server', server.url]), 0, 'activate');
    const second = first.withNewId();
    const moved = await second.run(['status']);
    expectExit(moved, 0, 'the first move');
    assert.equal(MOVED.exec(moved.stderr)?.[1], '0');
    const kept = second.license();

    const third = second.withNewId();
    const refused = await third.run(['status']);
    expectExit(refused, 40, 'a move beyond the budget');
    assert.match(refused.stderr,
      /^ferry: this machine's id changed, and its license cannot move to it: this license's machines have moved to a new machine id 1 times in the last 365 days, its whole budget \(1 a year\)\. The next move is possible from \d{4}-\d\d-\d\d\. Deactivate a machine that no longer uses it and activate this one, or contact support: staff can allow more moves\n$/);
    assert.deepEqual(third.license(), kept, 'license.json is unchanged');
    assert.deepEqual((await activations(license.id)).map((a) => a.fingerprint), [fingerprint(second.id)]);

    // Staff allow one more: the same machine moves at its next command.
    await db.query('UPDATE licenses SET rebind_budget = 2 WHERE id = ?', [license.id]);
    const allowed = await third.run(['status']);
    expectExit(allowed, 0, 'after staff allowed more');
    assert.equal(MOVED.exec(allowed.stderr)?.[1], '0');
  });

  it('moves a trial: the same trial and end, and the new id cannot start another', async () => {
    const machine = new Machine();
    expectExit(await machine.run(['activate', '--trial', '--server', server.url]), 0, 'activate --trial');
    const { licenseId, licenseExpiresAt, activationId } = machine.license();

    const moved = machine.withNewId();
    const status = await moved.run(['status', '--json']);
    expectExit(status, 0, 'status after the id changed');
    assert.match(status.stderr, MOVED);
    assert.equal(moved.license().licenseId, licenseId);
    assert.equal(moved.license().activationId, activationId);
    assert.equal(moved.license().licenseExpiresAt, licenseExpiresAt, 'the trial ends when it did');

    // Another ferry home on the new id: that machine has had its trial.
    const fresh = new Machine({ id: moved.id });
    const refused = await fresh.run(['activate', '--trial', '--server', server.url]);
    expectExit(refused, 19, 'a second trial on the new id');
    const [trials] = await db.query("SELECT COUNT(*) AS n FROM licenses WHERE kind = 'trial' AND trial_fingerprint IN (?)", [[fingerprint(machine.id), fingerprint(moved.id)]]);
    assert.equal(Number((trials as { n: number }[])[0]!.n), 1, 'one trial');
  });

  it('finds the same trial, not a new one, when "ferry activate --trial" is what runs first after the id changed', async () => {
    const machine = new Machine();
    expectExit(await machine.run(['activate', '--trial', '--server', server.url]), 0, 'activate --trial');
    const { licenseId, activationId } = machine.license();
    const moved = machine.withNewId();
    const again = await moved.run(['activate', '--trial']);
    expectExit(again, 0, 'activate --trial after the id changed');
    assert.match(again.stderr, MOVED);
    assert.match(again.stdout, /^This machine's trial is active: it ends /m);
    assert.equal(moved.license().licenseId, licenseId, 'the same trial');
    assert.equal(moved.license().activationId, activationId);
    const [trials] = await db.query("SELECT COUNT(*) AS n FROM licenses WHERE kind = 'trial' AND trial_fingerprint = ?", [fingerprint(moved.id)]);
    assert.equal(Number((trials as { n: number }[])[0]!.n), 0, 'no trial of its own for the new id');
  });

  it('needs the device key: a home without it is judged as another machine\'s license, as before', async () => {
    const machine = new Machine();
    expectExit(await machine.run(['activate', '--trial', '--server', server.url]), 0, 'activate --trial');
    rmSync(join(machine.home, 'device-key.pem'));
    const moved = machine.withNewId();
    const status = await moved.run(['status']);
    expectExit(status, 10, 'status without the device key');
    assert.match(status.stderr, /not valid on this machine/);
  });
});
