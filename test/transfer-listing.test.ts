import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, chownSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startHostileSftp } from './support/hostile-sftp.js';
import { startProftpd } from './support/proftpd.js';
import { startServer, type TestServer } from './support/server.js';
import { startSshd, type Sshd } from './support/sshd.js';
import { tempDir } from './support/temp.js';
import { expectExitCode, FerryUser, folder, jsonLines, type World } from './support/transfer-world.js';

/**
 * `ferry ls -l` and `-lh` as an ls user expects them: owner and group, human sizes, and help only
 * with --help. Each server writes the longname (the `ls -l` line of a listing) its own way, and
 * ferry takes the names from it only where it agrees with the attributes.
 */

const SERVERS: { name: string; start: () => Promise<Sshd> }[] = [
  { name: 'OpenSSH internal-sftp', start: () => startSshd({ dir: tempDir('ferry-sshd-') }) },
  { name: 'ProFTPD mod_sftp', start: () => startProftpd({ dir: tempDir('ferry-proftpd-') }) },
  { name: 'gesftpserver under sshd', start: () => startSshd({ dir: tempDir('ferry-sshd-'), subsystem: 'gesftpserver' }) },
];

/** A user and group other than the one running the tests, so that the names shown are the file's. */
const OTHER = { user: 'nobody', uid: Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' })) };
const OTHER_GROUP = execFileSync('id', ['-gn', 'nobody'], { encoding: 'utf8' }).trim();

/** A folder with a 1,536-byte file owned by nobody and a 3,000,000-byte one. */
function listedFolder(): string {
  const remote = folder();
  writeFileSync(join(remote, 'small.bin'), Buffer.alloc(1536, 1));
  chownSync(join(remote, 'small.bin'), OTHER.uid, OTHER.gid);
  writeFileSync(join(remote, 'big.bin'), Buffer.alloc(3_000_000, 2));
  mkdirSync(join(remote, 'sub'));
  for (const name of ['small.bin', 'big.bin']) utimesSync(join(remote, name), 1_600_000_000, 1_600_000_000);
  return remote;
}

describe('ferry ls -l and -lh', function () {
  this.timeout(120_000);
  let license: TestServer;
  before(async () => {
    license = await startServer();
  });
  after(() => license?.close());

  for (const server of SERVERS) {
    describe(server.name, () => {
      let world: World;
      let user: FerryUser;
      let me: { user: string; group: string };
      before(async () => {
        const sshd = await server.start();
        world = { license, sshd, close: () => sshd.stop() };
        user = await FerryUser.create(world);
        me = { user: sshd.user, group: execFileSync('id', ['-gn'], { encoding: 'utf8' }).trim() };
      });
      after(() => world?.close());

      it('ls -lh shows owner, group and human sizes (not the help)', async () => {
        const remote = listedFolder();
        const run = await user.run(['ls', '-lh', user.url(remote)]);
        expectExitCode(run, 0, 'ls -lh');
        assert.doesNotMatch(run.stdout, /Usage:/, 'not the help');
        assert.match(run.stdout, new RegExp(`^-rw-r--r-- ${OTHER.user} +${OTHER_GROUP} +1\\.5K 2020-09-13 12:26 small\\.bin$`, 'm'), run.stdout);
        assert.match(run.stdout, new RegExp(`^-rw-r--r-- ${me.user} +${me.group} +2\\.9M 2020-09-13 12:26 big\\.bin$`, 'm'), run.stdout);
        assert.match(run.stdout, /^drwxr-xr-x \S+ +\S+ +\S+ \S+ \S+ sub\/$/m);
      });

      it('ls -l shows sizes in bytes, and -h alone changes nothing (as GNU ls)', async () => {
        const remote = listedFolder();
        const long = await user.run(['ls', '-l', user.url(remote)]);
        expectExitCode(long, 0, 'ls -l');
        assert.match(long.stdout, new RegExp(`^-rw-r--r-- ${OTHER.user} +${OTHER_GROUP} +1536 2020-09-13 12:26 small\\.bin$`, 'm'), long.stdout);
        assert.match(long.stdout, / 3000000 2020-09-13 12:26 big\.bin$/m);
        const plain = await user.run(['ls', user.url(remote)]);
        const human = await user.run(['ls', '-h', user.url(remote)]);
        expectExitCode(human, 0, 'ls -h');
        assert.equal(human.stdout, plain.stdout);
        assert.equal(plain.stdout, 'big.bin\nsmall.bin\nsub/\n');
      });

      it('ls --json gives owner, group, uid and gid', async () => {
        const remote = listedFolder();
        const entries = jsonLines(await user.run(['ls', '--json', user.url(remote)]));
        const small = entries.find((e) => e.name === 'small.bin')!;
        assert.deepEqual([small.owner, small.group, small.uid, small.gid, small.size], [OTHER.user, OTHER_GROUP, OTHER.uid, OTHER.gid, 1536]);
        const big = entries.find((e) => e.name === 'big.bin')!;
        assert.deepEqual([big.owner, big.group, big.uid, big.gid], [me.user, me.group, process.getuid!(), process.getgid!()]);
      });

      it('ls -l of a single file shows the owner\'s numbers (a stat carries no names)', async () => {
        const remote = listedFolder();
        const run = await user.run(['ls', '-l', user.url(`${remote}/small.bin`)]);
        expectExitCode(run, 0, 'ls -l FILE');
        assert.match(run.stdout, new RegExp(`^-rw-r--r-- ${OTHER.uid} +${OTHER.gid} +1536 2020-09-13 12:26 ${remote}/small\\.bin$`, 'm'), run.stdout);
      });
    });
  }

  describe('help, and a server whose longname is hostile', () => {
    let world: World;
    let user: FerryUser;
    before(async () => {
      const sshd = await startSshd({ dir: tempDir('ferry-sshd-') });
      world = { license, sshd, close: () => sshd.stop() };
      user = await FerryUser.create(world);
    });
    after(() => world?.close());

    it('ls --help is the help, and names -h', async () => {
      const run = await user.run(['ls', '--help']);
      expectExitCode(run, 0, 'ls --help');
      assert.match(run.stdout, /Usage: ferry ls/);
      assert.match(run.stdout, /-h, --human-readable/);
      assert.match(run.stdout, /--help +show this help/);
      const put = await user.run(['put', '-h']);
      expectExitCode(put, 0, '-h is still the help of other commands');
      assert.match(put.stdout, /Usage: ferry put/);
    });

    it('shows no names from a longname that disagrees with the attributes, and escapes those it shows', async () => {
      const hostile = await startHostileSftp({
        files: { '/d/a.txt': '12345', '/d/b.txt': 'abc' },
        longname: (name, attrs) => (name === 'a.txt'
          // Reads as an ls -l line: the owner's name holds an escape sequence that would retitle the terminal.
          ? `-rw-r--r-- 1 \u001b]0;owned\u0007 grp ${attrs.size} Jan 1 00:00 a.txt`
          // Claims another mode and size than the attributes: not taken.
          : '-rwxrwxrwx 1 root root 999 Jan 1 00:00 b.txt'),
      });
      try {
        appendFileSync(join(user.home, '.ssh', 'known_hosts'), `${hostile.knownHostsLine()}\n`);
        const run = await user.run(['ls', '-l', hostile.url('/d')]);
        expectExitCode(run, 0, 'ls -l');
        assert.doesNotMatch(run.stdout, /\u001b|\u0007/, 'no escape sequence reaches the terminal');
        assert.match(run.stdout, /^-rw-r--r-- \\x1b\]0;owned\\x07 grp +5 .* a\.txt$/m, run.stdout);
        assert.match(run.stdout, /^-rw-r--r-- 0 +0 +3 .* b\.txt$/m, run.stdout);
        const json = jsonLines(await user.run(['ls', '--json', hostile.url('/d')]));
        assert.equal(json[0]!.owner, '\u001b]0;owned\u0007', 'JSON keeps the exact text');
        assert.deepEqual([json[1]!.owner, json[1]!.uid], [null, 0]);
      } finally {
        await hostile.close();
      }
    });
  });
});
