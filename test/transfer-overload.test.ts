import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startHostileSftp, type HostileOptions, type HostileSftp } from './support/hostile-sftp.js';
import { expectExitCode, FerryUser, folder, jsonLines, startWorld, type Run, type World } from './support/transfer-world.js';

/**
 * Servers that give way under many requests (a full request queue, a descriptor limit, a
 * connection dropped under load) and servers that say their limits (`limits@openssh.com`): ferry
 * moves every file that the server can take at a lower concurrency, says once that it stepped
 * down, and never asks more of a server than the limits it announced.
 */

const MiB = 1024 * 1024;

describe('servers that fail under load, and servers that say their limits', function () {
  this.timeout(180_000);
  let world: World;
  let user: FerryUser;
  const files: Record<string, Buffer> = {};
  for (let i = 0; i < 12; i++) files[`/data/f${i}.bin`] = randomBytes(i * 9_000 + 1);
  files['/data/big.bin'] = randomBytes(3 * MiB + 7);
  const servers: HostileSftp[] = [];

  before(async () => {
    world = await startWorld();
    user = await FerryUser.create(world);
  });
  after(async () => {
    for (const server of servers) await server.close();
    await world?.close();
  });

  async function server(options: Omit<HostileOptions, 'files'>): Promise<HostileSftp> {
    const started = await startHostileSftp({ files: { ...files, '/up/': '' }, ...options });
    servers.push(started);
    appendFileSync(join(user.home, '.ssh', 'known_hosts'), `${started.knownHostsLine()}\n`);
    return started;
  }

  function assertAllArrived(local: string): void {
    for (const [path, data] of Object.entries(files)) assert.ok(readFileSync(join(local, path)).equals(data), path);
  }

  function fewerEvents(run: Run): Record<string, any>[] {
    return jsonLines(run).filter((e) => e.event === 'fewer');
  }

  it('a server that fails reads and writes while more than 4 are in flight: every file arrives both ways, the step down is said once', async () => {
    const hostile = await server({ failDataRequestsBeyond: 4 });
    const local = folder();
    const got = await user.run(['get', '-r', '--json', '--parallel', '8', '--retries', '0', hostile.url('/data'), `${local}/`]);
    expectExitCode(got, 0, 'get -r');
    assertAllArrived(local);
    assert.ok(hostile.overloadFailures > 0, 'the server did fail requests');
    const fewer = fewerEvents(got);
    assert.equal(fewer.length, 1, got.stdout);
    assert.equal(fewer[0]!.kind, 'load');
    assert.equal(got.stderr.match(/the server failed under load \(failure\): moving \d+ files? at a time/g)?.length, 1, got.stderr);
    assert.equal(jsonLines(got).filter((e) => e.event === 'failed').length, 0);

    const failuresBefore = hostile.overloadFailures;
    const put = await user.run(['put', '-r', '--parallel', '8', '--retries', '0', join(local, 'data'), hostile.url('/up/')]);
    expectExitCode(put, 0, 'put -r');
    assert.ok(hostile.overloadFailures > failuresBefore, 'the server did fail writes');
    assert.equal(put.stderr.match(/the server failed under load/g)?.length, 1, put.stderr);
    for (const [path, data] of Object.entries(files)) assert.ok(hostile.file(`/up${path}`)?.equals(data), path);
    assert.deepEqual(hostile.paths().filter((p) => p.endsWith('.ferry-part')), []);
  });

  it('a server that drops the connection while more than 8 requests are in flight: one large file arrives both ways, with one retry allowed', async () => {
    const hostile = await server({ dropConnectionBeyond: 8 });
    const local = folder();
    const got = await user.run(['get', '--json', '--retries', '1', hostile.url('/data/big.bin'), `${local}/`]);
    expectExitCode(got, 0, 'get of a large file');
    assert.ok(readFileSync(join(local, 'big.bin')).equals(files['/data/big.bin']!));
    assert.ok(hostile.overloadDrops >= 2, `dropped ${hostile.overloadDrops} times`);
    const fewer = fewerEvents(got);
    assert.equal(fewer.length, 1, got.stdout);
    assert.equal(fewer[0]!.parallel, null, 'one file: only its requests were fewer');
    assert.ok(fewer[0]!.requests < 64, got.stdout);

    const dropsBefore = hostile.overloadDrops;
    const put = await user.run(['put', '--retries', '1', join(local, 'big.bin'), hostile.url('/up/big.bin')]);
    expectExitCode(put, 0, 'put of a large file');
    assert.ok(hostile.overloadDrops >= dropsBefore + 2);
    assert.equal(put.stderr.match(/the server failed under load/g)?.length, 1, put.stderr);
    assert.ok(hostile.file('/up/big.bin')?.equals(files['/data/big.bin']!));
  });

  it('a file that fails at the least concurrency too fails for itself; the others arrive', async () => {
    const hostile = await server({ failDataRequestsBeyond: 0 });
    const local = folder();
    const run = await user.run(['get', '-r', '--json', '--parallel', '4', '--retries', '0', hostile.url('/data'), `${local}/`]);
    // Every read fails, even alone: nothing is the server's load, every file fails as it is.
    expectExitCode(run, 23, 'get -r from a server that fails every read');
    assert.equal(jsonLines(run).filter((e) => e.event === 'failed').length, Object.keys(files).length, run.stdout);
    assert.equal(jsonLines(run).find((e) => e.event === 'failed' && e.file === 'data/f0.bin')?.message, '/data/f0.bin: the server failed (failure)');
  });

  it('a server whose limits@openssh.com allows 2 open handles and 8 KiB requests: never more, with one or two connections, and no step down needed', async () => {
    const hostile = await server({ limits: { maxOpenHandles: 2, maxReadLen: 8192, maxWriteLen: 8192 } });
    for (const connections of ['1', '2']) {
      const local = folder();
      const got = await user.run(['get', '-r', '--json', '--parallel', '8', '--connections', connections, '--retries', '0', hostile.url('/data'), `${local}/`]);
      expectExitCode(got, 0, `get -r over ${connections} connection(s)`);
      assertAllArrived(local);
      assert.deepEqual(fewerEvents(got), [], 'the server never had to refuse an open');
      const put = await user.run(['put', '-r', '--json', '--parallel', '8', '--connections', connections, '--retries', '0', join(local, 'data'), hostile.url(`/up/c${connections}/`)]);
      expectExitCode(put, 0, `put -r over ${connections} connection(s)`);
      assert.deepEqual(fewerEvents(put), []);
      for (const [path, data] of Object.entries(files)) assert.ok(hostile.file(`/up/c${connections}${path}`)?.equals(data), path);
    }
    assert.equal(hostile.refusedOpens, 0, 'no open was over the limit');
    assert.ok(hostile.peakOpenFiles <= 2, `${hostile.peakOpenFiles} files open at once on one session`);
    assert.equal(hostile.peakOpenFiles, 2, 'both handles were used');
    assert.ok(hostile.longestRead <= 8192 && hostile.longestWrite <= 8192, `reads of ${hostile.longestRead}, writes of ${hostile.longestWrite} bytes`);
  });
});
