import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Pool } from 'mysql2/promise';
import type { ManifestBody } from '../licensing/release-manifest.js';
import { loadOrCreateRoot, rootPaths } from '../server/keys/root.js';
import { packageAgent } from '../server/releases/package.js';
import { issueLicense } from './support/admin.js';
import { PortalClient, text } from './support/portal.js';
import { freePort, until, runToEnd } from './support/processes.js';
import { startSshd } from './support/sshd.js';
import { startThrottledProxy } from './support/throttled-proxy.js';
import { openDb, startServer, type TestServer } from './support/server.js';
import { tempDir } from './support/temp.js';

const CLI = fileURLToPath(new URL('../agent/cli.js', import.meta.url));
const V1 = '0.9.1';
const V2 = '0.9.2';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], env: Record<string, string>): Promise<Run> {
  return runToEnd(command, args, env);
}

/** Runs `command` on a pseudo-terminal (util-linux `script`): what a person at a terminal sees. */
function runOnTerminal(args: string[], env: Record<string, string>): Promise<{ code: number | null; screen: string }> {
  const quote = (arg: string) => `'${arg.replace(/'/g, `'\\''`)}'`;
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qefc', args.map(quote).join(' '), '/dev/null'], { env: { ...env, TERM: 'xterm' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let screen = '';
    child.stdout.on('data', (d) => (screen += d));
    child.stderr.on('data', (d) => (screen += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, screen }));
  });
}

/** A version as it appears in text, for a RegExp. */
const literal = (version: string) => version.replace(/\./g, '\\.');
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('getting ferry: packaging, the download page, install.sh and ferry update', function () {
  this.timeout(180_000);
  let server: TestServer;
  let db: Pool;
  let staff: PortalClient;
  const releases: Record<string, ManifestBody> = {};
  /** The machine a customer installs on: a clean HOME, and the folder install.sh fills. */
  const customer = { home: '', bin: '' };

  const customerEnv = (extra: Record<string, string> = {}) => ({
    HOME: customer.home, PATH: process.env.PATH!, FERRY_INSTALL_DIR: customer.bin, ...extra,
  });
  const artefact = (version: string, platform: string) => releases[version]!.artefacts.find((a) => a.platform === platform)!;
  const releaseFile = (version: string, platform: string) => join(server.config.dataDir, 'releases', version, artefact(version, platform).name);
  const installSh = (env: Record<string, string>) => run('sh', ['-c', `curl -fsSL ${server.url}/install.sh | sh`], env);
  const publish = async (version: string, notes: string) => {
    const answer = await staff.submit('/admin/releases', '/admin/releases', { version, notes });
    assert.equal(answer.status, 303, text(answer.html));
  };

  before(async function () {
    this.timeout(600_000);
    const port = await freePort();
    server = await startServer({ port, publicUrl: `http://127.0.0.1:${port}` });
    db = await openDb(server.config.databaseUrl);
    // Two releases, for the update from one to the next, packaged side by side under one root.
    await loadOrCreateRoot(rootPaths(server.config.dataDir));
    await Promise.all([V1, V2].map(async (version) => {
      releases[version] = (await packageAgent({ dataDir: server.config.dataDir, publicUrl: server.url, version })).body;
    }));
    staff = new PortalClient(server.url);
    assert.equal((await staff.post('/admin/login', { token: server.adminToken })).status, 303);
    await publish(V1, 'The first release.\nWith two lines.');
    customer.home = tempDir('ferry-customer-');
    customer.bin = join(customer.home, 'bin');
  });
  after(async () => {
    await db?.end();
    await server?.close();
  });

  it('announces a release published in /admin once, as a release notice to those who chose news', async () => {
    const [rows] = await db.query("SELECT r.version, c.kind, c.state, c.body FROM campaigns c JOIN releases r ON r.id = c.release_id");
    assert.deepEqual((rows as { version: string; kind: string; body: string }[]).map((r) => [r.version, r.kind, r.body]), [[V1, 'release', 'The first release.\nWith two lines.']]);
    const again = await staff.submit('/admin/releases', '/admin/releases', { version: V1, notes: 'again' });
    assert.equal(again.status, 404, 'a published release is no longer offered: it is published, and announced, once');
    const [after] = await db.query('SELECT COUNT(*) AS n FROM campaigns');
    assert.equal(Number((after as { n: number }[])[0]!.n), 1);
  });

  it('lists the packaged versions whose manifest the root signed, and serves only published ones', async () => {
    // A release folder whose manifest was edited after signing is not offered for publishing.
    const forged = join(server.config.dataDir, 'releases', '0.9.9');
    spawnSync('cp', ['-r', join(server.config.dataDir, 'releases', V2), forged]);
    writeFileSync(join(forged, 'manifest.json'), readFileSync(join(forged, 'manifest.json'), 'utf8').replaceAll(V2, '0.9.9'));
    const page = await staff.get('/admin/releases');
    assert.equal(page.status, 200);
    assert.match(page.html, new RegExp(`Publish ${literal(V2)}`));
    assert.match(text(page.html), /Not listed, because their manifest is missing or not signed by this deployment's root: 0\.9\.9/);
    const refused = await staff.submit('/admin/releases', '/admin/releases', { version: '0.9.9', notes: '' });
    assert.equal(refused.status, 404);

    const download = await fetch(`${server.url}/download`);
    assert.equal(download.status, 200);
    assert.match(download.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    const html = await download.text();
    assert.match(html, new RegExp(`ferry ${literal(V1)} \\(latest\\)`));
    assert.match(html, /The first release\.\nWith two lines\./);
    assert.ok(html.includes(artefact(V1, 'linux-x64').sha256) && html.includes(artefact(V1, 'node').sha256), 'both checksums are shown');
    assert.ok(html.includes(`curl -fsSL ${server.url}/install.sh | sh`));
    assert.doesNotMatch(html, new RegExp(literal(V2)), 'an unpublished release is not shown');
    assert.equal((await fetch(`${server.url}/download/${V2}/${artefact(V2, 'node').name}`)).status, 404);
    assert.equal((await fetch(`${server.url}/download/${V1}/manifest.json/../../../admin-token`)).status, 404);
    const latest = await fetch(`${server.url}/download/latest/manifest.json`);
    assert.equal(latest.status, 200);
    assert.equal(await latest.text(), readFileSync(join(server.config.dataDir, 'releases', V1, 'manifest.json'), 'utf8'));
    // MyAccount's pages link to the download page.
    assert.match((await (await fetch(`${server.url}/account/login`)).text()), /href="\/download"/);
  });

  it('ships the npm package of the agent alone, which npm installs and runs', async () => {
    const tarball = releaseFile(V1, 'node');
    const listing = spawnSync('tar', ['tzf', tarball], { encoding: 'utf8' });
    assert.deepEqual(listing.stdout.trim().split('\n').sort(), ['package/build-info.json', 'package/ferry.cjs', 'package/package.json']);
    const prefix = tempDir('ferry-npm-prefix-');
    const installed = await run('npm', ['install', '--global', '--prefix', prefix, '--no-audit', '--no-fund', tarball], { ...process.env } as Record<string, string>);
    assert.equal(installed.code, 0, installed.stderr);
    const version = await run(join(prefix, 'bin', 'ferry'), ['version'], { PATH: process.env.PATH!, HOME: tempDir('ferry-npm-home-') });
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, new RegExp(`^ferry ${literal(V1)} \\(build \\w+ \\d{4}-\\d\\d-\\d\\d, release\\)\ntrust root: SHA256:`));
    const info = JSON.parse(readFileSync(join(prefix, 'lib', 'node_modules', 'ferry-agent', 'build-info.json'), 'utf8'));
    assert.equal(info.trustRoot, readFileSync(join(server.config.dataDir, 'root', 'root-public.pem'), 'utf8'));
    assert.equal(info.server, server.url);
  });

  it('installs with curl | sh: the single executable, which runs without Node and activates a trial without --server', async () => {
    const install = await installSh(customerEnv());
    assert.equal(install.code, 0, install.stderr);
    assert.deepEqual(readdirSync(customer.bin), ['ferry'], 'nothing but ferry is left in the folder');
    assert.equal(sha256(join(customer.bin, 'ferry')), artefact(V1, 'linux-x64').sha256);

    const alone = tempDir('ferry-no-node-');
    copyFileSync(join(customer.bin, 'ferry'), join(alone, 'ferry'));
    spawnSync('chmod', ['755', join(alone, 'ferry')]);
    const version = await run(join(alone, 'ferry'), ['--version'], { PATH: '/nonexistent' });
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout.trim(), V1);

    const config = JSON.parse(readFileSync(join(customer.home, '.config', 'ferry', 'config.json'), 'utf8'));
    assert.equal(config.server, server.url);
    const trial = await run(join(customer.bin, 'ferry'), ['activate', '--trial'], customerEnv());
    assert.equal(trial.code, 0, trial.stderr);
    assert.match(trial.stdout, /trial/i);

    const [rows] = await db.query('SELECT r.version, d.platform, d.artefact FROM release_downloads d JOIN releases r ON r.id = d.release_id');
    assert.deepEqual(rows, [{ version: V1, platform: 'linux-x64', artefact: artefact(V1, 'linux-x64').name }]);
    assert.match(text((await staff.get('/admin/releases')).html), new RegExp(`${literal(V1)} linux-x64 1`));
  });

  it('activates FERRY_KEY unattended during the install', async () => {
    const license = await issueLicense(server, 1);
    const home = tempDir('ferry-keyed-');
    const install = await installSh({ HOME: home, PATH: process.env.PATH!, FERRY_INSTALL_DIR: join(home, 'bin'), FERRY_KEY: license.key });
    assert.equal(install.code, 0, install.stderr);
    const status = await run(join(home, 'bin', 'ferry'), ['status', '--json'], { HOME: home, PATH: process.env.PATH! });
    assert.equal(JSON.parse(status.stdout).kind, 'permanent', status.stdout);
  });

  it('transfers with ssh2\'s OpenSSL binding and the packaged code cache from inside the single executable, and without a Node warning', async () => {
    const license = await issueLicense(server, 1);
    const home = tempDir('ferry-native-');
    const env = { HOME: home, PATH: process.env.PATH!, XDG_CACHE_HOME: join(home, 'cache') };
    const exe = releaseFile(V1, 'linux-x64');
    const activated = await run(exe, ['activate', '--key', license.key, '--server', server.url], env);
    assert.equal(activated.code, 0, activated.stderr);
    const sshd = await startSshd({ dir: tempDir('ferry-native-sshd-') });
    try {
      mkdirSync(join(home, '.ssh'));
      writeFileSync(join(home, '.ssh', 'known_hosts'), `${sshd.knownHostsLines().join('\n')}\n`);
      const ls = () => run(exe, ['ls', '-vv', '-i', sshd.clientKey, `sftp://${sshd.user}@127.0.0.1:${sshd.port}${sshd.dir}`], env);
      const first = await ls();
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stdout, /sshd_config/);
      assert.match(first.stderr, /cipher aes128-gcm@openssh\.com \(ssh2's OpenSSL binding\)/);
      // The bundle's code comes from the cache packaged with it; under other V8 flags it is refused
      // and the same command still works.
      assert.match(first.stderr, /debug2: compiled code from the executable's code cache/);
      const otherFlags = await run(exe, ['ls', '-vv', '-i', sshd.clientKey, `sftp://${sshd.user}@127.0.0.1:${sshd.port}${sshd.dir}`], { ...env, NODE_OPTIONS: '--max-semi-space-size=64' });
      assert.equal(otherFlags.code, 0, otherFlags.stderr);
      assert.match(otherFlags.stdout, /sshd_config/);
      assert.match(otherFlags.stderr, /code cache does not fit this Node's V8 flags/);
      assert.doesNotMatch(first.stderr, /Warning|single-executable|require\(/);
      // Kept in the cache under its digest; a copy changed there is written again, never loaded.
      const [cached] = readdirSync(join(home, 'cache', 'ferry'));
      assert.match(cached!, /^[0-9a-f]{16}-sshcrypto\.node$/);
      const file = join(home, 'cache', 'ferry', cached!);
      const original = readFileSync(file);
      writeFileSync(file, Buffer.concat([original.subarray(0, 1000), Buffer.from('not the library')]));
      const again = await ls();
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stderr, /\(ssh2's OpenSSL binding\)/);
      assert.ok(readFileSync(file).equals(original), 'the changed copy was written again');
    } finally {
      await sshd.stop();
    }
  });

  it('stops install.sh with a clear message on an unknown platform or a failed download, installing nothing', async () => {
    const home = tempDir('ferry-unlucky-');
    const env = { HOME: home, PATH: process.env.PATH!, FERRY_INSTALL_DIR: join(home, 'bin') };
    const unknown = await installSh({ ...env, FERRY_INSTALL_PLATFORM: 'plan9-mips' });
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /^ferry install: no ferry build for \S+ \(plan9-mips\) in release /m);
    assert.equal(existsSync(join(home, 'bin', 'ferry')), false);

    const exe = releaseFile(V1, 'linux-x64');
    renameSync(exe, `${exe}.away`);
    try {
      const failed = await installSh(env);
      assert.notEqual(failed.code, 0);
      assert.match(failed.stderr, /the download of ferry-\S+ from \S+ failed: nothing was installed/);
      assert.deepEqual(readdirSync(join(home, 'bin')), []);
    } finally {
      renameSync(`${exe}.away`, exe);
    }
  });

  it('refuses a tampered artefact or manifest, in install.sh and in ferry update, and keeps the installed ferry', async () => {
    await publish(V2, 'The second release.');
    const exe = releaseFile(V2, 'linux-x64');
    const original = readFileSync(exe);
    const fresh = tempDir('ferry-tampered-');
    const tamperedEnv = { HOME: fresh, PATH: process.env.PATH!, FERRY_INSTALL_DIR: join(fresh, 'bin') };
    const expectRefused = async (why: RegExp) => {
      const install = await installSh(tamperedEnv);
      assert.notEqual(install.code, 0);
      assert.match(install.stderr, /does not match the release manifest .*nothing was installed/);
      assert.deepEqual(readdirSync(join(fresh, 'bin')), [], 'nothing installed, nothing left over');
      const update = await run(join(customer.bin, 'ferry'), ['update'], customerEnv());
      assert.equal(update.code, 31, update.stderr);
      assert.match(update.stderr, why);
      assert.deepEqual(readdirSync(customer.bin), ['ferry']);
      assert.equal(sha256(join(customer.bin, 'ferry')), artefact(V1, 'linux-x64').sha256, 'the installed ferry is unchanged');
    };

    // One byte changed in the middle of the executable, its size kept.
    const fd = openSync(exe, 'r+');
    writeSync(fd, Buffer.from([original[original.length >> 1]! ^ 0xff]), 0, 1, original.length >> 1);
    closeSync(fd);
    await expectRefused(/does not match the signed release manifest/);
    writeFileSync(exe, original);

    // The manifest as served names another checksum (its signature no longer fits).
    const realSha = artefact(V2, 'linux-x64').sha256;
    const forgedSha = randomBytes(32).toString('hex');
    await db.execute('UPDATE releases SET manifest = REPLACE(manifest, ?, ?) WHERE version = ?', [realSha, forgedSha, V2]);
    try {
      await expectRefused(/release manifest from .* failed its check \(the signature is not the trust root's\)/);
    } finally {
      await db.execute('UPDATE releases SET manifest = REPLACE(manifest, ?, ?) WHERE version = ?', [forgedSha, realSha, V2]);
    }
  });

  it('keeps the installed ferry when the update\'s download breaks off', async () => {
    const proxy = await startThrottledProxy(Number(new URL(server.url).port), 8 * 1024 * 1024);
    try {
      // Through a proxy that lets 8 MiB a second through: the network fails a few MiB into the download.
      const update = run(join(customer.bin, 'ferry'), ['update', '--server', `http://127.0.0.1:${proxy.port}`], customerEnv());
      await until('a few MiB of the new release on their way', async () => proxy.bytes() > 4 * 1024 * 1024, 60_000);
      proxy.dropAll();
      const broken = await update;
      assert.equal(broken.code, 32, broken.stderr);
      assert.match(broken.stderr, /broke off .*nothing was changed/);
    } finally {
      await proxy.close();
    }
    assert.deepEqual(readdirSync(customer.bin), ['ferry'], 'no part of the new one is left');
    assert.equal(sha256(join(customer.bin, 'ferry')), artefact(V1, 'linux-x64').sha256);
    assert.equal((await run(join(customer.bin, 'ferry'), ['--version'], { PATH: '/nonexistent' })).stdout.trim(), V1);
  });

  it('ferry update replaces the single executable with the next release, atomically', async () => {
    const update = await run(join(customer.bin, 'ferry'), ['update'], customerEnv());
    assert.equal(update.code, 0, update.stderr);
    assert.match(update.stdout, new RegExp(`updated from ${literal(V1)} to ${literal(V2)}`));
    assert.deepEqual(readdirSync(customer.bin), ['ferry']);
    assert.equal(sha256(join(customer.bin, 'ferry')), artefact(V2, 'linux-x64').sha256);
    const version = await run(join(customer.bin, 'ferry'), ['--version'], { PATH: '/nonexistent' });
    assert.equal(version.stdout.trim(), V2);
    const again = await run(join(customer.bin, 'ferry'), ['update'], customerEnv());
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /is up to date/);
  });

  it('ferry update of an npm installation installs the next release\'s package with npm', async () => {
    const prefix = tempDir('ferry-npm-update-');
    // npm_config_prefix: the "global" installation of this test, here and in the npm that ferry runs.
    const env = { PATH: `${join(prefix, 'bin')}:${process.env.PATH!}`, HOME: tempDir('ferry-npm-home-'), npm_config_prefix: prefix, FERRY_SERVER: server.url };
    const installed = await run('npm', ['install', '--global', '--no-audit', '--no-fund', releaseFile(V1, 'node')], env);
    assert.equal(installed.code, 0, installed.stderr);
    const update = await run(join(prefix, 'bin', 'ferry'), ['update'], env);
    assert.equal(update.code, 0, update.stderr);
    assert.match(update.stdout, new RegExp(`updated from ${literal(V1)} to ${literal(V2)}`));
    const version = await run(join(prefix, 'bin', 'ferry'), ['--version'], env);
    assert.equal(version.stdout.trim(), V2);
  });

  it('a development build says what it is and refuses to update itself', async () => {
    const env = { HOME: tempDir('ferry-dev-'), PATH: process.env.PATH!, FERRY_SERVER: server.url };
    const version = await run(process.execPath, [CLI, 'version'], env);
    assert.match(version.stdout, /\(build dev, development build\)\ntrust root: none \(development build\)/);
    const update = await run(process.execPath, [CLI, 'update'], env);
    assert.equal(update.code, 30, update.stderr);
    assert.match(update.stderr, /^ferry: this is a development build: it has no trust root/);
  });

  it('says a newer release is available once a day on a terminal, never with --json or off a terminal', async () => {
    const home = tempDir('ferry-notice-');
    const t0 = Date.now();
    const machine = `notice-${randomBytes(6).toString('hex')}`;
    /** The development agent's environment, its clock `hours` after the start (FERRY_NOW). */
    const at = (hours: number) => ({ FERRY_HOME: home, HOME: home, PATH: process.env.PATH!, FERRY_MACHINE_ID: machine, FERRY_NOW: String(t0 + hours * 3_600_000) });
    const notice = `ferry ${V2} is available: ferry update`;
    // Learned from the trial's answer; not said, since this is no terminal.
    const trial = await run(process.execPath, [CLI, '--server', server.url, 'activate', '--trial'], at(0));
    assert.equal(trial.code, 0, trial.stderr);
    assert.ok(!trial.stderr.includes(notice));

    const first = await runOnTerminal([process.execPath, CLI, 'status'], at(0));
    assert.equal(first.code, 0, first.screen);
    assert.ok(first.screen.includes(notice), first.screen);
    const sameDay = await runOnTerminal([process.execPath, CLI, 'status'], at(5));
    assert.ok(!sameDay.screen.includes(notice), 'once a day');
    const json = await runOnTerminal([process.execPath, CLI, 'status', '--json'], at(25));
    assert.ok(!json.screen.includes(notice), 'never with --json');
    const piped = await run(process.execPath, [CLI, 'status'], at(25));
    assert.ok(!piped.stderr.includes(notice), 'never off a terminal');
    const nextDay = await runOnTerminal([process.execPath, CLI, 'status'], at(25));
    assert.ok(nextDay.screen.includes(notice), nextDay.screen);
  });
});
