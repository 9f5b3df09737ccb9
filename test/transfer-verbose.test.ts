import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { startHostileSftp } from './support/hostile-sftp.js';
import { startProftpd } from './support/proftpd.js';
import { PASSWORD_USER } from './support/sshd.js';
import { tempDir } from './support/temp.js';
import {
  assertOneLineError, expectExitCode, FerryUser, folder, randomFile, sha256, startSshdBeside, startWorld, type World,
} from './support/transfer-world.js';

/**
 * `-v` and `-vv`: what ferry does, on stderr, as `ferry: debug1:` lines; and a refused login that
 * says what was tried even without them. Never a secret in any of it.
 */

const debugLines = (stderr: string, level: 1 | 2) => stderr.split('\n').filter((l) => l.startsWith(`ferry: debug${level}: `));

describe('ferry -v and -vv', function () {
  this.timeout(120_000);
  let world: World;
  let user: FerryUser;
  before(async () => {
    world = await startWorld({ password: true });
    user = await FerryUser.create(world);
  });
  after(() => world?.close());

  it('-v tells the connection, host key line, login, extensions and concurrency on stderr; stdout stays the result', async () => {
    const { sshd } = world;
    const local = folder();
    const remote = folder();
    randomFile(join(local, 'a.bin'), 100_000);
    const run = await user.run(['put', '-v', '--parallel', '4', join(local, 'a.bin'), user.url(`${remote}/`)]);
    expectExitCode(run, 0, 'put -v');
    assert.equal(run.stdout, '');
    const label = `${sshd.user}@127\\.0\\.0\\.1:${sshd.port}`;
    const lines = debugLines(run.stderr, 1).join('\n');
    assert.match(lines, new RegExp(`^ferry: debug1: connecting to 127\\.0\\.0\\.1 port ${sshd.port} as ${sshd.user}$`, 'm'));
    assert.match(lines, new RegExp(`^ferry: debug1: ${label}: server software OpenSSH_`, 'm'));
    assert.match(lines, new RegExp(`^ferry: debug1: ${label}: host key ssh-ed25519 SHA256:\\S+ matches ${join(user.home, '.ssh', 'known_hosts')}:1$`, 'm'));
    assert.match(lines, new RegExp(`^ferry: debug1: ${label}: the server accepts publickey,? ?.*password`, 'm'));
    assert.match(lines, new RegExp(`^ferry: debug1: ${label}: trying publickey key ${join(user.home, '.ssh', 'id_ed25519')} ssh-ed25519 SHA256:\\S+$`, 'm'));
    assert.match(lines, new RegExp(`^ferry: debug1: ${label}: logged in with publickey key `, 'm'));
    assert.match(lines, /SFTP version 3; extensions: .*posix-rename@openssh\.com=1.*limits@openssh\.com=1/);
    assert.match(lines, /limits: reads up to \d+ bytes, writes up to \d+ bytes/);
    assert.match(lines, /no check-file: --resume verifies a part file by reading it back/);
    assert.match(lines, /^ferry: debug1: 1 file \(97\.7 KiB\): up to 4 at once over 1 connection$/m);
    assert.deepEqual(debugLines(run.stderr, 2), [], '-v alone shows no file details');
    // Every stderr line is ferry's: nothing else was printed.
    assert.ok(run.stderr.trimEnd().split('\n').every((l) => l.startsWith('ferry: debug1: ')), run.stderr);
  });

  it('-vv adds each file: the part file, a resume verified, and its end', async () => {
    const local = folder();
    const remote = folder();
    const data = randomFile(join(local, 'big.bin'), 3_000_000);
    // An interrupted earlier run's part file, its first 2 MB right.
    writeFileSync(join(remote, '.big.bin.ferry-part'), data.subarray(0, 2_000_000));
    const run = await user.run(['put', '-vv', '--resume', join(local, 'big.bin'), user.url(`${remote}/`)]);
    expectExitCode(run, 0, 'put -vv --resume');
    assert.equal(sha256(join(remote, 'big.bin')), sha256(join(local, 'big.bin')));
    const lines = debugLines(run.stderr, 2).join('\n');
    assert.match(lines, new RegExp(`^ferry: debug2: big\\.bin: upload of 2\\.86 MiB into the part file ${remote}/\\.big\\.bin\\.ferry-part, renamed to ${remote}/big\\.bin when whole$`, 'm'));
    assert.match(lines, /^ferry: debug2: big\.bin: part file of 1\.91 MiB verified by SHA-256 \(read back\): kept whole, continuing from byte 2000000$/m);
    assert.match(lines, /^ferry: debug2: big\.bin: done$/m);
    assert.match(lines, /key exchange \S+, host key algorithm ssh-ed25519, cipher/);
    // runtime.ts: the compiler tiers the files moved with, by this machine's CPUs.
    assert.match(lines, availableParallelism() >= 4
      ? /^ferry: debug2: the files move with V8's optimizing compiler \(\d+ CPUs\)$/m
      : /^ferry: debug2: the files move as V8's baseline code, without its optimizing compiler \(\d CPUs?: /m);
  });

  it('-vv on sync, and -v on ls, mkdir, rm and mv', async () => {
    const remote = folder();
    writeFileSync(join(remote, 'x.txt'), 'x');
    for (const args of [['ls', '-v', user.url(remote)], ['mkdir', '-v', user.url(`${remote}/d`)], ['mv', '-v', user.url(`${remote}/x.txt`), user.url(`${remote}/y.txt`)], ['rm', '-v', user.url(`${remote}/y.txt`)]]) {
      const run = await user.run(args);
      expectExitCode(run, 0, args.join(' '));
      assert.match(run.stderr, /^ferry: debug1: .*logged in with publickey/m, args[0]);
    }
    const local = folder();
    writeFileSync(join(local, 'n.txt'), 'new');
    const sync = await user.run(['sync', '-vv', local, user.url(remote)]);
    expectExitCode(sync, 0, 'sync -vv');
    assert.match(sync.stderr, /^ferry: debug2: n\.txt: upload of 3 B into the part file /m);
    assert.match(sync.stderr, /^ferry: debug2: n\.txt: copy, not in the destination$/m);
    const again = await user.run(['sync', '-vv', local, user.url(remote)]);
    expectExitCode(again, 0, 'sync -vv again');
    assert.match(again.stderr, /^ferry: debug1: sync: 0 to copy, 0 folders to make, 0 to delete, 1 unchanged$/m);
    assert.match(again.stderr, /^ferry: debug2: n\.txt: skipped, same size and time$/m);
  });

  it('a refused login says which methods and keys were tried, without -v, and never the password', async () => {
    const { sshd } = world;
    const stranger = await FerryUser.create(world, { defaultKey: false });
    const keyDir = folder();
    execFileSync('ssh-keygen', ['-q', '-t', 'ecdsa', '-N', '', '-f', join(keyDir, 'k')]);
    const fingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(keyDir, 'k.pub')], { encoding: 'utf8' }).split(' ')[1]!;
    const secret = 'not-the-password-8f3a';
    const url = `sftp://${PASSWORD_USER}@127.0.0.1:${sshd.port}/tmp`;
    const run = await stranger.run(['ls', '-i', join(keyDir, 'k'), url], { env: { FERRY_PASSWORD: secret } });
    expectExitCode(run, 21, 'a refused login');
    assertOneLineError(run, new RegExp(`refused the login \\(tried publickey \\(key ${join(keyDir, 'k')} ecdsa-sha2-nistp256 ${fingerprint.replace(/[+/]/g, '\\$&')}\\), password \\(from FERRY_PASSWORD\\); the server accepts publickey, password\\)$`));
    const verbose = await stranger.run(['ls', '-vv', '-i', join(keyDir, 'k'), url], { env: { FERRY_PASSWORD: secret } });
    expectExitCode(verbose, 21, 'a refused login, -vv');
    assert.match(verbose.stderr, /debug1: .*: publickey key .*k ecdsa-sha2-nistp256 SHA256:\S+: refused$/m);
    assert.match(verbose.stderr, /debug1: .*: password from FERRY_PASSWORD: refused$/m);
    const privateKey = readFileSync(join(keyDir, 'k'), 'utf8').split('\n').filter((l) => !l.startsWith('-----') && l !== '');
    for (const output of [run.stderr, verbose.stderr, run.stdout, verbose.stdout]) {
      assert.ok(!output.includes(secret), 'the password is never printed');
      for (const line of privateKey) assert.ok(!output.includes(line), 'no private key material');
    }
  });

  it('a refused login says when a key could not be used and what the server does not accept', async () => {
    const stranger = await FerryUser.create(world, { defaultKey: false });
    const keyDir = folder();
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'a passphrase', '-f', join(keyDir, 'locked')]);
    const run = await stranger.run(['ls', '-i', join(keyDir, 'locked'), stranger.url('/tmp')]);
    expectExitCode(run, 21, 'an encrypted key without its passphrase');
    assertOneLineError(run, /refused the login \(no key, agent or password to offer: use -i KEY or set FERRY_PASSWORD; the server accepts publickey, password; not usable: key \S+locked \(encrypted, no passphrase\), password \(no FERRY_PASSWORD, and not on a terminal to ask it\)\)$/);
    const passphrase = 'the secret phrase 77';
    execFileSync('ssh-keygen', ['-q', '-p', '-P', 'a passphrase', '-N', passphrase, '-f', join(keyDir, 'locked')]);
    const unlocked = await stranger.run(['ls', '-vv', '-i', join(keyDir, 'locked'), stranger.url('/tmp')], { env: { FERRY_KEY_PASSPHRASE: passphrase } });
    expectExitCode(unlocked, 21, 'an unlocked key the server does not know');
    assert.ok(!unlocked.stderr.includes(passphrase), 'the passphrase is never printed');
    assert.match(unlocked.stderr, /debug1: .*: trying publickey key \S+locked ssh-ed25519 SHA256:/);
  });

  it('-v through a jump host names it, and traces its login too', async () => {
    const { sshd } = world;
    const remote = folder();
    const run = await user.run(['ls', '-v', '-J', `${sshd.user}@127.0.0.1:${sshd.port}`, user.url(remote)]);
    expectExitCode(run, 0, 'ls -J');
    assert.match(run.stderr, new RegExp(`^ferry: debug1: connecting to 127\\.0\\.0\\.1 port ${sshd.port} as ${sshd.user} via ${sshd.user}@127\\.0\\.0\\.1:${sshd.port}$`, 'm'));
    assert.match(run.stderr, new RegExp(`^ferry: debug1: jump host ${sshd.user}@127\\.0\\.0\\.1:${sshd.port}: logged in with publickey`, 'm'));
  });

  it('-v against ProFTPD says which extensions it lacks and that it answers out of order', async () => {
    const sshd = await startProftpd({ dir: tempDir('ferry-proftpd-'), extra: ['SFTPExtensions -posixRename'] });
    try {
      const other = await FerryUser.create({ license: world.license, sshd, close: () => sshd.stop() });
      const run = await other.run(['ls', '-v', other.url('/tmp')]);
      expectExitCode(run, 0, 'ls -v against ProFTPD');
      assert.match(run.stderr, /server software mod_sftp/);
      assert.match(run.stderr, /no posix-rename@openssh\.com: a file is replaced by renaming the old one aside first/);
      assert.match(run.stderr, /no limits@openssh\.com: reads and writes are sized for any server/);
      assert.match(run.stderr, /not OpenSSH's sftp-server: a close waits until every write and read is answered/);
      assert.match(run.stderr, /host key ssh-rsa SHA256:\S+ matches /);
    } finally {
      await sshd.stop();
    }
  });

  it('-v against gesftpserver reads its vendor-id rather than showing its bytes', async () => {
    const beside = await startSshdBeside(world, { subsystem: 'gesftpserver' });
    try {
      const other = await FerryUser.create(beside);
      const run = await other.run(['ls', '-v', other.url('/tmp')]);
      expectExitCode(run, 0, 'ls -v against gesftpserver');
      assert.match(run.stderr, /extensions: .*vendor-id \(Green End SFTP Server \S+, by Green End\)/);
      // Behind OpenSSH's sshd, but multi-threaded: its close waits for the writes in flight.
      assert.match(run.stderr, /not OpenSSH's sftp-server: a close waits until every write and read is answered/);
      assert.doesNotMatch(run.stderr, /\\x00/);
    } finally {
      await beside.close();
    }
  });

  it('escapes what the server sent (its software version) in -v lines', async () => {
    const hostile = await startHostileSftp({ files: { '/d/a.txt': 'a' }, ident: 'Evil\u001b]0;owned\u0007_1.0' });
    try {
      appendFileSync(join(user.home, '.ssh', 'known_hosts'), `${hostile.knownHostsLine()}\n`);
      const run = await user.run(['ls', '-v', hostile.url('/d')]);
      expectExitCode(run, 0, 'ls -v');
      assert.doesNotMatch(run.stderr, /\u001b|\u0007/);
      assert.match(run.stderr, /server software Evil\\x1b\]0;owned\\x07_1\.0/);
    } finally {
      await hostile.close();
    }
  });
});
