import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { issueLicense, revokeLicense } from './support/admin.js';
import { expectExitCode, FerryUser, folder, randomFile, sha256, startWorld, type World } from './support/transfer-world.js';

const MINUTE = 60_000;

/**
 * The agent checks in with its server at most every hour while it is used, beside the command:
 * FERRY_NOW moves its clock (a development build), the server keeps its own.
 */
describe('agent check-ins: revocation reaches a machine within the hour', function () {
  this.timeout(90_000);
  let world: World;
  before(async () => {
    world = await startWorld();
  });
  after(() => world?.close());

  async function permanentUser(): Promise<{ user: FerryUser; licenseId: number }> {
    const user = await FerryUser.create(world, { licensed: false });
    const license = await issueLicense(world.license, 1);
    expectExitCode(await user.run(['activate', '--key', license.key, '--server', world.license.url]), 0, 'activate --key');
    return { user, licenseId: license.id };
  }

  const stored = (user: FerryUser) => JSON.parse(readFileSync(join(user.ferryHome, 'license.json'), 'utf8'));
  const at = (ms: number) => ({ FERRY_NOW: new Date(ms).toISOString() });

  it('stops the command after the check-in that finds the license revoked; the transfer during it finishes', async () => {
    const { user, licenseId } = await permanentUser();
    const local = folder();
    const remote = folder();
    randomFile(join(local, 'a.bin'), 2_000_000);
    const start = Date.now();
    await revokeLicense(world.license, licenseId);

    // Within the hour after activating: no check-in, the lease stands, the work goes on.
    expectExitCode(await user.run(['put', join(local, 'a.bin'), user.url(`${remote}/early.bin`)], { env: at(start + 30 * MINUTE) }), 0, 'put within the hour');
    assert.equal(stored(user).refused, null);

    // An hour on: this command checks in beside its transfer, which finishes whatever the answer.
    const during = await user.run(['put', join(local, 'a.bin'), user.url(`${remote}/during.bin`)], { env: at(start + 61 * MINUTE) });
    expectExitCode(during, 0, 'the put during which the check-in finds the revocation');
    assert.equal(sha256(join(remote, 'during.bin')), sha256(join(local, 'a.bin')));
    assert.equal(stored(user).refused?.exit, 'LICENSE_REVOKED');
    assert.equal(stored(user).lastCheck.result, 'license_revoked');

    // The next command stops.
    const next = await user.run(['put', join(local, 'a.bin'), user.url(`${remote}/next.bin`)], { env: at(start + 62 * MINUTE) });
    expectExitCode(next, 12, 'the put after the revocation was found');
    assert.match(next.stderr, /^ferry: .*revoked/m);
    assert.throws(() => readFileSync(join(remote, 'next.bin')));

    const status = await user.run(['status'], { env: at(start + 63 * MINUTE) });
    expectExitCode(status, 12, 'status of a revoked license');
    assert.match(status.stdout, /^License: +permanent \d+: license revoked/m);
    assert.match(status.stdout, /^Checked: +.*: license revoked/m);
  });

  it('a check-in that changes nothing keeps the token; status says when it last checked, and the result', async () => {
    const { user } = await permanentUser();
    const token = stored(user).token;
    const later = Date.now() + 2 * 60 * MINUTE;
    const status = await user.run(['status', '--json'], { env: at(later) });
    expectExitCode(status, 0, 'status');
    const report = JSON.parse(status.stdout);
    assert.equal(report.status, 'active');
    assert.equal(report.lastCheck.result, 'valid');
    assert.equal(report.lastCheck.at, new Date(later).toISOString());
    assert.equal(stored(user).token, token, 'the server signed nothing new');
    const text = await user.run(['status'], { env: at(later + MINUTE) });
    assert.match(text.stdout, /^Checked: +\d{4}-\d\d-\d\d \d\d:\d\d UTC: valid \(checks in hourly while in use\)/m);
  });
});
