import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { fingerprintOf, judgeHostKey, keyTypeOf, type KnownKey } from '../agent/transfer/known-hosts.js';
import { until } from './support/processes.js';
import { tempDir } from './support/temp.js';
import { expectExitCode, assertOneLineError, FerryUser, folder, startSshdBeside, startWorld, type World } from './support/transfer-world.js';

/** The SHA256 fingerprint of a `type base64` public key line. */
function fingerprintOfLine(line: string): string {
  return fingerprintOf(Buffer.from(line.split(' ')[1]!, 'base64'));
}

/** A fresh key of `type` that no server holds: `type base64`. */
function newKeyLine(type: 'ed25519' | 'ecdsa'): string {
  const file = join(tempDir('ferry-otherkey-'), 'k');
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-f', file]);
  return readFileSync(`${file}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
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

      // A key of another type than the one on file is no first use: refused, --accept-new or not.
      writeFileSync(join(user.home, '.ssh', 'known_hosts'), `[127.0.0.1]:${port} ${newKeyLine('ecdsa')}\n`);
      const changed = await user.run(['ls', '--accept-new', `sftp://someone@127.0.0.1:${port}/`], { env: { FERRY_PASSWORD: 'secret' } });
      expectExitCode(changed, 22, 'a known host showing a key of another type');
      assert.deepEqual(attempts, [], 'still no authentication request');
      assert.equal(existsSync(join(user.ferryHome, 'known_hosts')), false, 'nothing recorded');
    } finally {
      server.close();
    }
  });
});

describe('host keys of another type than those on file', function () {
  this.timeout(90_000);
  /** Shows only an ed25519 key, takes passwords (all wrong) and logs each one tried. */
  let edOnly: World;
  /** Shows an ed25519 and an ECDSA key. */
  let both: World;
  before(async () => {
    edOnly = await startWorld({ hostKeyTypes: ['ed25519'], acceptPasswords: true, logLevel: 'INFO' });
    both = await startSshdBeside(edOnly, { hostKeyTypes: ['ed25519', 'ecdsa'] });
  });
  after(async () => {
    await both?.close();
    await edOnly?.close();
  });

  const name = (w: World) => `[127.0.0.1]:${w.sshd.port}`;
  /** Lines of the sshd's log since `from` (a length of its output) that record a password tried. */
  const passwordLines = (from: number) => edOnly.sshd.output().slice(from).split('\n').filter((l) => /(Accepted|Failed) password/.test(l));

  it('refuses a server that shows ed25519 when an ECDSA key is on file (in any file, hashed or by pattern), even with --accept-new, and sends no password', async () => {
    const ecdsa = newKeyLine('ecdsa');
    const places: { what: string; file: (u: FerryUser) => string; line: string; hash?: boolean }[] = [
      { what: '~/.ssh/known_hosts', file: (u) => join(u.home, '.ssh', 'known_hosts'), line: `${name(edOnly)} ${ecdsa}` },
      { what: 'hashed, in $FERRY_HOME/known_hosts', file: (u) => join(u.ferryHome, 'known_hosts'), line: `${name(edOnly)} ${ecdsa}`, hash: true },
      { what: 'a pattern', file: (u) => join(u.home, '.ssh', 'known_hosts'), line: `[127.0.0.?]:${edOnly.sshd.port},other.example ${ecdsa}` },
    ];
    const logFrom = edOnly.sshd.output().length;
    for (const place of places) {
      const user = await FerryUser.create(edOnly, { knownHosts: false, defaultKey: false });
      const file = place.file(user);
      writeFileSync(file, `${place.line}\n`);
      if (place.hash) execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
      const before = readFileSync(file, 'utf8');
      for (const flags of [[], ['--accept-new']]) {
        const run = await user.run(['ls', ...flags, `sftp://${edOnly.sshd.user}@127.0.0.1:${edOnly.sshd.port}/tmp`], { env: { FERRY_PASSWORD: 'not-the-password' } });
        const what = `${place.what} ${flags.join(' ')}`;
        expectExitCode(run, 22, what);
        assertOneLineError(run, /host key of \[127\.0\.0\.1\]:\d+ has CHANGED: the server shows ssh-ed25519 SHA256:\S+, known_hosts has ecdsa-sha2-nistp256 SHA256:\S+ .*no key of a type on file/);
        assert.ok(run.stderr.includes(fingerprintOfLine(ecdsa)), `${what}: the known fingerprint`);
        assert.ok(run.stderr.includes(fingerprintOfLine(edOnly.sshd.hostKeys['ssh-ed25519']!)), `${what}: the offered fingerprint`);
        assert.doesNotMatch(run.stderr, /added the host key/, what);
      }
      assert.equal(readFileSync(file, 'utf8'), before, `${place.what}: nothing recorded`);
      if (file !== join(user.ferryHome, 'known_hosts')) assert.equal(existsSync(join(user.ferryHome, 'known_hosts')), false, 'no file of ferry\'s own');
    }
    // A login that does reach the password step, to show the log records one: after it appears,
    // every earlier password would have too.
    const control = await FerryUser.create(edOnly, { defaultKey: false });
    expectExitCode(await control.run(['ls', `sftp://${edOnly.sshd.user}@127.0.0.1:${edOnly.sshd.port}/tmp`], { env: { FERRY_PASSWORD: 'not-the-password' } }), 21, 'the control login');
    await until('sshd to log the control\'s password', async () => passwordLines(logFrom).length > 0, 20_000);
    assert.equal(passwordLines(logFrom).length, 1, `only the control's password reached sshd:\n${passwordLines(logFrom).join('\n')}`);
  });

  it('connects to a server with an ed25519 and an ECDSA key when only the ECDSA key is on file: it asks for the known type first', async () => {
    for (const known of ['ecdsa-sha2-nistp256', 'ssh-ed25519']) {
      const user = await FerryUser.create(both, { knownHosts: false });
      writeFileSync(join(user.home, '.ssh', 'known_hosts'), `${name(both)} ${both.sshd.hostKeys[known]}\n`);
      const run = await user.run(['ls', '--accept-new', user.url('/tmp')]);
      expectExitCode(run, 0, `${known} on file`);
      assert.equal(run.stderr, '', 'known: nothing to add');
      assert.equal(existsSync(join(user.ferryHome, 'known_hosts')), false);
    }
  });

  it('records the key with --accept-new once the key exchange succeeded, even when the login then fails', async () => {
    const user = await FerryUser.create(edOnly, { knownHosts: false, defaultKey: false });
    const url = `sftp://${edOnly.sshd.user}@127.0.0.1:${edOnly.sshd.port}/tmp`;
    const run = await user.run(['ls', '--accept-new', url], { env: { FERRY_PASSWORD: 'wrong' } });
    expectExitCode(run, 21, 'a wrong password');
    assertOneLineError(run, /refused the login \(tried password \(from FERRY_PASSWORD\); the server accepts /);
    assert.match(run.stderr, /added the host key of \[127\.0\.0\.1\]:\d+ \(ssh-ed25519 SHA256:/);
    const recorded = readFileSync(join(user.ferryHome, 'known_hosts'), 'utf8');
    assert.equal(recorded, `${name(edOnly)} ${edOnly.sshd.hostKeys['ssh-ed25519']}\n`);
    // Known now: the next run gets as far as the login without --accept-new, and records nothing more.
    const again = await user.run(['ls', url], { env: { FERRY_PASSWORD: 'wrong' } });
    expectExitCode(again, 21, 'the host is known now');
    assert.doesNotMatch(again.stderr, /host key/);
    assert.equal(readFileSync(join(user.ferryHome, 'known_hosts'), 'utf8'), recorded);
  });
});

describe('judging a host key', () => {
  const key = (type: string, fill: string) => Buffer.concat([Buffer.from([0, 0, 0, type.length]), Buffer.from(type), Buffer.alloc(32, fill)]);
  const entry = (k: Buffer, revoked = false): KnownKey => ({ keyType: keyTypeOf(k), key: k, file: 'f', line: 1, revoked });
  const ed = key('ssh-ed25519', 'a');
  const ecdsa = key('ecdsa-sha2-nistp256', 'b');

  it('calls a host with a key of any type on file known, and any other key changed', () => {
    assert.equal(judgeHostKey([entry(ecdsa)], ecdsa).verdict, 'known');
    assert.equal(judgeHostKey([entry(ecdsa)], ed).verdict, 'changed');
    assert.equal(judgeHostKey([], ed).verdict, 'unknown');
  });

  it('refuses a revoked key, and does not count a @revoked line as knowing the host', () => {
    assert.equal(judgeHostKey([entry(ed, true), entry(ecdsa)], ed).verdict, 'revoked');
    assert.equal(judgeHostKey([entry(ecdsa, true)], ed).verdict, 'unknown');
  });
});
