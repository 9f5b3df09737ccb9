import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startHostileSftp, type HostileSftp } from './support/hostile-sftp.js';
import { PROFTPD_PLAIN, REAL_SERVERS } from './support/sftp-servers.js';
import { startSshd } from './support/sshd.js';
import { startServer, type TestServer } from './support/server.js';
import { tempDir } from './support/temp.js';
import {
  expectExitCode, FerryUser, folder, jsonLines, randomFile, sha256, tree, type World,
} from './support/transfer-world.js';

/**
 * The same transfers against every SFTP server ferry is tested with: OpenSSH (internal-sftp),
 * ProFTPD's mod_sftp and the Green End SFTP server under sshd. The last two answer requests out
 * of order and offer none of OpenSSH's extensions: a pipelined client that assumes otherwise
 * loses files there (ProFTPD answered "Invalid handle" to a close sent behind writes in flight).
 */

const SERVERS = [...REAL_SERVERS.slice(0, 2), PROFTPD_PLAIN, ...REAL_SERVERS.slice(2)];

/** A tree of `count` files of up to 100 KiB in a few folders, sizes spread over the range. */
function smallTree(root: string, count: number): void {
  for (let i = 0; i < count; i++) {
    const dir = join(root, `d${i % 4}`);
    mkdirSync(dir, { recursive: true });
    randomFile(join(dir, `f${i}.bin`), Math.floor((i * 100 * 1024) / (count - 1)));
  }
}

function partFiles(root: string): string[] {
  return Object.keys(tree(root)).filter((path) => path.endsWith('.ferry-part'));
}

describe('ferry against every SFTP server it is tested with', function () {
  this.timeout(180_000);
  let license: TestServer;
  before(async () => {
    license = await startServer();
  });
  after(() => license?.close());

  for (const server of SERVERS) {
    describe(server.name, () => {
      let world: World;
      let user: FerryUser;
      before(async () => {
        const sshd = await server.start();
        world = { license, sshd, close: () => sshd.stop() };
        user = await FerryUser.create(world);
      });
      after(() => world?.close());

      it('puts and gets a large file byte for byte, dated, with no part file left', async () => {
        const local = folder();
        const remote = folder();
        randomFile(join(local, 'big.bin'), 8 * 1024 * 1024);
        utimesSync(join(local, 'big.bin'), 1_600_000_000, 1_600_000_000);
        expectExitCode(await user.run(['put', join(local, 'big.bin'), user.url(`${remote}/`)]), 0, 'put');
        assert.equal(sha256(join(remote, 'big.bin')), sha256(join(local, 'big.bin')));
        assert.deepEqual(readdirSync(remote), ['big.bin']);
        const back = folder();
        expectExitCode(await user.run(['get', user.url(`${remote}/big.bin`), `${back}/`]), 0, 'get');
        assert.equal(sha256(join(back, 'big.bin')), sha256(join(local, 'big.bin')));
        assert.deepEqual(readdirSync(back), ['big.bin']);
      });

      it('puts and gets a tree of 52 small files (up to 100 KiB) byte for byte, with no part file left', async () => {
        const local = folder();
        const remote = folder();
        smallTree(join(local, 'tree'), 52);
        const put = await user.run(['put', '-r', join(local, 'tree'), user.url(`${remote}/`)]);
        expectExitCode(put, 0, 'put -r');
        assert.deepEqual(tree(join(remote, 'tree')), tree(join(local, 'tree')));
        assert.deepEqual(partFiles(remote), []);
        const back = folder();
        expectExitCode(await user.run(['get', '-r', user.url(`${remote}/tree`), `${back}/`]), 0, 'get -r');
        assert.deepEqual(tree(join(back, 'tree')), tree(join(local, 'tree')));
        assert.deepEqual(partFiles(back), []);
      });

      it('puts and gets a single 85 KB file', async () => {
        const local = folder();
        const remote = folder();
        randomFile(join(local, 'one.bin'), 85_000);
        expectExitCode(await user.run(['put', join(local, 'one.bin'), user.url(`${remote}/`)]), 0, 'put');
        assert.equal(sha256(join(remote, 'one.bin')), sha256(join(local, 'one.bin')));
        const back = folder();
        expectExitCode(await user.run(['get', user.url(`${remote}/one.bin`), `${back}/`]), 0, 'get');
        assert.equal(sha256(join(back, 'one.bin')), sha256(join(local, 'one.bin')));
      });

      it('replaces an existing file on upload, keeping nothing else', async () => {
        const local = folder();
        const remote = folder();
        writeFileSync(join(remote, 'same.txt'), 'old contents');
        writeFileSync(join(local, 'same.txt'), 'new contents, longer than before');
        expectExitCode(await user.run(['put', join(local, 'same.txt'), user.url(`${remote}/`)]), 0, 'put over a file');
        assert.equal(readFileSync(join(remote, 'same.txt'), 'utf8'), 'new contents, longer than before');
        assert.deepEqual(readdirSync(remote), ['same.txt']);
      });

      it('lists long and as JSON, makes folders with -p, moves, and removes with -r', async () => {
        const remote = folder();
        writeFileSync(join(remote, 'one.txt'), '12345');
        const long = await user.run(['ls', '-l', user.url(remote)]);
        expectExitCode(long, 0, 'ls -l');
        assert.match(long.stdout, /^-rw-r--r-- \S+ +\S+ +5 \d{4}-\d\d-\d\d \d\d:\d\d one\.txt$/m);
        expectExitCode(await user.run(['mkdir', '-p', user.url(`${remote}/a/b/c`)]), 0, 'mkdir -p');
        expectExitCode(await user.run(['mkdir', '-p', user.url(`${remote}/a/b/c`)]), 0, 'mkdir -p again');
        writeFileSync(join(remote, 'a', 'b', 'c', 'deep.txt'), 'deep');
        const json = jsonLines(await user.run(['ls', '--json', user.url(remote)]));
        assert.deepEqual(json.map((e) => [e.name, e.type]), [['a', 'dir'], ['one.txt', 'file']]);
        expectExitCode(await user.run(['mv', user.url(`${remote}/one.txt`), user.url(`${remote}/two.txt`)]), 0, 'mv');
        assert.equal(readFileSync(join(remote, 'two.txt'), 'utf8'), '12345');
        assert.ok(!existsSync(join(remote, 'one.txt')));
        expectExitCode(await user.run(['rm', '-r', user.url(`${remote}/a`)]), 0, 'rm -r');
        assert.deepEqual(readdirSync(remote), ['two.txt']);
      });

      it('continues part files left by an interrupted run with --resume, both ways', async () => {
        const local = folder();
        const remote = folder();
        const data = randomFile(join(local, 'half.bin'), 2 * 1024 * 1024 + 11);
        // What an interrupted upload leaves: the first part under the part file's name.
        writeFileSync(join(remote, '.half.bin.ferry-part'), data.subarray(0, 1024 * 1024));
        const up = await user.run(['put', '--resume', '--json', join(local, 'half.bin'), user.url(`${remote}/`)]);
        expectExitCode(up, 0, 'put --resume');
        assert.equal(jsonLines(up).find((e) => e.event === 'resumed')?.from, 1024 * 1024, up.stdout);
        assert.equal(sha256(join(remote, 'half.bin')), sha256(join(local, 'half.bin')));
        assert.deepEqual(readdirSync(remote), ['half.bin']);
        const back = folder();
        writeFileSync(join(back, '.half.bin.ferry-part'), data.subarray(0, 700_000));
        const down = await user.run(['get', '--resume', '--json', user.url(`${remote}/half.bin`), `${back}/`]);
        expectExitCode(down, 0, 'get --resume');
        assert.equal(jsonLines(down).find((e) => e.event === 'resumed')?.from, 700_000, down.stdout);
        assert.equal(sha256(join(back, 'half.bin')), sha256(join(local, 'half.bin')));
        assert.deepEqual(readdirSync(back), ['half.bin']);
      });

      it('syncs both ways, and a second sync moves nothing', async () => {
        const local = folder();
        const remote = folder();
        smallTree(local, 12);
        expectExitCode(await user.run(['sync', local, user.url(remote)]), 0, 'sync up');
        assert.deepEqual(tree(remote), tree(local));
        const again = await user.run(['sync', '--json', local, user.url(remote)]);
        expectExitCode(again, 0, 'sync up again');
        assert.equal(jsonLines(again).filter((e) => e.event === 'done').length, 0, again.stdout);
        writeFileSync(join(remote, 'd1', 'added.txt'), 'from the server');
        const down = folder();
        expectExitCode(await user.run(['sync', user.url(remote), down]), 0, 'sync down');
        assert.deepEqual(tree(down), tree(remote));
      });
    });
  }

  describe('a server that carries out reads and writes after the requests behind them', () => {
    let world: World;
    let user: FerryUser;
    let hostile: HostileSftp;
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 12; i++) files[`/data/f${i}.bin`] = randomBytes(i * 9_000 + 1);
    files['/data/big.bin'] = randomBytes(3 * 1024 * 1024 + 7);
    before(async () => {
      const sshd = await startSshd({ dir: tempDir('ferry-sshd-') });
      world = { license, sshd, close: () => sshd.stop() };
      user = await FerryUser.create(world);
      hostile = await startHostileSftp({ files: { ...files, '/up/': '', '/keep/same.txt': 'old contents' }, reorderData: true });
      appendFileSync(join(user.home, '.ssh', 'known_hosts'), `${hostile.knownHostsLine()}\n`);
    });
    after(async () => {
      await hostile?.close();
      await world?.close();
    });

    it('get -r and put -r: no close overtakes a read or write, every file arrives whole, dated, no part file left', async () => {
      const local = folder();
      const got = await user.run(['get', '-r', '--retries', '0', hostile.url('/data'), `${local}/`]);
      expectExitCode(got, 0, 'get -r');
      for (const [path, data] of Object.entries(files)) assert.ok(readFileSync(join(local, path)).equals(data), path);
      assert.deepEqual(partFiles(local), []);
      utimesSync(join(local, 'data', 'f3.bin'), 1_600_000_000, 1_600_000_000);
      const put = await user.run(['put', '-r', '--retries', '0', join(local, 'data'), hostile.url('/up/')]);
      expectExitCode(put, 0, 'put -r');
      for (const [path, data] of Object.entries(files)) assert.ok(hostile.file(`/up${path}`)?.equals(data), path);
      assert.deepEqual(hostile.paths().filter((p) => p.endsWith('.ferry-part')), []);
      const long = await user.run(['ls', '-l', hostile.url('/up/data')]);
      assert.match(long.stdout, /^-\S+ \S+ +\S+ +27001 2020-09-1\d \d\d:\d\d f3\.bin$/m, 'the times set after the last write');
    });

    it('replaces a file without posix-rename, and keeps the old one when the new one cannot take its place', async () => {
      const local = folder();
      writeFileSync(join(local, 'same.txt'), 'second contents');
      expectExitCode(await user.run(['put', join(local, 'same.txt'), hostile.url('/keep/')]), 0, 'put over a file');
      assert.equal(hostile.file('/keep/same.txt')?.toString(), 'second contents');
      writeFileSync(join(local, 'same.txt'), 'third contents');
      hostile.set({ refuseRenamesOf: '.ferry-part' });
      try {
        const refused = await user.run(['put', '--retries', '0', join(local, 'same.txt'), hostile.url('/keep/')]);
        assert.notEqual(refused.code, 0, refused.stderr);
        assert.match(refused.stderr, /^ferry: .*same\.txt/m);
      } finally {
        hostile.set({ refuseRenamesOf: undefined });
      }
      assert.equal(hostile.file('/keep/same.txt')?.toString(), 'second contents', 'the old file is still there');
      assert.deepEqual(hostile.paths().filter((p) => p.startsWith('/keep/') && p !== '/keep/' && p !== '/keep/same.txt' && !p.endsWith('.ferry-part')), []);
    });

    it('a server that refuses a second open: fewer files at once for the rest of the run, said once, and every file arrives', async () => {
      const local = folder();
      hostile.set({ maxOpenHandles: 1 });
      try {
        const got = await user.run(['get', '-r', '--json', '--parallel', '8', '--retries', '0', hostile.url('/data'), `${local}/`]);
        expectExitCode(got, 0, 'get -r');
        const fewer = jsonLines(got).filter((e) => e.event === 'fewer');
        assert.equal(fewer.length, 1, got.stdout);
        assert.ok(fewer[0]!.parallel < 8);
        assert.equal(got.stderr.match(/refused to open more files at once \(too many open files\)/g)?.length, 1, got.stderr);
        for (const [path, data] of Object.entries(files)) assert.ok(readFileSync(join(local, path)).equals(data), path);
        const put = await user.run(['put', '-r', '--parallel', '8', '--retries', '0', join(local, 'data'), hostile.url('/up/again/')]);
        expectExitCode(put, 0, 'put -r');
        assert.match(put.stderr, /^ferry: the server refused to open more files at once \(too many open files\): moving \d+ at a time from now on$/m);
        for (const [path, data] of Object.entries(files)) assert.ok(hostile.file(`/up/again${path}`)?.equals(data), path);
      } finally {
        hostile.set({ maxOpenHandles: undefined });
      }
    });
  });
});
