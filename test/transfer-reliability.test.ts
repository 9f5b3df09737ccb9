import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { until } from './support/processes.js';
import { startThrottledProxy, type ThrottledProxy } from './support/throttled-proxy.js';
import { REAL_SERVERS } from './support/sftp-servers.js';
import { expectExitCode, FerryUser, folder, jsonLines, randomFile, sha256, startWorld, startWorldOn, type World } from './support/transfer-world.js';

const MiB = 1024 * 1024;

/** A proxy to the world's sshd that lets 2 MiB/s through and can drop connections, its host keys known to `user` at its port. */
async function proxyFor(world: World, user: FerryUser): Promise<ThrottledProxy> {
  const proxy = await startThrottledProxy(world.sshd.port, 2 * MiB);
  const known = Object.values(world.sshd.hostKeys).map((key) => `[127.0.0.1]:${proxy.port} ${key}`).join('\n');
  appendFileSync(join(user.home, '.ssh', 'known_hosts'), `${known}\n`);
  return proxy;
}

for (const server of REAL_SERVERS) {
  describe(`transfers that survive: atomic uploads, lost connections, resume (${server.name})`, function () {
    this.timeout(90_000);
    let world: World;
    let user: FerryUser;
    let proxy: ThrottledProxy;
    /** The same sshd, through a proxy that lets 2 MiB/s through and can drop connections. */
    const viaProxy = (path: string) => `sftp://${world.sshd.user}@127.0.0.1:${proxy.port}${path}`;

    before(async () => {
      world = await startWorldOn(server);
      user = await FerryUser.create(world);
      proxy = await proxyFor(world, user);
    });
    after(async () => {
      await proxy?.close();
      await world?.close();
    });

    it('never shows a partial file under the final name while uploading', async () => {
      const local = folder();
      const remote = folder();
      const data = randomFile(join(local, 'big.bin'), 4 * MiB);
      const digest = createHash('sha256').update(data).digest('hex');
      const final = join(remote, 'big.bin');
      const part = join(remote, '.big.bin.ferry-part');
      let sawPart = false;
      let looks = 0;
      let watching = true;
      const watcher = (async () => {
        while (watching) {
          looks++;
          if (existsSync(part)) sawPart = true;
          if (existsSync(final)) {
            // Whenever it is there, it is whole.
            assert.equal(statSync(final).size, data.length, 'final name with a partial size');
            assert.equal(sha256(final), digest);
          }
          await new Promise((r) => setImmediate(r));
        }
      })();
      const run = await user.run(['put', join(local, 'big.bin'), viaProxy(`${remote}/`)]);
      watching = false;
      await watcher;
      expectExitCode(run, 0, 'put');
      assert.ok(sawPart, 'the part file was seen while the upload ran');
      assert.ok(looks > 100, `looked ${looks} times`);
      assert.equal(sha256(final), digest);
      assert.deepEqual(readdirSync(remote), ['big.bin']);
    });

    it('retries an upload when the connection is cut, resumes from what the server has, and ends identical', async () => {
      const local = folder();
      const remote = folder();
      randomFile(join(local, 'cut.bin'), 6 * MiB);
      const part = join(remote, '.cut.bin.ferry-part');
      let cut = false;
      const running = user.run(['put', '--json', join(local, 'cut.bin'), viaProxy(`${remote}/`)]);
      await until('a quarter of the upload on the server', async () => existsSync(part) && statSync(part).size > 1.5 * MiB, 30_000, 20);
      proxy.dropAll();
      cut = true;
      const run = await running;
      expectExitCode(run, 0, 'put across a cut connection');
      assert.ok(cut);
      const events = jsonLines(run);
      const retry = events.find((e) => e.event === 'retry');
      assert.ok(retry, `a retry event: ${run.stdout}`);
      const resumed = events.find((e) => e.event === 'resumed');
      assert.ok(resumed && resumed.from > 1 * MiB, `resumed from where it was: ${JSON.stringify(resumed)}`);
      assert.equal(sha256(join(remote, 'cut.bin')), sha256(join(local, 'cut.bin')));
      assert.deepEqual(readdirSync(remote), ['cut.bin']);
    });

    it('retries a download when the session\'s sshd processes are killed, and ends identical', async () => {
      const local = folder();
      const remote = folder();
      randomFile(join(remote, 'killed.bin'), 6 * MiB);
      const part = join(local, '.killed.bin.ferry-part');
      const running = user.run(['get', '--json', viaProxy(`${remote}/killed.bin`), `${local}/`]);
      await until('part of the download on disk', async () => existsSync(part) && statSync(part).size > 1.5 * MiB, 30_000, 20);
      const killed = world.sshd.killSessions();
      assert.ok(killed > 0, 'session processes to kill');
      const run = await running;
      expectExitCode(run, 0, 'get across killed sessions');
      const events = jsonLines(run);
      assert.ok(events.some((e) => e.event === 'retry'), run.stdout);
      assert.ok(events.some((e) => e.event === 'resumed' && e.from > 1 * MiB), run.stdout);
      assert.equal(sha256(join(local, 'killed.bin')), sha256(join(remote, 'killed.bin')));
      assert.deepEqual(readdirSync(local), ['killed.bin']);
    });

    it('gives up after --retries attempts with CONNECTION (20), leaving the part file for --resume', async () => {
      const local = folder();
      const remote = folder();
      randomFile(join(local, 'gone.bin'), 4 * MiB);
      const part = join(remote, '.gone.bin.ferry-part');
      const dead = await proxyFor(world, user);
      const running = user.run(['put', '--retries', '1', join(local, 'gone.bin'), `sftp://${world.sshd.user}@127.0.0.1:${dead.port}${remote}/`]);
      await until('some of the upload on the server', async () => existsSync(part) && statSync(part).size > 512 * 1024, 30_000, 20);
      await dead.close(); // connections dropped and no new ones taken
      const run = await running;
      expectExitCode(run, 20, 'put to a server that went away');
      assert.match(run.stderr, /^ferry: .*connection/m);
      assert.ok(existsSync(part) && !existsSync(join(remote, 'gone.bin')), 'only the part file is there');

      const resumed = await user.run(['put', '--resume', '--json', join(local, 'gone.bin'), user.url(`${remote}/`)]);
      expectExitCode(resumed, 0, 'put --resume');
      const from = jsonLines(resumed).find((e) => e.event === 'resumed')?.from as number | undefined;
      assert.ok(from !== undefined && from > 0, `continued the part file: ${resumed.stdout}`);
      assert.equal(sha256(join(remote, 'gone.bin')), sha256(join(local, 'gone.bin')));
    });

    it('--resume starts over when the part file does not match the source', async () => {
      const local = folder();
      const remote = folder();
      const data = randomFile(join(remote, 'r.bin'), 1 * MiB);
      // A part file from "another" file: same length prefix, other bytes.
      writeFileSync(join(local, '.r.bin.ferry-part'), Buffer.alloc(300_000, 7));
      const run = await user.run(['get', '--resume', '--json', user.url(`${remote}/r.bin`), `${local}/`]);
      expectExitCode(run, 0, 'get --resume');
      const looked = jsonLines(run).find((e) => e.event === 'resumed');
      assert.ok(looked && looked.from === 0 && looked.matched === false, `did not trust the foreign part file: ${run.stdout}`);
      assert.ok(readFileSync(join(local, 'r.bin')).equals(data));

      writeFileSync(join(local, '.r2.bin.ferry-part'), data.subarray(0, 400_000));
      writeFileSync(join(remote, 'r2.bin'), data);
      const good = await user.run(['get', '--resume', '--json', user.url(`${remote}/r2.bin`), `${local}/`]);
      expectExitCode(good, 0, 'get --resume with a matching part file');
      assert.equal(jsonLines(good).find((e) => e.event === 'resumed')?.from, 400_000);
      assert.ok(readFileSync(join(local, 'r2.bin')).equals(data));
    });
  });
}

describe('transfers across new session keys', function () {
  this.timeout(90_000);
  let world: World;
  let user: FerryUser;
  before(async () => {
    // sshd renews the session keys after every MiB, in both directions: key exchanges happen
    // mid-transfer, while a direct connection reads into its reused receive buffers.
    world = await startWorld({ rekeyLimit: '1M' });
    user = await FerryUser.create(world);
  });
  after(() => world?.close());

  it('moves files up and down byte for byte while the keys are renewed every MiB', async () => {
    const remote = folder();
    const local = folder();
    randomFile(join(remote, 'down.bin'), 12 * MiB + 1234);
    randomFile(join(local, 'up.bin'), 12 * MiB + 4321);
    for (let i = 0; i < 40; i++) randomFile(join(remote, `small-${i}.bin`), 50_000 + i);
    expectExitCode(await user.run(['get', '-r', user.url(`${remote}/`), `${local}/got/`]), 0, 'get -r across rekeys');
    for (const name of readdirSync(remote)) assert.equal(sha256(join(local, 'got', name)), sha256(join(remote, name)), name);
    expectExitCode(await user.run(['put', join(local, 'up.bin'), user.url(`${remote}/`)]), 0, 'put across rekeys');
    assert.equal(sha256(join(remote, 'up.bin')), sha256(join(local, 'up.bin')));
  });
});

describe('a jump host whose connection is lost (OpenSSH\'s sshd forwards the connection)', function () {
  this.timeout(90_000);
  let world: World;
  let user: FerryUser;
  let proxy: ThrottledProxy;
  before(async () => {
    world = await startWorld();
    user = await FerryUser.create(world);
    proxy = await proxyFor(world, user);
  });
  after(async () => {
    await proxy?.close();
    await world?.close();
  });

  it('retries through the jump host when the jump host\'s connection is lost, and ends identical', async () => {
    const local = folder();
    const remote = folder();
    randomFile(join(remote, 'jumped.bin'), 6 * MiB);
    const part = join(local, '.jumped.bin.ferry-part');
    // The proxy is the jump host's address: the destination is reached only inside that connection.
    const { sshd } = world;
    const before = proxy.connections();
    const running = user.run(['get', '--json', '-J', `${sshd.user}@127.0.0.1:${proxy.port}`, `sftp://${sshd.user}@127.0.0.1:${sshd.port}${remote}/jumped.bin`, `${local}/`]);
    await until('part of the download on disk', async () => existsSync(part) && statSync(part).size > 1.5 * MiB, 30_000, 20);
    proxy.dropAll();
    const run = await running;
    expectExitCode(run, 0, 'get through a jump host across a lost connection');
    const events = jsonLines(run);
    assert.ok(events.some((e) => e.event === 'retry'), run.stdout);
    assert.ok(events.some((e) => e.event === 'resumed' && e.from > 1 * MiB), run.stdout);
    assert.ok(proxy.connections() >= before + 2, 'the jump host was connected to again');
    assert.equal(sha256(join(local, 'jumped.bin')), sha256(join(remote, 'jumped.bin')));
    assert.deepEqual(readdirSync(local), ['jumped.bin']);
  });
});
