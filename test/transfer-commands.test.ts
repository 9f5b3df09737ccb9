import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PASSWORD_USER } from './support/sshd.js';
import { startTcpProxy } from './support/tcp-proxy.js';
import {
  expectExitCode, assertOneLineError, FerryUser, folder, jsonLines, randomFile, sha256, startWorld, tree, type World,
} from './support/transfer-world.js';

describe('ferry put, get, ls, mkdir, rm, mv against a real sshd', function () {
  this.timeout(60_000);
  let world: World;
  let user: FerryUser;
  before(async () => {
    world = await startWorld({ password: true });
    user = await FerryUser.create(world);
  });
  after(() => world?.close());

  it('uploads a file byte for byte, keeps its modification time, and leaves no part file', async () => {
    const local = folder();
    const remote = folder();
    randomFile(join(local, 'a.bin'), 300_000);
    utimesSync(join(local, 'a.bin'), 1_600_000_000, 1_600_000_000);
    const run = await user.run(['put', join(local, 'a.bin'), user.url(`${remote}/`)]);
    expectExitCode(run, 0, 'put');
    assert.equal(sha256(join(remote, 'a.bin')), sha256(join(local, 'a.bin')));
    assert.equal(statSync(join(remote, 'a.bin')).mtimeMs, 1_600_000_000_000);
    assert.deepEqual(readdirSync(remote), ['a.bin']);
    assert.equal(run.stdout, '', 'quiet when not on a terminal');
  });

  it('uploads to a new name, and several files (and a glob) into a folder', async () => {
    const local = folder();
    const remote = folder();
    for (const name of ['x.txt', 'y.txt', 'z.log']) writeFileSync(join(local, name), name);
    expectExitCode(await user.run(['put', join(local, 'x.txt'), user.url(`${remote}/renamed.txt`)]), 0, 'put to a name');
    assert.equal(readFileSync(join(remote, 'renamed.txt'), 'utf8'), 'x.txt');
    expectExitCode(await user.run(['put', join(local, '*.txt'), join(local, 'z.log'), user.url(`${remote}/many/`)]), 0, 'put a glob into a new folder');
    assert.deepEqual(readdirSync(join(remote, 'many')).sort(), ['x.txt', 'y.txt', 'z.log']);
  });

  it('put -r copies a folder into the destination, and dir/ copies its contents', async () => {
    const local = folder();
    const remote = folder();
    mkdirSync(join(local, 'tree', 'sub', 'deeper'), { recursive: true });
    writeFileSync(join(local, 'tree', 'top.txt'), 'top');
    randomFile(join(local, 'tree', 'sub', 'mid.bin'), 70_000);
    writeFileSync(join(local, 'tree', 'sub', 'deeper', 'empty.txt'), '');
    expectExitCode(await user.run(['put', '-r', join(local, 'tree'), user.url(`${remote}/`)]), 0, 'put -r tree');
    assert.deepEqual(tree(join(remote, 'tree')), tree(join(local, 'tree')));
    mkdirSync(join(remote, 'contents'));
    expectExitCode(await user.run(['put', '-r', `${join(local, 'tree')}/`, user.url(`${remote}/contents/`)]), 0, 'put -r tree/');
    assert.deepEqual(tree(join(remote, 'contents')), tree(join(local, 'tree')));
    const refused = await user.run(['put', join(local, 'tree'), user.url(`${remote}/`)]);
    expectExitCode(refused, 2, 'a folder without -r');
    assertOneLineError(refused, /is a folder: use -r/);
  });

  it('put -r of files of every small size, 64 at once: each arrives byte for byte (the read buffers are shared)', async () => {
    const local = folder();
    const remote = folder();
    // Around each size class of the shared buffers (32 KiB doubling to the 256 KiB read whole),
    // and above it; a buffer given back by a larger file serves smaller ones after it.
    const sizes = [0, 1, 100, 32_767, 32_768, 32_769, 65_536, 65_537, 131_071, 262_143, 262_144, 262_145, 300_000];
    for (let i = 0; i < 150; i++) sizes.push(Math.floor(Math.random() * 270_000));
    mkdirSync(join(local, 'sizes'));
    sizes.forEach((size, i) => randomFile(join(local, 'sizes', `f${i}.bin`), size));
    expectExitCode(await user.run(['put', '-r', '--parallel', '64', join(local, 'sizes'), user.url(`${remote}/`)]), 0, 'put -r sizes');
    assert.deepEqual(tree(join(remote, 'sizes')), tree(join(local, 'sizes')));
  });

  it('downloads files, globs and folders', async () => {
    const remote = folder();
    const local = folder();
    randomFile(join(remote, 'big.bin'), 1_000_000);
    utimesSync(join(remote, 'big.bin'), 1_500_000_000, 1_500_000_000);
    writeFileSync(join(remote, 'a.log'), 'a');
    writeFileSync(join(remote, 'b.log'), 'b');
    mkdirSync(join(remote, 'dir', 'sub'), { recursive: true });
    writeFileSync(join(remote, 'dir', 'sub', 'f.txt'), 'f');
    expectExitCode(await user.run(['get', user.url(`${remote}/big.bin`), local]), 0, 'get one file');
    assert.equal(sha256(join(local, 'big.bin')), sha256(join(remote, 'big.bin')));
    assert.equal(statSync(join(local, 'big.bin')).mtimeMs, 1_500_000_000_000);
    expectExitCode(await user.run(['get', user.url(`${remote}/*.log`), `${local}/logs/`]), 0, 'get a glob');
    assert.deepEqual(readdirSync(join(local, 'logs')).sort(), ['a.log', 'b.log']);
    expectExitCode(await user.run(['get', '-r', user.url(`${remote}/dir`), local]), 0, 'get -r');
    assert.equal(readFileSync(join(local, 'dir', 'sub', 'f.txt'), 'utf8'), 'f');
    assert.ok(!readdirSync(local).some((n) => n.endsWith('.ferry-part')));
  });

  it('downloads a tree whose big files each outlast the reused receive buffers many times over, byte for byte, over one connection or three', async () => {
    // A direct connection reads into a 4 MiB ring that comes round every 4 MiB received; the
    // handles of files still being read, and of folders still being listed, must not live in it.
    const remote = folder();
    const local = folder();
    for (let i = 0; i < 4; i++) randomFile(join(remote, `big-${i}.bin`), 9 * 1024 * 1024 + i * 4099);
    for (const sub of ['a', 'b', 'c']) {
      mkdirSync(join(remote, sub));
      for (let i = 0; i < 150; i++) randomFile(join(remote, sub, `small-${String(i).padStart(3, '0')}-with-a-longer-name.bin`), 1000 + i * 37);
    }
    const run = await user.run(['get', '-r', '--parallel', '8', user.url(`${remote}/`), `${local}/`]);
    expectExitCode(run, 0, 'get -r');
    assert.deepEqual(tree(local), tree(remote));
    // Over three connections, each with its own ring, and back up again.
    const again = folder();
    expectExitCode(await user.run(['get', '-r', '--connections', '3', user.url(`${remote}/`), `${again}/`]), 0, 'get -r --connections 3');
    assert.deepEqual(tree(again), tree(remote));
    const back = folder();
    expectExitCode(await user.run(['put', '-r', '--connections', '3', `${again}/`, user.url(`${back}/`)]), 0, 'put -r --connections 3');
    assert.deepEqual(tree(back), tree(remote));
  });

  it('lists a folder, plainly, long, recursively and as JSON', async () => {
    const remote = folder();
    writeFileSync(join(remote, 'one.txt'), '12345');
    mkdirSync(join(remote, 'sub'));
    writeFileSync(join(remote, 'sub', 'two.txt'), '');
    const plain = await user.run(['ls', user.url(remote)]);
    expectExitCode(plain, 0, 'ls');
    assert.equal(plain.stdout, 'one.txt\nsub/\n');
    const long = await user.run(['ls', '-l', user.url(remote)]);
    assert.match(long.stdout, /^-rw-r--r-- \S+ +\S+ +5 \d{4}-\d\d-\d\d \d\d:\d\d one\.txt$/m);
    const recursive = await user.run(['ls', '-r', user.url(remote)]);
    assert.equal(recursive.stdout, 'one.txt\nsub/\nsub/two.txt\n');
    const json = jsonLines(await user.run(['ls', '--json', user.url(remote)]));
    assert.deepEqual(json.map((e) => [e.name, e.type, e.size]), [['one.txt', 'file', 5], ['sub', 'dir', 4096]].map(([n, t, s]) => [n, t, t === 'dir' ? json[1]!.size : s]));
  });

  it('makes folders (-p for parents), removes files, globs and folders (-r), and moves', async () => {
    const remote = folder();
    expectExitCode(await user.run(['mkdir', user.url(`${remote}/new`)]), 0, 'mkdir');
    assert.ok(statSync(join(remote, 'new')).isDirectory());
    expectExitCode(await user.run(['mkdir', user.url(`${remote}/new`)]), 2, 'mkdir of an existing folder');
    expectExitCode(await user.run(['mkdir', user.url(`${remote}/a/b/c`)]), 24, 'mkdir without a parent');
    expectExitCode(await user.run(['mkdir', '-p', user.url(`${remote}/a/b/c`), user.url(`${remote}/new`)]), 0, 'mkdir -p');
    assert.ok(statSync(join(remote, 'a', 'b', 'c')).isDirectory());

    for (const name of ['1.tmp', '2.tmp', 'keep.txt']) writeFileSync(join(remote, name), name);
    expectExitCode(await user.run(['rm', user.url(`${remote}/*.tmp`)]), 0, 'rm a glob');
    assert.deepEqual(readdirSync(remote).sort(), ['a', 'keep.txt', 'new']);
    const refused = await user.run(['rm', user.url(`${remote}/a`)]);
    expectExitCode(refused, 2, 'rm of a folder without -r');
    expectExitCode(await user.run(['rm', '-r', user.url(`${remote}/a`)]), 0, 'rm -r');
    assert.ok(!existsSync(join(remote, 'a')));
    expectExitCode(await user.run(['rm', user.url(`${remote}/gone.txt`)]), 24, 'rm of nothing');

    expectExitCode(await user.run(['mv', user.url(`${remote}/keep.txt`), user.url(`${remote}/kept.txt`)]), 0, 'mv rename');
    assert.equal(readFileSync(join(remote, 'kept.txt'), 'utf8'), 'keep.txt');
    expectExitCode(await user.run(['mv', user.url(`${remote}/kept.txt`), `${remote}/new/`]), 0, 'mv into a folder (bare path)');
    assert.ok(existsSync(join(remote, 'new', 'kept.txt')));
  });

  it('resolves ~/.ssh/config aliases (HostName, Port, User, IdentityFile) and -i, -P', async () => {
    const alias = await FerryUser.create(world, { defaultKey: false });
    const { sshd } = world;
    writeFileSync(join(alias.home, '.ssh', 'config'), [
      'Host other', '  HostName 10.255.255.1', '',
      'Host box*', `  HostName ${sshd.host}`, `  Port ${sshd.port}`, `  User ${sshd.user}`, `  IdentityFile ${sshd.clientKey}`, '',
    ].join('\n'));
    const remote = folder();
    writeFileSync(join(remote, 'f.txt'), 'via alias');
    const viaAlias = await alias.run(['ls', `sftp://boxed${remote}`]);
    expectExitCode(viaAlias, 0, 'ls through an alias');
    assert.equal(viaAlias.stdout, 'f.txt\n');
    expectExitCode(await alias.run(['get', `boxed:${remote}/f.txt`, join(alias.home, 'f.txt')]), 0, 'scp-style alias:path');
    assert.equal(readFileSync(join(alias.home, 'f.txt'), 'utf8'), 'via alias');
    const flags = await alias.run(['ls', '-i', sshd.clientKey, '-P', String(sshd.port), `sftp://${sshd.user}@${sshd.host}${remote}`]);
    expectExitCode(flags, 0, 'ls with -i and -P');
  });

  it('goes through a jump host named by ProxyJump in an included ssh config file, or by -J', async () => {
    const traveller = await FerryUser.create(world, { defaultKey: false });
    const { sshd } = world;
    // The jump host is the same sshd behind a TCP proxy that counts what passes: the transfer
    // must pass through it, inside the jump host's connection.
    const proxy = await startTcpProxy(sshd.host, sshd.port);
    try {
      const ssh = join(traveller.home, '.ssh');
      mkdirSync(join(ssh, 'config.d'), { recursive: true });
      writeFileSync(join(ssh, 'config'), [
        'Include config.d/*.conf',
        'Host inside', `  HostName ${sshd.host}`, `  Port ${sshd.port}`, '  ProxyJump bastion', '',
        `Match originalhost inside,bastion,${sshd.host}`, `  User ${sshd.user}`, `  IdentityFile ${sshd.clientKey}`, '',
        'Match exec "touch /tmp/ferry-must-not-run"', '  User nobody', '',
        'Host viacommand', `  HostName ${sshd.host}`, '  ProxyCommand nc %h %p', '',
        'Host loop', '  ProxyJump loop', '',
      ].join('\n'));
      writeFileSync(join(ssh, 'config.d', 'bastion.conf'), ['Host bastion', `  HostName ${sshd.host}`, `  Port ${proxy.port}`, ''].join('\n'));
      const remote = folder();
      randomFile(join(remote, 'far.bin'), 400_000);

      const unknownJump = await traveller.run(['get', `inside:${remote}/far.bin`, join(traveller.home, 'far.bin')]);
      expectExitCode(unknownJump, 22, 'an unknown jump host key is refused like any other');
      assertOneLineError(unknownJump, new RegExp(`host key of \\[${sshd.host}\\]:${proxy.port} is not known`));

      const viaConfig = await traveller.run(['get', '--accept-new', `inside:${remote}/far.bin`, join(traveller.home, 'far.bin')]);
      expectExitCode(viaConfig, 0, 'get through the ProxyJump of the config');
      assert.equal(sha256(join(traveller.home, 'far.bin')), sha256(join(remote, 'far.bin')));
      assert.match(viaConfig.stderr, new RegExp(`added the host key of \\[${sshd.host}\\]:${proxy.port}`));
      assert.ok(proxy.bytesFromService > 400_000, `the file came through the jump host (${proxy.bytesFromService} bytes did)`);
      assert.ok(!existsSync('/tmp/ferry-must-not-run'), 'Match exec never runs a command');

      const before = proxy.connections;
      const viaFlag = await traveller.run(['ls', '-J', `${sshd.user}@${sshd.host}:${proxy.port}`, '-i', sshd.clientKey, `sftp://${sshd.user}@${sshd.host}:${sshd.port}${remote}`]);
      expectExitCode(viaFlag, 0, 'ls with -J');
      assert.equal(viaFlag.stdout, 'far.bin\n');
      assert.equal(proxy.connections, before + 1, '-J went through the jump host');

      const refused = await traveller.run(['ls', '-J', `${sshd.user}@${sshd.host}:${proxy.port}`, `sftp://${sshd.user}@${sshd.host}:1${remote}`]);
      expectExitCode(refused, 20, 'the jump host cannot reach the destination');
      assertOneLineError(refused, /jump host .* could not open a connection to .*:1/);
      expectExitCode(await traveller.run(['ls', '-J', 'a b', `sftp://${sshd.host}/`]), 2, 'a malformed -J');
      const viaCommand = await traveller.run(['ls', `viacommand:${remote}`]);
      expectExitCode(viaCommand, 2, 'a host reached through ProxyCommand is refused, not connected to directly');
      assertOneLineError(viaCommand, /through ProxyCommand, which ferry does not run: use ProxyJump/);
      const loop = await traveller.run(['ls', `loop:${remote}`]);
      expectExitCode(loop, 2, 'a ProxyJump that leads back to itself');
      assertOneLineError(loop, /more than 8 jump hosts on the way to loop/);

      // FERRY_PASSWORD is the destination's: a jump host that wants a password is not sent it.
      // (As "localhost", no block of the config gives the jump host a key.)
      const passwordJump = await traveller.run(['ls', '--accept-new', '-J', `${PASSWORD_USER}@localhost:${proxy.port}`, `sftp://${sshd.user}@${sshd.host}:${sshd.port}${remote}`], {
        env: { FERRY_PASSWORD: world.sshd.password! },
      });
      expectExitCode(passwordJump, 21, 'a jump host that wants a password, without a terminal');
      assertOneLineError(passwordJump, new RegExp(`jump host ${PASSWORD_USER}@.* refused the login \\(no key, agent or password to offer: .*FERRY_PASSWORD are the destination's; the server accepts `));
    } finally {
      await proxy.close();
    }
  });

  it('puts to a named site of the config file, into its folder', async () => {
    const remote = folder();
    const { sshd } = world;
    writeFileSync(join(user.ferryHome, 'config.json'), JSON.stringify({
      sites: { mysite: { host: sshd.host, port: sshd.port, user: sshd.user, folder: remote } },
    }));
    const local = folder();
    writeFileSync(join(local, 'f.txt'), 'site');
    mkdirSync(join(remote, 'in'));
    try {
      expectExitCode(await user.run(['put', join(local, 'f.txt'), `mysite:${remote}/in/`]), 0, 'put mysite:/abs/');
      expectExitCode(await user.run(['put', join(local, 'f.txt'), 'mysite:rel.txt']), 0, 'put mysite:relative');
      assert.equal(readFileSync(join(remote, 'in', 'f.txt'), 'utf8'), 'site');
      assert.equal(readFileSync(join(remote, 'rel.txt'), 'utf8'), 'site');
      const listed = await user.run(['ls', 'mysite:']);
      assert.match(listed.stdout, /^in\/$/m);
    } finally {
      rmSync(join(user.ferryHome, 'config.json'));
    }
  });

  it('takes sftp://host/~/path as relative to the login folder', async () => {
    const name = `ferry-home-test-${process.pid}-${Date.now()}.txt`;
    const local = folder();
    writeFileSync(join(local, 'f.txt'), 'home');
    const loginHome = process.env.HOME ?? '/root';
    try {
      expectExitCode(await user.run(['put', join(local, 'f.txt'), user.url(`/~/${name}`)]), 0, 'put to ~/');
      const listed = await user.run(['ls', user.url(`/~/${name}`)]);
      expectExitCode(listed, 0, 'ls ~/name');
      assert.equal(listed.stdout.trim(), name);
    } finally {
      await user.run(['rm', user.url(`/~/${name}`)]);
      rmSync(join(loginHome, name), { force: true });
    }
  });

  it('keeps permissions with --preserve only', async () => {
    const local = folder();
    const remote = folder();
    writeFileSync(join(local, 'script.sh'), '#!/bin/sh\n');
    chmodSync(join(local, 'script.sh'), 0o750);
    expectExitCode(await user.run(['put', join(local, 'script.sh'), user.url(`${remote}/plain.sh`)]), 0, 'put');
    expectExitCode(await user.run(['put', '--preserve', join(local, 'script.sh'), user.url(`${remote}/kept.sh`)]), 0, 'put --preserve');
    assert.equal(statSync(join(remote, 'kept.sh')).mode & 0o777, 0o750);
    assert.notEqual(statSync(join(remote, 'plain.sh')).mode & 0o777, 0o750);
  });

  it('logs in with a password from FERRY_PASSWORD, and says AUTH (21) for a wrong one', async () => {
    const remote = folder();
    chmodSync(remote, 0o777);
    const local = folder();
    writeFileSync(join(local, 'p.txt'), 'password');
    const url = `sftp://${PASSWORD_USER}@${world.sshd.host}:${world.sshd.port}${remote}/`;
    const noKey = await FerryUser.create(world, { defaultKey: false });
    const ok = await noKey.run(['put', join(local, 'p.txt'), url], { env: { FERRY_PASSWORD: world.sshd.password! } });
    expectExitCode(ok, 0, 'put with FERRY_PASSWORD');
    assert.equal(statSync(join(remote, 'p.txt')).uid, Number(readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${PASSWORD_USER}:`))!.split(':')[2]));
    const wrong = await noKey.run(['put', join(local, 'p.txt'), url], { env: { FERRY_PASSWORD: 'not-the-password' } });
    expectExitCode(wrong, 21, 'a wrong password');
    assertOneLineError(wrong, /refused the login/);
    const none = await noKey.run(['ls', url]);
    expectExitCode(none, 21, 'no key, no password, no terminal');
  });

  it('says PERMISSION (25) when the server refuses a write', async () => {
    const remote = folder();
    chmodSync(remote, 0o755);
    const local = folder();
    writeFileSync(join(local, 'p.txt'), 'x');
    const noKey = await FerryUser.create(world, { defaultKey: false });
    const run = await noKey.run(['put', join(local, 'p.txt'), `sftp://${PASSWORD_USER}@${world.sshd.host}:${world.sshd.port}${remote}/`], { env: { FERRY_PASSWORD: world.sshd.password! } });
    expectExitCode(run, 25, 'put into a folder of root');
    assertOneLineError(run, /permission denied/);
  });
});
