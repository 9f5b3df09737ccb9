import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startHostileSftp, type HostileSftp } from './support/hostile-sftp.js';
import { startThrottledProxy, type ThrottledProxy } from './support/throttled-proxy.js';
import { REAL_SERVERS } from './support/sftp-servers.js';
import { expectExitCode, FerryUser, folder, jsonLines, randomFile, startWorld, startWorldOn, type World } from './support/transfer-world.js';

/**
 * `--resume` never makes a file that differs from the source: a part file from an earlier run is
 * compared whole (by the server's check-file where it offers it, else read back), and continued
 * from its last block that matched. Ctrl-C leaves part files and says how to continue them; a run
 * without --resume says that it replaces one.
 */

const MiB = 1024 * 1024;

/** `data` with the byte at `at` changed. */
function flipped(data: Buffer, at: number): Buffer {
  const copy = Buffer.from(data);
  copy[at] = copy[at]! ^ 0xff;
  return copy;
}

function resumedEvent(stdout: string): Record<string, any> | undefined {
  return jsonLines({ code: 0, stdout, stderr: '' }).find((e) => e.event === 'resumed');
}

for (const server of REAL_SERVERS) {
  describe(`resume that verifies (${server.name}: the part file is checked by ${server.resumeVia})`, function () {
    this.timeout(90_000);
    let world: World;
    let user: FerryUser;
    before(async () => {
      world = await startWorldOn(server);
      user = await FerryUser.create(world);
    });
    after(() => world?.close());

    it('put --resume over a part file with a byte flipped in the middle continues from the last matching block and ends identical', async () => {
      const local = folder();
      const remote = folder();
      const data = randomFile(join(local, 'mid.bin'), 5 * MiB);
      writeFileSync(join(remote, '.mid.bin.ferry-part'), flipped(data.subarray(0, 3.5 * MiB), 2.5 * MiB));
      const run = await user.run(['put', '--resume', '--json', join(local, 'mid.bin'), user.url(`${remote}/`)]);
      expectExitCode(run, 0, 'put --resume');
      assert.deepEqual(
        { ...resumedEvent(run.stdout) },
        { event: 'resumed', file: 'mid.bin', from: 2 * MiB, size: 5 * MiB, partBytes: 3.5 * MiB, verified: 'sha256', matched: false, via: server.resumeVia },
      );
      assert.ok(readFileSync(join(remote, 'mid.bin')).equals(data), 'the uploaded file is the source, byte for byte');
      assert.deepEqual(readdirSync(remote), ['mid.bin']);
    });

    it('put --resume over a 2,000,000-byte part file with byte 100 flipped starts over, says so, and ends identical', async () => {
      const local = folder();
      const remote = folder();
      const data = randomFile(join(local, 'early.bin'), 3_000_000);
      writeFileSync(join(remote, '.early.bin.ferry-part'), flipped(data.subarray(0, 2_000_000), 100));
      const run = await user.run(['put', '--resume', join(local, 'early.bin'), user.url(`${remote}/`)]);
      expectExitCode(run, 0, 'put --resume');
      assert.match(run.stderr, /^ferry: early\.bin: the part file did not match the source \(its first 1 MiB block differs\): starting over$/m);
      assert.ok(readFileSync(join(remote, 'early.bin')).equals(data));
    });

    it('get --resume over a local part file with a byte flipped in the middle says the prefix did not match, continues, and ends identical', async () => {
      const local = folder();
      const remote = folder();
      const data = randomFile(join(remote, 'down.bin'), 5 * MiB + 12345);
      writeFileSync(join(local, '.down.bin.ferry-part'), flipped(data.subarray(0, 4 * MiB), 3 * MiB + 7));
      const run = await user.run(['get', '--resume', user.url(`${remote}/down.bin`), `${local}/`]);
      expectExitCode(run, 0, 'get --resume');
      assert.match(run.stderr, /^ferry: down\.bin: the part file did not match the source after 3\.00 MiB \(SHA-256 of 1 MiB blocks\): continuing from there$/m);
      assert.ok(readFileSync(join(local, 'down.bin')).equals(data), 'the downloaded file is the source, byte for byte');
      assert.deepEqual(readdirSync(local), ['down.bin']);

      // With --json the event says the same.
      writeFileSync(join(local, '.again.bin.ferry-part'), flipped(data.subarray(0, 4 * MiB), 3 * MiB + 7));
      writeFileSync(join(remote, 'again.bin'), data);
      const json = await user.run(['get', '--resume', '--json', user.url(`${remote}/again.bin`), `${local}/`]);
      expectExitCode(json, 0, 'get --resume --json');
      assert.deepEqual({ ...resumedEvent(json.stdout) }, { event: 'resumed', file: 'again.bin', from: 3 * MiB, size: data.length, partBytes: 4 * MiB, verified: 'sha256', matched: false, via: server.resumeVia });
      assert.ok(readFileSync(join(local, 'again.bin')).equals(data));
    });

    it('--resume=size trusts the part file by its size, as documented: the flipped byte stays, and the event says "size"', async () => {
      const local = folder();
      const remote = folder();
      const data = randomFile(join(local, 'trusted.bin'), 3_000_000);
      writeFileSync(join(remote, '.trusted.bin.ferry-part'), flipped(data.subarray(0, 2_000_000), 100));
      const run = await user.run(['put', '--resume=size', '--json', join(local, 'trusted.bin'), user.url(`${remote}/`)]);
      expectExitCode(run, 0, 'put --resume=size');
      assert.deepEqual({ ...resumedEvent(run.stdout) }, { event: 'resumed', file: 'trusted.bin', from: 2_000_000, size: 3_000_000, partBytes: 2_000_000, verified: 'size', matched: true });
      const result = readFileSync(join(remote, 'trusted.bin'));
      assert.equal(result.length, data.length);
      assert.ok(result.equals(flipped(data, 100)), 'only the byte the part file had wrong differs');

      const bad = await user.run(['put', '--resume=maybe', join(local, 'trusted.bin'), user.url(`${remote}/`)]);
      expectExitCode(bad, 2, '--resume=maybe');
      assert.match(bad.stderr, /^ferry: --resume=maybe: say --resume .* or --resume=size/m);
    });

    it('a run without --resume says it replaces a part file from an earlier run (both directions), and ends identical', async () => {
      const local = folder();
      const remote = folder();
      const up = randomFile(join(local, 'up.bin'), 2 * MiB);
      writeFileSync(join(remote, '.up.bin.ferry-part'), up.subarray(0, MiB));
      const put = await user.run(['put', join(local, 'up.bin'), user.url(`${remote}/`)]);
      expectExitCode(put, 0, 'put over a part file');
      assert.match(put.stderr, /^ferry: up\.bin: a part file from an earlier run is there \(1\.00 MiB\): --resume continues it; starting over$/m);
      assert.ok(readFileSync(join(remote, 'up.bin')).equals(up));

      const down = randomFile(join(remote, 'small.bin'), 10_000);
      writeFileSync(join(local, '.small.bin.ferry-part'), down.subarray(0, 5_000));
      const get = await user.run(['get', '--json', user.url(`${remote}/small.bin`), `${local}/`]);
      expectExitCode(get, 0, 'get over a part file');
      assert.deepEqual(jsonLines(get).find((e) => e.event === 'leftover'), { event: 'leftover', file: 'small.bin', bytes: 5_000, action: 'starting over' });
      assert.ok(readFileSync(join(local, 'small.bin')).equals(down));
    });
  });
}

describe('resume that verifies by the server\'s check-file (hostile server answering check-file-handle)', function () {
  this.timeout(90_000);
  let world: World;
  let user: FerryUser;
  let hostile: HostileSftp;
  const source = randomBytes(5 * MiB + 999);
  before(async () => {
    world = await startWorld();
    user = await FerryUser.create(world);
    hostile = await startHostileSftp({
      files: { '/data/big.bin': source, '/up/.big.bin.ferry-part': flipped(source.subarray(0, 3 * MiB + 5), 2 * MiB + 1) },
      checkFile: true,
    });
    appendFileSync(join(user.home, '.ssh', 'known_hosts'), `${hostile.knownHostsLine()}\n`);
  });
  after(async () => {
    await hostile?.close();
    await world?.close();
  });

  it('put --resume asks the server for the part file\'s block digests and reads nothing back', async () => {
    const local = folder();
    writeFileSync(join(local, 'big.bin'), source);
    const readsBefore = hostile.reads;
    const run = await user.run(['put', '--resume', '--json', join(local, 'big.bin'), hostile.url('/up/')]);
    expectExitCode(run, 0, 'put --resume to a server with check-file');
    assert.deepEqual(hostile.checkFileRequests, [{ request: 'check-file-handle', target: '/up/.big.bin.ferry-part', algorithms: 'sha256', start: 0, length: 3 * MiB + 5, blockSize: MiB }]);
    assert.equal(hostile.reads, readsBefore, 'no read-back');
    assert.deepEqual({ ...resumedEvent(run.stdout) }, { event: 'resumed', file: 'big.bin', from: 2 * MiB, size: source.length, partBytes: 3 * MiB + 5, verified: 'sha256', matched: false, via: 'check-file' });
    assert.ok(hostile.file('/up/big.bin')?.equals(source), 'the uploaded file is the source');
  });

  it('get --resume asks the server for the source\'s digests over the local part file\'s length', async () => {
    const local = folder();
    writeFileSync(join(local, '.big.bin.ferry-part'), flipped(source.subarray(0, 4 * MiB), 3 * MiB + 3));
    hostile.checkFileRequests.length = 0;
    const run = await user.run(['get', '--resume', '--json', hostile.url('/data/big.bin'), `${local}/`]);
    expectExitCode(run, 0, 'get --resume from a server with check-file');
    assert.deepEqual(hostile.checkFileRequests, [{ request: 'check-file-handle', target: '/data/big.bin', algorithms: 'sha256', start: 0, length: 4 * MiB, blockSize: MiB }]);
    assert.deepEqual({ ...resumedEvent(run.stdout) }, { event: 'resumed', file: 'big.bin', from: 3 * MiB, size: source.length, partBytes: 4 * MiB, verified: 'sha256', matched: false, via: 'check-file' });
    assert.ok(readFileSync(join(local, 'big.bin')).equals(source));
  });

  it('a server that announces check-file but refuses it: the part file is read back instead, and the result is the same', async () => {
    const refusing = await startHostileSftp({ files: { '/up/.big.bin.ferry-part': flipped(source.subarray(0, 3 * MiB), 10) }, checkFile: 'refuse' });
    appendFileSync(join(user.home, '.ssh', 'known_hosts'), `${refusing.knownHostsLine()}\n`);
    try {
      const local = folder();
      writeFileSync(join(local, 'big.bin'), source);
      const run = await user.run(['put', '--resume', '--json', join(local, 'big.bin'), refusing.url('/up/')]);
      expectExitCode(run, 0, 'put --resume to a server that refuses check-file');
      assert.equal(refusing.checkFileRequests.length, 1, 'it was asked');
      assert.ok(refusing.reads > 0, 'then the part file was read back');
      assert.deepEqual({ ...resumedEvent(run.stdout) }, { event: 'resumed', file: 'big.bin', from: 0, size: source.length, partBytes: 3 * MiB, verified: 'sha256', matched: false, via: 'read-back' });
      assert.ok(refusing.file('/up/big.bin')?.equals(source));
    } finally {
      await refusing.close();
    }
  });
});

describe('Ctrl-C during a transfer', function () {
  this.timeout(90_000);
  let world: World;
  let user: FerryUser;
  let proxy: ThrottledProxy;
  before(async () => {
    world = await startWorld();
    user = await FerryUser.create(world);
    // 1 MiB/s: the upload is still under way when the test has seen its progress.
    proxy = await startThrottledProxy(world.sshd.port, 1 * MiB);
    const known = Object.values(world.sshd.hostKeys).map((key) => `[127.0.0.1]:${proxy.port} ${key}`).join('\n');
    appendFileSync(join(user.home, '.ssh', 'known_hosts'), `${known}\n`);
  });
  after(async () => {
    await proxy?.close();
    await world?.close();
  });

  it('ends with one line that says how to resume, exit 130, the part file left; a run without --resume then says it starts over', async () => {
    const local = folder();
    const remote = folder();
    const data = randomFile(join(local, 'slow.bin'), 16 * MiB);
    const url = `sftp://${world.sshd.user}@127.0.0.1:${proxy.port}${remote}/`;
    let signalled = false;
    const run = await user.run(['put', '--json', join(local, 'slow.bin'), url], {
      killAfterMs: 80_000,
      onStdoutLine: (line, child) => {
        const event = JSON.parse(line) as { event: string; bytes?: number };
        if (!signalled && event.event === 'progress' && (event.bytes ?? 0) > 0) {
          signalled = true;
          child.kill('SIGINT');
        }
      },
    });
    assert.ok(signalled, `a progress event was seen: ${run.stdout}`);
    expectExitCode(run, 130, 'put interrupted by Ctrl-C');
    assert.equal(run.stderr, 'ferry: interrupted; run the same command with --resume to continue 1 part file\n');
    assert.ok(existsSync(join(remote, '.slow.bin.ferry-part')), 'the part file is left');
    assert.ok(!existsSync(join(remote, 'slow.bin')), 'nothing under the final name');

    const again = await user.run(['put', join(local, 'slow.bin'), user.url(`${remote}/`)]);
    expectExitCode(again, 0, 'put again without --resume');
    assert.match(again.stderr, /^ferry: slow\.bin: a part file from an earlier run is there \(.*\): --resume continues it; starting over$/m);
    assert.ok(readFileSync(join(remote, 'slow.bin')).equals(data));
    assert.deepEqual(readdirSync(remote), ['slow.bin']);
  });
});
