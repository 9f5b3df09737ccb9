import assert from 'node:assert/strict';
import { readdirSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createFileOnce, ensurePrivateDir, homePaths, resolveHomeDir, writeFileAtomic, writeJsonAtomic,
} from '../agent/home.js';
import { loadLicenseState } from '../agent/license-state.js';
import { AgentError } from '../agent/errors.js';
import { identifyMachine } from '../agent/machine.js';
import { fingerprint } from '../licensing/index.js';
import { tempDir } from './support/agent-fixtures.js';

const mode = (path: string) => statSync(path).mode & 0o777;

describe('agent home ($FERRY_HOME)', () => {
  it('lives in FERRY_HOME, else $XDG_CONFIG_HOME/ferry, else ~/.config/ferry', () => {
    assert.equal(resolveHomeDir({ FERRY_HOME: '/srv/ferry', XDG_CONFIG_HOME: '/x', HOME: '/home/ada' }), '/srv/ferry');
    assert.equal(resolveHomeDir({ XDG_CONFIG_HOME: '/x', HOME: '/home/ada' }), '/x/ferry');
    assert.equal(resolveHomeDir({ HOME: '/home/ada' }), '/home/ada/.config/ferry');
    // A relative XDG_CONFIG_HOME is invalid by the XDG spec and ignored.
    assert.equal(resolveHomeDir({ XDG_CONFIG_HOME: 'relative', HOME: '/home/ada' }), '/home/ada/.config/ferry');
  });

  it('creates the folder readable by its owner only (0700)', async () => {
    const dir = join(tempDir(), 'nested', 'ferry');
    await ensurePrivateDir(dir);
    assert.equal(mode(dir), 0o700);
  });

  it('writes every file 0600, even under a permissive umask', async () => {
    const dir = join(tempDir(), 'ferry');
    const previous = process.umask(0o000);
    try {
      await writeJsonAtomic(join(dir, 'license.json'), { token: 'secret' });
    } finally {
      process.umask(previous);
    }
    assert.equal(mode(dir), 0o700);
    assert.equal(mode(join(dir, 'license.json')), 0o600);
  });

  it('replaces a file whole and leaves no temp files behind', async () => {
    const dir = tempDir();
    const file = join(dir, 'license.json');
    await writeFileAtomic(file, 'first');
    await writeFileAtomic(file, 'second, longer than the first');
    assert.equal(readFileSync(file, 'utf8'), 'second, longer than the first');
    assert.deepEqual(readdirSync(dir), ['license.json']);
  });

  it('keeps the content of whichever of many concurrent writers came last, never a mix', async () => {
    const dir = tempDir();
    const file = join(dir, 'clock.json');
    const contents = Array.from({ length: 20 }, (_, i) => JSON.stringify({ writer: i, padding: 'x'.repeat(10_000 * (i % 3)) }));
    await Promise.all(contents.map((c) => writeFileAtomic(file, c)));
    assert.ok(contents.includes(readFileSync(file, 'utf8')));
    assert.deepEqual(readdirSync(dir), ['clock.json']);
  });

  it('creates a file once: a second creator gets false and the first one\'s content stays', async () => {
    const file = join(tempDir(), 'machine-id');
    const results = await Promise.all([createFileOnce(file, 'a\n'), createFileOnce(file, 'b\n')]);
    assert.deepEqual(results.sort(), [false, true]);
    assert.ok(['a\n', 'b\n'].includes(readFileSync(file, 'utf8')));
    assert.equal(mode(file), 0o600);
  });

  it('treats a damaged license.json as no license, naming the file and what to do', async () => {
    const paths = homePaths(tempDir());
    writeFileSync(paths.license, '{"token": ');
    await assert.rejects(loadLicenseState(paths), (err: AgentError) => {
      assert.equal(err.exit, 'NO_LICENSE');
      assert.match(err.message, /license\.json/);
      assert.match(err.message, /ferry activate/);
      return true;
    });
    writeFileSync(paths.license, '{"format": 1}');
    await assert.rejects(loadLicenseState(paths), (err: AgentError) => err.exit === 'NO_LICENSE' && /damaged/.test(err.message));
  });
});

describe('machine fingerprint', () => {
  it('is the HMAC of FERRY_MACHINE_ID when set, so tests and containers can be several machines', async () => {
    const notices: string[] = [];
    const machine = await identifyMachine({
      override: 'container-7', fallbackFile: join(tempDir(), 'machine-id'), notice: (m) => notices.push(m), readOsId: () => 'os-id',
    });
    assert.deepEqual(machine, { fingerprint: fingerprint('container-7'), source: 'FERRY_MACHINE_ID' });
    assert.deepEqual(notices, []);
  });

  it('is the HMAC of the OS machine id, never the id itself', async () => {
    const machine = await identifyMachine({ override: undefined, fallbackFile: join(tempDir(), 'machine-id'), notice: () => {}, readOsId: () => 'os-id' });
    assert.equal(machine.fingerprint, fingerprint('os-id'));
    assert.match(machine.fingerprint, /^[0-9a-f]{64}$/);
    assert.notEqual(machine.fingerprint, 'os-id');
  });

  it('falls back to an id generated once into FERRY_HOME, and says so once', async () => {
    const file = join(tempDir(), 'machine-id');
    const notices: string[] = [];
    const options = { override: undefined, fallbackFile: file, notice: (m: string) => notices.push(m), readOsId: () => '' };
    const first = await identifyMachine(options);
    const second = await identifyMachine(options);
    assert.equal(first.source, 'generated');
    assert.equal(second.fingerprint, first.fingerprint);
    assert.equal(notices.length, 1);
    assert.match(notices[0]!, /no machine id is readable/);
    assert.equal(mode(file), 0o600);
  });
});
