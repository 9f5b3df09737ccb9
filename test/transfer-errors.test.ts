import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { parseJumpHosts, parseLocation } from '../agent/transfer/url.js';
import { expandGlob, hostMatches, parseSshConfig, readSshConfig, resolveSshHost } from '../agent/transfer/ssh-config.js';
import { keysFor } from '../agent/transfer/known-hosts.js';
import { openDb } from './support/server.js';
import { freePort } from './support/processes.js';
import { expectExitCode, assertOneLineError, FerryUser, folder, randomFile, startWorld, type World } from './support/transfer-world.js';

describe('transfer errors: one line, the right exit code', function () {
  this.timeout(60_000);
  let world: World;
  let user: FerryUser;
  before(async () => {
    world = await startWorld();
    user = await FerryUser.create(world);
  });
  after(() => world?.close());

  it('refuses every transfer command without a license: NO_LICENSE (10), saying how to start a trial or enter a key', async () => {
    const unlicensed = await FerryUser.create(world, { licensed: false });
    const local = folder();
    writeFileSync(join(local, 'f'), 'f');
    for (const args of [
      ['put', join(local, 'f'), unlicensed.url('/tmp/')], ['get', unlicensed.url('/tmp/x'), local], ['ls', unlicensed.url('/tmp')],
      ['mkdir', unlicensed.url('/tmp/x')], ['rm', unlicensed.url('/tmp/x')], ['mv', unlicensed.url('/tmp/x'), '/tmp/y'], ['sync', local, unlicensed.url('/tmp/x')],
    ]) {
      const run = await unlicensed.run(args);
      expectExitCode(run, 10, args[0]!);
      assertOneLineError(run, /ferry activate --trial.*ferry activate --key KEY/);
    }
  });

  it('records one usage event per command during a trial: its kind, nothing else', async () => {
    const counted = await FerryUser.create(world);
    const remote = folder();
    const local = folder();
    writeFileSync(join(local, 'f'), 'f');
    for (const args of [['put', join(local, 'f'), counted.url(`${remote}/`)], ['ls', counted.url(remote)], ['get', counted.url(`${remote}/f`), join(local, 'g')],
      ['mv', counted.url(`${remote}/f`), `${remote}/h`], ['mkdir', counted.url(`${remote}/d`)], ['rm', counted.url(`${remote}/h`)], ['sync', local, counted.url(`${remote}/d`)]]) {
      expectExitCode(await counted.run(args), 0, args[0]!);
    }
    const db = await openDb(world.license.config.databaseUrl);
    try {
      const license = JSON.parse(execFileSync('cat', [join(counted.ferryHome, 'license.json')], { encoding: 'utf8' })) as { activationId: number };
      const [rows] = await db.query('SELECT * FROM usage_events WHERE activation_id = ? ORDER BY occurred_at, id', [license.activationId]);
      const events = rows as Record<string, unknown>[];
      assert.deepEqual(events.map((e) => e.kind), ['activate', 'put', 'ls', 'get', 'mv', 'mkdir', 'rm', 'sync']);
      const stored = JSON.stringify(events);
      assert.ok(!stored.includes(remote) && !stored.includes('127.0.0.1:'), 'no paths or hosts in usage events');
    } finally {
      await db.end();
    }
  });

  it('leaves a license server that did not answer the usage report alone for the next commands; the events wait in the spool', async () => {
    // A server that takes the connection and never answers, as behind a firewall that drops the answers.
    const held: Socket[] = [];
    let connections = 0;
    const silent = createServer((socket) => {
      connections++;
      held.push(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const silentUrl = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
    try {
      const trial = await FerryUser.create(world);
      const remote = folder();
      const first = await trial.run(['--server', silentUrl, 'ls', trial.url(remote)]);
      expectExitCode(first, 0, 'ls while the license server does not answer');
      assert.equal(connections, 1, 'the usage report was tried');
      const second = await trial.run(['--server', silentUrl, 'ls', trial.url(remote)]);
      expectExitCode(second, 0, 'ls again');
      assert.equal(connections, 1, 'the next command did not try the silent server again');
      assert.deepEqual(trial.spooledKinds(), ['ls', 'ls'], 'both events wait in the spool');
      // Another server (the real one) is not held back: the spool goes there at once.
      expectExitCode(await trial.run(['ls', trial.url(remote)]), 0, 'ls with the license server answering');
      assert.deepEqual(trial.spooledKinds(), []);
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('says USAGE (2) for a bad URL, a password in a URL, bad numbers, or local-to-local', async () => {
    const cases: [string[], RegExp][] = [
      [['ls', 'sftp://'], /bad URL/],
      [['ls', 'sftp://host:99999/x'], /bad port/],
      [['ls', 'http://host/x'], /only sftp:\/\//],
      [['ls', 'sftp://me:secret@host/x'], /password does not belong/],
      [['put', '/etc/hostname', user.url('/tmp/'), '--parallel', 'many'], /--parallel must be a whole number/],
      [['put', '/etc/hostname', '/tmp/x'], /must be remote/],
      [['sync', '/tmp', '/tmp'], /one side must be remote/],
      [['put', '/etc/hostname'], /needs/],
    ];
    for (const [args, message] of cases) {
      const run = await user.run(args);
      expectExitCode(run, 2, args.join(' '));
      assertOneLineError(run, message);
    }
  });

  it('says NOT_FOUND (24) for a missing local or remote file', async () => {
    const local = await user.run(['put', '/nonexistent/file.txt', user.url('/tmp/')]);
    expectExitCode(local, 24, 'put of a missing file');
    assertOneLineError(local, /\/nonexistent\/file\.txt: no such file/);
    const remote = await user.run(['get', user.url('/nonexistent/file.txt'), folder()]);
    expectExitCode(remote, 24, 'get of a missing file');
    assertOneLineError(remote, /no such file/);
    const glob = await user.run(['get', user.url('/tmp/*.no-such-extension'), folder()]);
    expectExitCode(glob, 24, 'a glob without matches');
  });

  it('says CONNECTION (20) when nothing listens, AUTH (21) when the key is not accepted', async () => {
    const port = await freePort();
    const refused = await user.run(['ls', `sftp://root@127.0.0.1:${port}/`]);
    expectExitCode(refused, 20, 'connection refused');
    assertOneLineError(refused, /cannot connect to root@127\.0\.0\.1:\d+: connection refused/);
    const stranger = await FerryUser.create(world, { defaultKey: false });
    const keyDir = folder();
    execFileSync('ssh-keygen', ['-q', '-t', 'ecdsa', '-N', '', '-f', join(keyDir, 'k')]);
    const auth = await stranger.run(['ls', '-i', join(keyDir, 'k'), stranger.url('/tmp')]);
    expectExitCode(auth, 21, 'an unknown key');
    assertOneLineError(auth, new RegExp(`refused the login \\(tried publickey \\(key ${join(keyDir, 'k')} ecdsa-sha2-nistp256 SHA256:\\S+\\); the server accepts publickey`));
  });

  it('unlocks an encrypted key with FERRY_KEY_PASSPHRASE', async () => {
    const locked = await FerryUser.create(world, { defaultKey: false });
    const keyDir = folder();
    const key = join(keyDir, 'locked');
    execFileSync('cp', [world.sshd.clientKey, key]);
    execFileSync('ssh-keygen', ['-q', '-p', '-N', 'open sesame', '-f', key]);
    const run = await locked.run(['ls', '-i', key, locked.url('/tmp')], { env: { FERRY_KEY_PASSPHRASE: 'open sesame' } });
    expectExitCode(run, 0, 'ls with a passphrase from the environment');
    const without = await locked.run(['ls', '-i', key, locked.url('/tmp')]);
    expectExitCode(without, 21, 'no passphrase, no terminal');
  });

  it('says DISK_FULL (26) when the server\'s disk or the local disk is full', async function () {
    const small = folder('ferry-full-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]);
    try {
      const local = folder();
      randomFile(join(local, 'big.bin'), 3 * 1024 * 1024);
      const up = await user.run(['put', join(local, 'big.bin'), user.url(`${small}/`)]);
      expectExitCode(up, 26, 'put into a full file system');
      assertOneLineError(up, /no space left/);
      const remote = folder();
      randomFile(join(remote, 'big.bin'), 3 * 1024 * 1024);
      mkdirSync(join(small, 'down'));
      const down = await user.run(['get', user.url(`${remote}/big.bin`), join(small, 'down', 'big.bin')]);
      expectExitCode(down, 26, 'get into a full file system');
      assertOneLineError(down, /no space left/);
    } finally {
      execFileSync('umount', [small]);
    }
  });
});

describe('transfer arguments and OpenSSH files (unit)', () => {
  it('reads sftp:// URLs: absolute paths, ~/ relative to the login folder, ports, users', () => {
    assert.deepEqual(parseLocation('sftp://h/tmp/x', {}), { kind: 'remote', target: { host: 'h' }, path: '/tmp/x', trailingSlash: false });
    assert.deepEqual(parseLocation('sftp://ada@h:2222/~/in/', {}), { kind: 'remote', target: { host: 'h', user: 'ada', port: 2222 }, path: 'in', trailingSlash: true });
    assert.deepEqual(parseLocation('sftp://[::1]/a%20b', {}), { kind: 'remote', target: { host: '::1' }, path: '/a b', trailingSlash: false });
    assert.deepEqual(parseLocation('mysite:/in', { mysite: { host: 'sftp.example.org', user: 'u', folder: '/base' } }), {
      kind: 'remote', target: { host: 'sftp.example.org', site: 'mysite', user: 'u' }, path: '/in', trailingSlash: false,
    });
    assert.equal((parseLocation('mysite:sub', { mysite: { host: 'h', folder: '/base' } }) as { path: string }).path, '/base/sub');
    assert.equal(parseLocation('./a:b', {}).kind, 'local');
  });

  it('resolves ~/.ssh/config Host blocks: first value wins, negation, IdentityFile tokens', async () => {
    const blocks = await parseSshConfig('Host web !web-old\n  HostName %h.example.org\n  User deploy\n  IdentityFile ~/.ssh/%r_key\nHost *\n  User nobody\n  Port 2200\n');
    const web = resolveSshHost(blocks, 'web', { home: '/home/a', localUser: 'a' });
    assert.deepEqual(web, { hostName: 'web.example.org', user: 'deploy', port: 2200, identityFiles: ['/home/a/.ssh/deploy_key'] });
    assert.equal(resolveSshHost(blocks, 'web-old', { home: '/h', localUser: 'a' }).user, 'nobody');
    assert.ok(hostMatches(['*.example.org', '!bad.example.org'], 'good.example.org'));
    assert.ok(!hostMatches(['*.example.org', '!bad.example.org'], 'bad.example.org'));
  });

  it('reads Match blocks and Include files as ssh does: in place, conditionally, globbed, user file first', async () => {
    const home = folder();
    const ssh = join(home, '.ssh');
    mkdirSync(join(ssh, 'conf.d'), { recursive: true });
    writeFileSync(join(ssh, 'conf.d', 'b.conf'), 'Host *\n  Port 2202\n');
    writeFileSync(join(ssh, 'conf.d', 'a.conf'), 'Host *\n  Port 2201\n');
    writeFileSync(join(ssh, 'conf.d', '.hidden.conf'), 'Host *\n  Port 2200\n');
    writeFileSync(join(ssh, 'web-only'), 'User from-include\nHost other\n  IdentitiesOnly yes\n');
    writeFileSync(join(ssh, 'config'), [
      'Host web',
      '  Include web-only',
      '  HostName web.example.org',
      'Match host *.example.org !user root',
      '  ProxyJump bastion.example.org:2222',
      'Match exec "true"',
      '  User never',
      'Match all',
      '  Include conf.d/*.conf',
    ].join('\n'));
    const system = join(home, 'ssh_config');
    writeFileSync(system, 'Host *\n  IdentityFile ~/.ssh/system_key\n  User system\n');
    const config = await readSshConfig({ user: join(ssh, 'config'), system }, home);
    const web = resolveSshHost(config, 'web', { home, localUser: 'ada' });
    assert.deepEqual(web, {
      user: 'from-include', hostName: 'web.example.org', proxyJump: 'bastion.example.org:2222', port: 2201,
      identityFiles: [join(ssh, 'system_key')],
    }, 'the include inside "Host web" applies to web, in place (its "Host other" block does not); "Match host" sees the HostName; globbed files in order');
    const other = resolveSshHost(config, 'other', { home, localUser: 'ada' });
    assert.equal(other.user, 'system', 'the include inside "Host web" does not apply to other hosts; the system file comes last');
    assert.equal(other.proxyJump, undefined);
    assert.equal(other.port, 2201);
    const asRoot = resolveSshHost(config, 'web', { home, localUser: 'ada', user: 'root' });
    assert.equal(asRoot.proxyJump, undefined, '"!user root" rules the block out for the user given on the command line');
    assert.deepEqual(await expandGlob(join(ssh, 'conf.d', '*.conf')), [join(ssh, 'conf.d', 'a.conf'), join(ssh, 'conf.d', 'b.conf')]);
    assert.deepEqual(await expandGlob(join(ssh, 'nothing-*')), []);
    assert.deepEqual(await readSshConfig({ user: join(home, 'none'), system: join(home, 'none') }, home), [], 'no files, no settings');

    // An Include that includes itself stops at 16 levels instead of hanging.
    writeFileSync(join(ssh, 'loop'), 'Include loop\nPort 1\n');
    const looped = await parseSshConfig('Include loop', { home, base: ssh, read: expandGlob });
    assert.equal(resolveSshHost(looped, 'h', { home, localUser: 'a' }).port, 1);
  });

  it('applies "Match final" blocks, and late "Match host" ones, on a second pass as ssh does', async () => {
    const blocks = await parseSshConfig([
      'Match host *.internal final',
      '  ProxyJump gw.example.org',
      'Match !final',
      '  Port 2022',
      'Host db',
      '  HostName db.internal',
      'Match final',
      '  User final-user',
      '  Port 3033',
    ].join('\n'));
    assert.deepEqual(resolveSshHost(blocks, 'db', { home: '/h', localUser: 'a' }), {
      port: 2022, hostName: 'db.internal', user: 'final-user', proxyJump: 'gw.example.org', identityFiles: [],
    });
    const plain = await parseSshConfig('Match final\n  User late\nHost *\n  User early\n');
    assert.equal(resolveSshHost(plain, 'x', { home: '/h', localUser: 'a' }).user, 'early', 'the first pass comes first');
  });

  it('parses jump hosts as ssh -J does', () => {
    assert.deepEqual(parseJumpHosts('ada@bastion:2222,ssh://[::1]:22,gw', '-J'), [
      { host: 'bastion', user: 'ada', port: 2222 }, { host: '::1', port: 22 }, { host: 'gw' },
    ]);
    assert.throws(() => parseJumpHosts('gw:port', '-J'), /bad port "port" in -J/);
    assert.throws(() => parseJumpHosts('a b', '-J'), /bad jump host "a b" in -J/);
    assert.throws(() => parseJumpHosts('gw,', '-J'), /bad jump host "" in -J/);
  });

  it('reads known_hosts: [host]:port, patterns, hashed names, @revoked, comments', () => {
    const text = [
      '# comment',
      '[10.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh',
      '*.example.org,!evil.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJi',
      '@revoked * ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAAQC7',
    ].join('\n');
    assert.equal(keysFor(text, '[10.0.0.1]:2222', 'f').length, 2, 'the entry and the @revoked wildcard');
    assert.equal(keysFor(text, '10.0.0.1', 'f').filter((k) => !k.revoked).length, 0);
    assert.equal(keysFor(text, 'www.example.org', 'f').filter((k) => !k.revoked).length, 1);
    assert.equal(keysFor(text, 'evil.example.org', 'f').filter((k) => !k.revoked).length, 0);
  });
});
