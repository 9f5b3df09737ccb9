import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { until } from './support/processes.js';
import { expectExitCode, FerryUser, folder, randomFile, sha256, startWorld, type World } from './support/transfer-world.js';

/**
 * What a person at a terminal meets, and logins without key files: the passphrase prompt of an
 * encrypted key (on a pseudo-terminal), the progress bar, and keys held by a real ssh-agent.
 */
describe('ferry on a terminal, and with ssh-agent', function () {
  this.timeout(60_000);
  let world: World;
  before(async () => {
    world = await startWorld();
  });
  after(() => world?.close());

  /** A copy of the test's client key, encrypted with `passphrase`. */
  function encryptedKey(passphrase: string): string {
    const key = join(folder('ferry-key-'), 'id_encrypted');
    copyFileSync(world.sshd.clientKey, key);
    chmodSync(key, 0o600);
    const changed = spawnSync('ssh-keygen', ['-q', '-p', '-P', '', '-N', passphrase, '-f', key]);
    assert.equal(changed.status, 0, String(changed.stderr));
    return key;
  }

  it('asks for an encrypted key\'s passphrase on the terminal without echoing it, and draws a progress bar', async () => {
    const user = await FerryUser.create(world, { defaultKey: false });
    const key = encryptedKey('correct horse');
    const local = folder();
    const remote = folder();
    randomFile(join(local, 'big.bin'), 3 * 1024 * 1024);
    const run = await user.runOnTerminal(['put', '-i', key, join(local, 'big.bin'), user.url(`${remote}/`)], {
      answers: [{ prompt: /Enter passphrase for key '[^']+': $/, type: 'correct horse\r' }],
    });
    assert.equal(run.code, 0, run.screen);
    assert.equal(sha256(join(remote, 'big.bin')), sha256(join(local, 'big.bin')));
    assert.doesNotMatch(run.screen, /correct horse/, 'the passphrase is not shown');
    // The bar's last frame: complete, with a rate (not 0 B/s) and no time left, then the summary line.
    assert.match(run.screen, /█{24} 100% 3\.00 MiB\/3\.00 MiB [1-9][\d.]* [KMG]iB\/s 0:00 left 1\/1/);
    assert.match(run.screen, /1 file, 3\.00 MiB in [\d.]+ s/);
  });

  /** The bar's frames as drawn: each starts at column 1 and ends by clearing the rest of the line. */
  function frames(screen: string): string[] {
    // eslint-disable-next-line no-control-regex
    return [...screen.matchAll(/\x1b\[1G([^\x1b]*)\x1b\[0K/g)].map((m) => m[1]!).filter((f) => /[█░]|%/.test(f));
  }

  it('fits the bar to a narrow terminal, and wipes it when done: the summary line takes its place', async () => {
    const user = await FerryUser.create(world);
    const local = folder();
    const remote = folder();
    randomFile(join(local, 'a-file-with-a-long-name.bin'), 2 * 1024 * 1024);
    const run = await user.runOnTerminal(['put', '--bwlimit', '1M', join(local, 'a-file-with-a-long-name.bin'), user.url(`${remote}/`)], { columns: 50 });
    assert.equal(run.code, 0, run.screen);
    const drawn = frames(run.screen);
    assert.ok(drawn.length >= 2, run.screen);
    for (const frame of drawn) assert.ok([...frame].length <= 50, `wider than the terminal: ${JSON.stringify(frame)}`);
    assert.match(drawn.at(-1)!, /^█{20,} 100% [\d.]+ [KM]iB\/s 0:00$/, 'on 50 columns: the bar and the short figures');
    // After the last frame: back to column 1, the line erased, then the summary.
    const end = run.screen.slice(run.screen.lastIndexOf(drawn.at(-1)!));
    assert.match(end, /\x1b\[2K[^█]*ferry: 1 file, 2\.00 MiB in [\d.]+ s/);
  });

  it('follows the terminal when it is resized during a transfer (SIGWINCH)', async () => {
    const user = await FerryUser.create(world);
    const local = folder();
    const remote = folder();
    randomFile(join(local, 'big.bin'), 4 * 1024 * 1024);
    const run = await user.runOnTerminal(['put', '--bwlimit', '1M', join(local, 'big.bin'), user.url(`${remote}/`)], { columns: 120, resize: { afterMs: 1500, columns: 60 } });
    assert.equal(run.code, 0, run.screen);
    const drawn = frames(run.screen);
    const widths = drawn.map((f) => [...f].length);
    assert.ok(widths.some((w) => w > 60), `wide frames before the resize: ${widths.join(' ')}`);
    assert.ok(widths.at(-1)! <= 60, `the last frames fit 60 columns: ${widths.join(' ')}`);
    assert.ok(widths.every((w) => w <= 120), widths.join(' '));
  });

  it('says AUTH (21) after a wrong passphrase, without asking for a password the server does not take', async () => {
    const user = await FerryUser.create(world, { defaultKey: false });
    const key = encryptedKey('correct horse');
    const local = folder();
    const remote = folder();
    randomFile(join(local, 'a.bin'), 1000);
    const run = await user.runOnTerminal(['put', '-i', key, join(local, 'a.bin'), user.url(`${remote}/`)], {
      answers: [{ prompt: /Enter passphrase for key/, type: 'wrong horse\r' }],
    });
    assert.equal(run.code, 21, run.screen);
    assert.match(run.screen, /refused the login/);
    assert.doesNotMatch(run.screen, /password: /, 'this sshd takes keys only: no password prompt');
    assert.equal(existsSync(join(remote, 'a.bin')), false);
  });

  it('logs in with a key held by ssh-agent when no key file is offered', async () => {
    const socket = join(folder('ferry-agent-'), 'agent.sock');
    const agent: ChildProcess = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    try {
      await until('ssh-agent to create its socket', async () => existsSync(socket), 10_000);
      const added = spawnSync('ssh-add', [world.sshd.clientKey], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
      assert.equal(added.status, 0, String(added.stderr));

      const user = await FerryUser.create(world, { defaultKey: false });
      const local = folder();
      const remote = folder();
      randomFile(join(local, 'a.bin'), 50_000);
      const withAgent = await user.run(['put', join(local, 'a.bin'), user.url(`${remote}/`)], { env: { SSH_AUTH_SOCK: socket } });
      expectExitCode(withAgent, 0, 'put with the key in ssh-agent');
      assert.equal(sha256(join(remote, 'a.bin')), sha256(join(local, 'a.bin')));
      // The same user without the agent has nothing to log in with.
      const without = await user.run(['ls', user.url(`${remote}/`)]);
      expectExitCode(without, 21, 'no agent, no key file');
    } finally {
      agent.kill();
    }
  });
});
