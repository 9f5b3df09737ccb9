import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { fingerprintOf } from '../agent/transfer/known-hosts.js';
import { tempDir } from './support/temp.js';
import { expectExitCode, assertOneLineError, FerryUser, folder, startWorld, type World } from './support/transfer-world.js';

/** The SHA256 fingerprint of a `type base64` public key line. */
function fingerprintOfLine(line: string): string {
  return fingerprintOf(Buffer.from(line.split(' ')[1]!, 'base64'));
}

describe('host keys: checked before any credential is sent', function () {
  this.timeout(60_000);
  let world: World;
  before(async () => {
    world = await startWorld();
  });
  after(() => world?.close());

  it('refuses an unknown host with HOST_KEY (22) and its fingerprint, then trusts it with --accept-new', async () => {
    const user = await FerryUser.create(world, { knownHosts: false });
    const remote = folder();
    const refused = await user.run(['ls', user.url(remote)]);
    expectExitCode(refused, 22, 'unknown host');
    assertOneLineError(refused, /host key of \[127\.0\.0\.1\]:\d+ is not known \(ssh-ed25519 SHA256:\S+\).*--accept-new/);
    assert.ok(refused.stderr.includes(fingerprintOfLine(world.sshd.hostKeys['ssh-ed25519']!)));

    const accepted = await user.run(['ls', '--accept-new', user.url(remote)]);
    expectExitCode(accepted, 0, 'with --accept-new');
    assert.match(accepted.stderr, /added the host key of \[127\.0\.0\.1\]:\d+ \(ssh-ed25519 SHA256:/);
    const recorded = join(user.ferryHome, 'known_hosts');
    assert.equal(statSync(recorded).mode & 0o777, 0o600);
    assert.match(readFileSync(recorded, 'utf8'), new RegExp(`^\\[127\\.0\\.0\\.1\\]:${world.sshd.port} ssh-ed25519 AAAA`));
    const again = await user.run(['ls', user.url(remote)]);
    expectExitCode(again, 0, 'later runs without --accept-new');
    assert.equal(again.stderr, '');
  });

  it('refuses a changed key even with --accept-new, showing both fingerprints', async () => {
    const user = await FerryUser.create(world, { knownHosts: false });
    const other = tempDir('ferry-otherkey-');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(other, 'k')]);
    const oldLine = readFileSync(join(other, 'k.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
    writeFileSync(join(user.home, '.ssh', 'known_hosts'), `[127.0.0.1]:${world.sshd.port} ${oldLine}\n`);
    for (const args of [['ls'], ['ls', '--accept-new']]) {
      const run = await user.run([...args, user.url('/tmp')]);
      expectExitCode(run, 22, `${args.join(' ')} with a changed key`);
      assertOneLineError(run, /CHANGED/);
      assert.ok(run.stderr.includes(fingerprintOfLine(oldLine)), 'the stored fingerprint');
      assert.ok(run.stderr.includes(fingerprintOfLine(world.sshd.hostKeys['ssh-ed25519']!)), 'the presented fingerprint');
    }
  });

  it('reads hashed known_hosts entries and prefers the key type it knows', async () => {
    const user = await FerryUser.create(world, { knownHosts: false });
    const file = join(user.home, '.ssh', 'known_hosts');
    // Only the RSA key is known, hashed: ferry must ask the server for its RSA key.
    writeFileSync(file, `[127.0.0.1]:${world.sshd.port} ${world.sshd.hostKeys['ssh-rsa']}\n`);
    execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
    assert.match(readFileSync(file, 'utf8'), /^\|1\|/);
    expectExitCode(await user.run(['ls', user.url('/tmp')]), 0, 'ls with a hashed RSA entry');
  });

  it('sends no password and no key to a host it refuses', async () => {
    // A bare SSH server of our own that records every authentication attempt.
    const hostKey = ssh2.utils.generateKeyPairSync('ed25519');
    const attempts: string[] = [];
    const server = new ssh2.Server({ hostKeys: [hostKey.private] }, (client) => {
      client.on('authentication', (ctx) => {
        attempts.push(ctx.method);
        ctx.reject();
      });
      client.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const port = (server.address() as AddressInfo).port;
    try {
      const user = await FerryUser.create(world, { knownHosts: false });
      const run = await user.run(['ls', `sftp://someone@127.0.0.1:${port}/`], { env: { FERRY_PASSWORD: 'secret' } });
      expectExitCode(run, 22, 'unknown host');
      assert.deepEqual(attempts, [], 'no authentication request reached the server');
    } finally {
      server.close();
    }
  });
});
