import assert from 'node:assert/strict';
import { cpSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fingerprint } from '../licensing/index.js';
import type { StatusReport } from '../agent/commands/status.js';
import { tempDir } from './support/agent-fixtures.js';
import { runToEnd } from './support/processes.js';

/**
 * FERRY_MACHINE_ID and FERRY_NOW in a release build and in a development build. The release build
 * is made the way `npm run package` makes the npm tarball: the built agent with a build-info.json
 * saying `release: true` beside build-info.js. The test writes that file into a copy of dist; the
 * environment has no say in which kind of build runs.
 */
const DIST = fileURLToPath(new URL('../', import.meta.url));
const DEV_CLI = join(DIST, 'agent', 'cli.js');

function releaseBuild(): string {
  const root = tempDir('ferry-release-');
  for (const part of ['agent', 'licensing']) cpSync(join(DIST, part), join(root, 'dist', part), { recursive: true });
  writeFileSync(join(root, 'package.json'), JSON.stringify({ type: 'module' }));
  symlinkSync(realpathSync(join(DIST, '..', 'node_modules')), join(root, 'node_modules'));
  writeFileSync(
    join(root, 'dist', 'agent', 'build-info.json'),
    JSON.stringify({ version: '9.9.9', build: 'release-test', release: true, trustRoot: null, server: null }),
  );
  return join(root, 'dist', 'agent', 'cli.js');
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function ferry(cli: string, args: string[], env: Record<string, string>): Promise<Run> {
  const childEnv: Record<string, string | undefined> = { ...process.env, ...env };
  delete childEnv.FERRY_SERVER;
  return runToEnd(process.execPath, [cli, ...args], childEnv);
}

/** The full fingerprint `ferry privacy` prints. */
function fingerprintOf(run: Run): string {
  const found = /fingerprint: +([0-9a-f]{64})/.exec(run.stdout)?.[1];
  assert.ok(found, `no fingerprint in: ${run.stdout}\n${run.stderr}`);
  return found;
}

const NOW = '2030-01-02T03:04:05.000Z';

describe('FERRY_MACHINE_ID and FERRY_NOW: development builds only', function () {
  this.timeout(60_000);
  let releaseCli: string;
  before(() => {
    releaseCli = releaseBuild();
  });

  it('a release build ignores FERRY_MACHINE_ID, with one notice: every value is the same machine', async () => {
    const home = tempDir('ferry-home-');
    const first = await ferry(releaseCli, ['privacy'], { FERRY_HOME: home, FERRY_MACHINE_ID: 'farm-1' });
    const second = await ferry(releaseCli, ['privacy'], { FERRY_HOME: home, FERRY_MACHINE_ID: 'farm-2' });
    for (const run of [first, second]) {
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stderr, /^ferry: FERRY_MACHINE_ID is ignored: this is a release build, which uses the machine's own id and clock/m);
      assert.equal(run.stderr.match(/FERRY_MACHINE_ID/g)!.length, 1, 'one notice');
    }
    assert.equal(fingerprintOf(first), fingerprintOf(second), 'a new value is not a new machine');
    assert.notEqual(fingerprintOf(first), fingerprint('farm-1'));
    const unset = await ferry(releaseCli, ['privacy'], { FERRY_HOME: home });
    assert.equal(fingerprintOf(unset), fingerprintOf(first));
    assert.equal(unset.stderr, '', 'no notice when neither is set');
  });

  it('a release build ignores FERRY_NOW: its clock is the machine\'s', async () => {
    const run = await ferry(releaseCli, ['status', '--json'], { FERRY_HOME: tempDir('ferry-home-'), FERRY_NOW: NOW, FERRY_MACHINE_ID: 'farm-3' });
    assert.equal(run.code, 10, 'no license');
    assert.match(run.stderr, /^ferry: FERRY_MACHINE_ID and FERRY_NOW are ignored: this is a release build/m);
    const report = JSON.parse(run.stdout) as StatusReport;
    assert.ok(Math.abs(Date.parse(report.clock.now) - Date.now()) < 10 * 60_000, `clock ${report.clock.now}`);
    assert.notEqual(report.machineIdSource, 'FERRY_MACHINE_ID');
  });

  it('a development build honours both, without a notice', async () => {
    const home = tempDir('ferry-home-');
    const privacy = await ferry(DEV_CLI, ['privacy'], { FERRY_HOME: home, FERRY_MACHINE_ID: 'dev-machine' });
    assert.equal(privacy.code, 0, privacy.stderr);
    assert.equal(fingerprintOf(privacy), fingerprint('dev-machine'));
    assert.doesNotMatch(privacy.stderr, /ignored/);
    const status = await ferry(DEV_CLI, ['status', '--json'], { FERRY_HOME: home, FERRY_MACHINE_ID: 'dev-machine', FERRY_NOW: NOW });
    const report = JSON.parse(status.stdout) as StatusReport;
    assert.equal(report.clock.now, NOW);
    assert.equal(report.machineIdSource, 'FERRY_MACHINE_ID');
  });
});
