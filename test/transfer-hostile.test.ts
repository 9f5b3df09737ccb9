import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { joinBelow, nameProblem, quoteName } from '../agent/transfer/names.js';
import { printable } from '../agent/terminal-text.js';
import { startHostileSftp, type HostileSftp } from './support/hostile-sftp.js';
import { REAL_SERVERS } from './support/sftp-servers.js';
import { assertOneLineError, expectExitCode, FerryUser, folder, jsonLines, randomFile, sha256, startWorld, startWorldOn, tree, type World } from './support/transfer-world.js';

/**
 * Servers that lie or stop, and destinations with links in them: what ferry writes stays inside
 * the destination, whatever a server lists, and a server that stops answering ends the command
 * with CONNECTION instead of hanging it.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
/** Names a hostile server lists in /data, beside its real files (`.` and `..` are listed anyway). */
const CRAFTED = ['../escape.txt', '../../..', 'a/b', 'nul\0byte', ''];

/** Every path under `root`, links shown as links (not followed), with contents. */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const st = lstatSync(path);
      if (st.isSymbolicLink()) out[path] = 'link';
      else if (st.isDirectory()) {
        out[`${path}/`] = 'dir';
        visit(path);
      } else out[path] = readFileSync(path, 'utf8');
    }
  };
  visit(root);
  return out;
}

/** The stderr lines that refuse a crafted name, each showing the name escaped. */
function assertRefusedNames(stderr: string): void {
  for (const shown of ['"../escape.txt"', '"../../.."', '"a/b"', '"nul\\x00byte"', '""']) {
    assert.ok(stderr.includes(`the server listed ${shown}, which is not a plain file name`), `${shown} refused in: ${stderr}`);
  }
  assert.ok(!stderr.includes('\0'), 'no raw NUL reaches the terminal');
}

describe('names from a server', () => {
  it('takes only plain path segments', () => {
    for (const name of ['a.txt', '.hidden', '...', 'a b', 'ü', 'x\\y']) assert.equal(nameProblem(name), null, name);
    for (const name of ['', '.', '..', '../x', 'a/b', '/', 'a\0b']) assert.notEqual(nameProblem(name), null, JSON.stringify(name));
  });

  it('shows a refused name with every control character escaped, C1 ones (a terminal\'s CSI) included', () => {
    assert.equal(printable(quoteName('a\u001b[2Jb\u009b31m\n')), '"a\\x1b[2Jb\\x9b31m\\n"');
  });

  it('never joins a relative path that climbs out of its root', () => {
    assert.equal(joinBelow(join, '/dest', 'a/b.txt'), '/dest/a/b.txt');
    for (const relative of ['../x', 'a/../../x', '', 'a//b']) assert.throws(() => joinBelow(join, '/dest', relative), /would lead out of the folder/);
  });
});

describe('a hostile server and the destination', function () {
  this.timeout(120_000);
  let world: World;
  let user: FerryUser;
  let hostile: HostileSftp;
  before(async () => {
    world = await startWorld();
    user = await FerryUser.create(world);
    hostile = await startHostileSftp({
      files: { '/data/a.txt': 'alpha', '/data/sub/b.txt': 'bravo', '/escape.txt': 'ESCAPED', '/target/keep.txt': 'keep' },
      craftedNames: { '/data': CRAFTED, '/target': CRAFTED },
    });
    appendFileSync(join(user.home, '.ssh', 'known_hosts'), `${hostile.knownHostsLine()}\n`);
  });
  after(async () => {
    await hostile?.close();
    await world?.close();
  });

  describe('names that are not plain file names', () => {
    it('get -r refuses each crafted name with its own error, copies the rest, and writes nothing outside the destination (PARTIAL, 23)', async () => {
      const outer = folder();
      const dest = join(outer, 'dest');
      const run = await user.run(['get', '-r', hostile.url('/data/'), `${dest}/`]);
      expectExitCode(run, 23, 'get -r from a server listing crafted names');
      assert.deepEqual(snapshot(outer), {
        [`${dest}/`]: 'dir', [join(dest, 'a.txt')]: 'alpha', [`${join(dest, 'sub')}/`]: 'dir', [join(dest, 'sub', 'b.txt')]: 'bravo',
      });
      assertRefusedNames(run.stderr);
      assertOneLineError(run, /5 of 7 files failed/);
    });

    it('sync down refuses them the same way, with and without --delete, and touches nothing beside the folder', async () => {
      const outer = folder();
      const dest = join(outer, 'dest');
      writeFileSync(join(outer, 'escape.txt'), 'mine');
      for (const extra of [[], ['--delete']]) {
        const run = await user.run(['sync', ...extra, hostile.url('/data'), dest]);
        expectExitCode(run, 23, `sync ${extra.join(' ')}`);
        assertRefusedNames(run.stderr);
        assert.deepEqual(snapshot(outer), {
          [`${dest}/`]: 'dir', [join(dest, 'a.txt')]: 'alpha', [`${join(dest, 'sub')}/`]: 'dir', [join(dest, 'sub', 'b.txt')]: 'bravo',
          [join(outer, 'escape.txt')]: 'mine',
        });
      }
    });

    it('ls -r shows the real entries, refuses the crafted ones on stderr, and ends (PARTIAL, 23)', async () => {
      const run = await user.run(['ls', '-r', hostile.url('/data')], { killAfterMs: 60_000 });
      expectExitCode(run, 23, 'ls -r');
      assert.deepEqual(run.stdout.split('\n').filter((l) => l !== ''), ['a.txt', 'sub/', 'sub/b.txt']);
      assertRefusedNames(run.stderr);
      assertOneLineError(run, /listed 5 names that are not plain file names/);
    });

    it('sync up with --delete never deletes or writes above the remote folder, whatever its listing says', async () => {
      const local = folder();
      writeFileSync(join(local, 'new.txt'), 'new');
      const before = hostile.paths().filter((p) => !p.startsWith('/target/'));
      const run = await user.run(['sync', '--delete', local, hostile.url('/target')]);
      expectExitCode(run, 23, 'sync up --delete');
      assertRefusedNames(run.stderr);
      assert.deepEqual(hostile.paths().filter((p) => !p.startsWith('/target/')), before);
      assert.equal(hostile.file('/escape.txt')?.toString(), 'ESCAPED');
      assert.equal(hostile.file('/target/new.txt')?.toString(), 'new');
      assert.equal(hostile.file('/target/keep.txt'), undefined, 'the real extra file was deleted');
    });
  });
});

describe('a server that stops answering', function () {
  this.timeout(120_000);
  let world: World;
  let user: FerryUser;
  let hostile: HostileSftp;
  const content = randomBytes(1 * MiB + 123);
  before(async () => {
    world = await startWorld();
    user = await FerryUser.create(world);
    hostile = await startHostileSftp({ files: { '/data/big.bin': content, '/up/': '' } });
    appendFileSync(join(user.home, '.ssh', 'known_hosts'), `${hostile.knownHostsLine()}\n`);
  });
  after(async () => {
    await hostile?.close();
    await world?.close();
  });

  it('get: a server that keeps the connection but answers no read ends with CONNECTION (20) after the retries, saying so', async () => {
    hostile.set({ stall: { onlyData: true } });
    const local = folder();
    const connectionsBefore = hostile.connections;
    const run = await user.run(['get', '--timeout', '2', '--retries', '1', hostile.url('/data/big.bin'), `${local}/`], { killAfterMs: 90_000 });
    expectExitCode(run, 20, 'get from a stalled server');
    assertOneLineError(run, /^ferry: big\.bin: ferry@127\.0\.0\.1:\d+ stopped answering: no reply to an SFTP request in 2 s, also after 1 retry$/);
    assert.equal(hostile.connections - connectionsBefore, 2, 'connected again for the retry');
    assert.ok(!existsSync(join(local, 'big.bin')));
  });

  it('put: the same with FERRY_TIMEOUT, and with "transfers.timeout" in config.json', async () => {
    hostile.set({ stall: { onlyData: true } });
    const local = folder();
    randomFile(join(local, 'up.bin'), 1 * MiB);
    const byEnv = await user.run(['put', '--retries', '1', join(local, 'up.bin'), hostile.url('/up/')], { env: { FERRY_TIMEOUT: '2' }, killAfterMs: 90_000 });
    expectExitCode(byEnv, 20, 'put to a stalled server (FERRY_TIMEOUT)');
    assertOneLineError(byEnv, /up\.bin: .* stopped answering: no reply to an SFTP request in 2 s, also after 1 retry$/);

    const configured = await FerryUser.create(world);
    appendFileSync(join(configured.home, '.ssh', 'known_hosts'), `${hostile.knownHostsLine()}\n`);
    writeFileSync(join(configured.ferryHome, 'config.json'), JSON.stringify({ transfers: { timeout: 2, retries: 0 } }));
    const byConfig = await configured.run(['put', join(local, 'up.bin'), hostile.url('/up/')], { killAfterMs: 90_000 });
    expectExitCode(byConfig, 20, 'put to a stalled server (config.json)');
    assertOneLineError(byConfig, /stopped answering: no reply to an SFTP request in 2 s$/);
    assert.equal(hostile.file('/up/up.bin'), undefined, 'nothing under the final name');
  });

  it('a server that stalls once and then answers: get and put retry on a new connection and end byte-identical', async () => {
    const local = folder();
    // The first connection answers 8 reads (256 KiB), then none; the next ones behave.
    hostile.set({ stall: { onlyData: true, afterRequests: 8, connections: hostile.connections + 1 } });
    const got = await user.run(['get', '--json', '--timeout', '2', hostile.url('/data/big.bin'), `${local}/`], { killAfterMs: 90_000 });
    expectExitCode(got, 0, 'get across a stall');
    const retry = jsonLines(got).find((e) => e.event === 'retry');
    assert.match(String(retry?.reason), /stopped answering/, got.stdout);
    assert.ok(jsonLines(got).some((e) => e.event === 'resumed' && e.from > 0), `continued from what it had: ${got.stdout}`);
    assert.equal(sha256(join(local, 'big.bin')), sha256Of(content));

    hostile.set({ stall: { onlyData: true, afterRequests: 8, connections: hostile.connections + 1 } });
    const put = await user.run(['put', '--json', '--timeout', '2', join(local, 'big.bin'), hostile.url('/up/again.bin')], { killAfterMs: 90_000 });
    expectExitCode(put, 0, 'put across a stall');
    assert.ok(jsonLines(put).some((e) => e.event === 'retry'), put.stdout);
    assert.ok(hostile.file('/up/again.bin')?.equals(content), 'uploaded byte for byte');
    hostile.set({ stall: undefined });
  });

  it('a server that answers no request at all: ls and get end with CONNECTION (20), saying so', async () => {
    hostile.set({ stall: { afterRequests: 0 } });
    for (const args of [['ls', hostile.url('/data')], ['get', hostile.url('/data/big.bin'), `${folder()}/`]]) {
      const run = await user.run([...args, '--timeout', '2'], { killAfterMs: 60_000 });
      expectExitCode(run, 20, `${args[0]} to a server that answers nothing`);
      assertOneLineError(run, /^ferry: ferry@127\.0\.0\.1:\d+ stopped answering: no reply to an SFTP request in 2 s$/);
    }
    hostile.set({ stall: undefined });
  });

  it('a server that never finishes the handshake: CONNECTION (20) after --timeout, not a hang', async () => {
    const sockets = new Set<Socket>();
    const silent: Server = createServer((socket) => sockets.add(socket)); // accepts, says nothing
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    try {
      const run = await user.run(['ls', '--timeout', '2', `sftp://ferry@127.0.0.1:${port}/`], { killAfterMs: 60_000 });
      expectExitCode(run, 20, 'ls to a silent server');
      assertOneLineError(run, /cannot connect to ferry@127\.0\.0\.1:\d+: no answer in 2 s/);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  it('refuses a bad --timeout with USAGE (2)', async () => {
    const run = await user.run(['ls', '--timeout', 'soon', hostile.url('/data')]);
    expectExitCode(run, 2, 'bad --timeout');
    assertOneLineError(run, /--timeout must be a whole number from 1 to 3600/);
  });
});

function sha256Of(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

describe('a hostile server\'s error messages', function () {
  this.timeout(120_000);
  let world: World;
  let user: FerryUser;
  let hostile: HostileSftp;
  // Retitles the window, clears the screen, and starts a forged line of ferry's own.
  const message = '\u001b]0;pwned\u0007\u001b[2J\nferry: all files copied';
  before(async () => {
    world = await startWorld();
    user = await FerryUser.create(world);
    hostile = await startHostileSftp({ files: { '/data/a.txt': 'alpha', '/data/b.txt': 'bravo' }, statusMessage: message });
    appendFileSync(join(user.home, '.ssh', 'known_hosts'), `${hostile.knownHostsLine()}\n`);
  });
  after(async () => {
    await hostile?.close();
    await world?.close();
  });

  it('shows the text of a failure STATUS escaped, on one line, so that it can neither drive the terminal nor forge a line', async () => {
    // Making a folder inside a file fails: the server's FAILURE carries its text.
    const run = await user.run(['mkdir', hostile.url('/data/a.txt/x')]);
    assert.notEqual(run.code, 0, 'mkdir failed');
    const line = run.stderr.trimEnd();
    assert.ok(!/[\u0000-\u0009\u000b-\u001f\u007f]/.test(run.stderr), `no raw control character: ${JSON.stringify(run.stderr)}`);
    assert.equal(line.split('\n').length, 1, `one line: ${JSON.stringify(run.stderr)}`);
    assert.ok(line.includes('\\x1b]0;pwned\\x07\\x1b[2J\\nferry: all files copied'), line);

  });
});

for (const server of REAL_SERVERS) {
  describe(`symbolic links in a local destination, and on the server (${server.name})`, function () {
    this.timeout(120_000);
    let world: World;
    let user: FerryUser;
    before(async () => {
      world = await startWorldOn(server);
      user = await FerryUser.create(world);
    });
    after(() => world?.close());

    /** A remote tree with sub/file.txt, and a local destination whose `sub` links to a folder outside. */
    function linkedDestination() {
      const remote = folder();
      mkdirSync(join(remote, 'sub'));
      writeFileSync(join(remote, 'sub', 'file.txt'), 'from the server');
      writeFileSync(join(remote, 'top.txt'), 'top');
      const outside = folder('ferry-outside-');
      writeFileSync(join(outside, 'file.txt'), 'precious');
      writeFileSync(join(outside, 'other.txt'), 'also precious');
      const dest = folder();
      symlinkSync(outside, join(dest, 'sub'));
      return { remote, outside, dest, outsideBefore: snapshot(outside) };
    }

    it('get -r refuses to write through a folder link: every file below it fails, the folder it points to is untouched', async () => {
      const { remote, outside, dest, outsideBefore } = linkedDestination();
      const run = await user.run(['get', '-r', user.url(`${remote}/`), `${dest}/`]);
      expectExitCode(run, 23, 'get -r into a destination with a link');
      assert.deepEqual(snapshot(outside), outsideBefore);
      assert.ok(lstatSync(join(dest, 'sub')).isSymbolicLink(), 'the link is left as it is');
      assert.equal(readFileSync(join(dest, 'top.txt'), 'utf8'), 'top');
      assert.match(run.stderr, new RegExp(`${join(dest, 'sub', 'file.txt')}: not written: ${join(dest, 'sub')} is a symbolic link in the destination`));
    });

    it('sync reports a folder link as a conflict, and with --delete replaces the link itself (as rsync does): the folder it points to is untouched', async () => {
      const { remote, outside, dest, outsideBefore } = linkedDestination();
      const run = await user.run(['sync', user.url(remote), dest]);
      expectExitCode(run, 23, 'sync into a destination with a link');
      assert.match(run.stderr, /sub is a folder in the source and a symbolic link in the destination \(use --delete to replace it\)/);
      assert.deepEqual(snapshot(outside), outsideBefore);

      const mirrored = await user.run(['sync', '--delete', user.url(remote), dest]);
      expectExitCode(mirrored, 0, 'sync --delete into a destination with a link');
      assert.deepEqual(snapshot(outside), outsideBefore, 'nothing deleted or written through the link');
      assert.ok(lstatSync(join(dest, 'sub')).isDirectory(), 'the link became a real folder');
      assert.deepEqual(tree(dest), tree(remote));
    });

    it('replaces a link in the place of a file instead of writing into what it points to (get, sync --delete)', async () => {
      const remote = folder();
      writeFileSync(join(remote, 'profile'), 'from the server');
      const outside = folder('ferry-outside-');
      writeFileSync(join(outside, '.bashrc'), 'my shell');
      const dest = folder();
      symlinkSync(join(outside, '.bashrc'), join(dest, 'profile'));
      expectExitCode(await user.run(['get', user.url(`${remote}/profile`), `${dest}/`]), 0, 'get over a file link');
      assert.equal(readFileSync(join(outside, '.bashrc'), 'utf8'), 'my shell');
      assert.ok(lstatSync(join(dest, 'profile')).isFile());
      assert.equal(readFileSync(join(dest, 'profile'), 'utf8'), 'from the server');

      symlinkSync(join(outside, '.bashrc'), join(dest, 'gone'));
      const run = await user.run(['sync', '--delete', user.url(remote), dest]);
      expectExitCode(run, 0, 'sync --delete with a link the source lacks');
      assert.ok(!existsSync(join(dest, 'gone')) && readFileSync(join(outside, '.bashrc'), 'utf8') === 'my shell', '--delete removed the link, not its target');
    });

    it('never writes through a part file planted as a link, fresh or with --resume, small or large', async () => {
      const remote = folder();
      const small = randomFile(join(remote, 'small.bin'), 10 * KiB);
      const large = randomFile(join(remote, 'large.bin'), 2 * MiB + 7);
      const victim = join(folder('ferry-outside-'), 'victim');
      writeFileSync(victim, 'do not touch');
      for (const resume of [[], ['--resume']]) {
        const dest = folder();
        for (const name of ['small.bin', 'large.bin']) symlinkSync(victim, join(dest, `.${name}.ferry-part`));
        const run = await user.run(['get', ...resume, user.url(`${remote}/small.bin`), user.url(`${remote}/large.bin`), `${dest}/`]);
        expectExitCode(run, 0, `get ${resume.join(' ')} with planted part-file links`);
        assert.equal(readFileSync(victim, 'utf8'), 'do not touch');
        assert.ok(readFileSync(join(dest, 'small.bin')).equals(small) && readFileSync(join(dest, 'large.bin')).equals(large));
        assert.deepEqual(readdirSync(dest).sort(), ['large.bin', 'small.bin']);
      }
    });
    it('get -r sends a link on the server as the file it points to, and leaves out a link to nowhere', async () => {
      const remote = folder();
      writeFileSync(join(remote, 'real.txt'), 'the real one');
      symlinkSync('real.txt', join(remote, 'linked.txt'));
      symlinkSync(join(remote, 'missing.txt'), join(remote, 'dangling.txt'));
      const dest = folder();
      const run = await user.run(['get', '-r', '--json', user.url(`${remote}/`), `${dest}/`]);
      expectExitCode(run, 0, 'get -r of a folder with links');
      assert.equal(readFileSync(join(dest, 'linked.txt'), 'utf8'), 'the real one');
      assert.ok(lstatSync(join(dest, 'linked.txt')).isFile(), 'a file, not a link');
      assert.equal(readFileSync(join(dest, 'real.txt'), 'utf8'), 'the real one');
      assert.ok(!existsSync(join(dest, 'dangling.txt')));
      assert.deepEqual(readdirSync(dest).sort(), ['linked.txt', 'real.txt'], 'no part file left');
      const done = jsonLines(run).filter((e) => e.event === 'done').map((e) => e.file).sort();
      assert.deepEqual(done, ['linked.txt', 'real.txt'], run.stdout);
    });
  });
}

describe('the license comes before any login', function () {
  this.timeout(60_000);
  let world: World;
  let hostile: HostileSftp;
  before(async () => {
    world = await startWorld();
    hostile = await startHostileSftp({ files: { '/data/a.txt': 'alpha', '/up/': '' } });
  });
  after(async () => {
    await hostile?.close();
    await world?.close();
  });

  it('without a license no command sends the server a login request, not even "none", and each ends with NO_LICENSE (10)', async () => {
    // The connection is made while the license is checked (its key exchange goes ahead), and the
    // host key judged and any credential sent only once the license is in force.
    const unlicensed = await FerryUser.create(world, { licensed: false });
    appendFileSync(join(unlicensed.home, '.ssh', 'known_hosts'), `${hostile.knownHostsLine()}\n`);
    const local = folder();
    writeFileSync(join(local, 'f'), 'f');
    for (const args of [['ls', hostile.url('/data')], ['put', join(local, 'f'), hostile.url('/up/')], ['get', hostile.url('/data/a.txt'), local]]) {
      const run = await unlicensed.run(args, { env: { FERRY_PASSWORD: 'secret' } });
      expectExitCode(run, 10, args[0]!);
      assertOneLineError(run, /ferry activate --trial/);
    }
    assert.deepEqual(hostile.authentications, []);
    assert.deepEqual(hostile.paths(), ['/', '/data/', '/data/a.txt', '/up/']);

    const licensed = await FerryUser.create(world);
    appendFileSync(join(licensed.home, '.ssh', 'known_hosts'), `${hostile.knownHostsLine()}\n`);
    const listed = await licensed.run(['ls', hostile.url('/data')]);
    expectExitCode(listed, 0, 'ls with a license');
    assert.equal(listed.stdout, 'a.txt\n');
    assert.ok((hostile.authentications as string[]).includes('publickey'), hostile.authentications.join(', '));
  });
});
