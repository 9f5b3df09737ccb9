import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  certifySigningKey, fingerprint, generateKey, generateRootKey, generateSigningKey, POLICIES, publicJwk, rootPublicPem,
  verifyCertifiedToken, type SignedStatement, type SigningKey,
} from '../licensing/index.js';
import type { LicenseState } from '../agent/license-state.js';
import type { StatusReport } from '../agent/commands/status.js';
import { DAY, HOUR, tempDir, tokenFor } from './support/agent-fixtures.js';
import { Machine, type Run } from './support/ferry-machine.js';
import { request } from './support/http.js';
import { freePort, serverCommand, startServerProcess } from './support/processes.js';
import { startServer, type TestServer } from './support/server.js';
import { assertOneLineError, expectExitCode } from './support/transfer-world.js';
import { TEST_ROOT } from './support/trust-root.js';

/**
 * The agent trusts its own root and nothing a server or a file offers. FERRY_TRUST_ROOT of every
 * machine here is the test run's root (test/support/trust-root.ts), which every test server has.
 */

const UNTRUSTED = 18;

/** A license server of our own making, with keys (and a root) of its own: it answers like Ferry's. */
class FakeLicenseServer {
  readonly root = generateRootKey();
  readonly key = generateSigningKey();
  /** What it signs tokens with and which certificate it sends: its own, unless a test says otherwise. */
  signWith: SigningKey = this.key;
  certificate: SignedStatement = certifySigningKey(this.root.privateKey, this.key, 0);
  readonly requests: string[] = [];
  private server!: Server;
  url = '';

  async start(): Promise<this> {
    this.server = createServer(async (req, res) => {
      let text = '';
      for await (const chunk of req) text += chunk;
      this.requests.push(`${req.method} ${req.url}`);
      const body = text ? (JSON.parse(text) as { fingerprint?: string }) : {};
      const answer = this.answer(`${req.method} ${req.url}`, body.fingerprint);
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** A license "issued" for the machine: trial or permanent, forever. */
  issued(fp: string, kind: 'trial' | 'permanent', now = Date.now()): { token: string; certificate: SignedStatement; body: object } {
    const trialEnd = kind === 'trial' ? now + 3650 * DAY : null;
    const token = tokenFor({ key: this.signWith, fingerprint: fp, kind, issuedAt: now, leaseEndsAt: now + 3650 * DAY, licenseExpiresAt: trialEnd, licenseId: 1, activationId: 1 });
    const license = { id: 1, kind, status: 'active', seats: 1, expiresAt: trialEnd && new Date(trialEnd).toISOString(), createdAt: new Date(now).toISOString() };
    const activation = { id: 1, fingerprint: fp, active: true, createdAt: new Date(now).toISOString() };
    return { token, certificate: this.certificate, body: { valid: true, license, activation, token, certificate: this.certificate } };
  }

  private answer(route: string, fp = '0'.repeat(64)): { status: number; body: unknown } {
    if (route === 'POST /v1/trials') return { status: 201, body: this.issued(fp, 'trial').body };
    if (route === 'POST /v1/activations' || route === 'POST /v1/validate') return { status: 201, body: this.issued(fp, 'permanent').body };
    if (route === 'GET /.well-known/jwks.json') return { status: 200, body: { keys: [publicJwk(this.key)] } };
    if (route === 'GET /.well-known/ferry-keys.json') {
      return { status: 200, body: { root: rootPublicPem(this.root.publicKey), keys: [{ kid: this.key.kid, certificate: this.certificate }] } };
    }
    return { status: 404, body: { error: { code: 'NOT_FOUND', message: 'no route' } } };
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function kidOf(token: string): string {
  return (JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;
}

async function deadServerUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`;
}

async function newPermanentKey(server: TestServer): Promise<string> {
  const res = await request(`${server.url}/v1/admin/licenses`, { token: server.adminToken, body: { kind: 'permanent', seats: 1 } });
  assert.equal(res.status, 201);
  return res.body.license.key as string;
}

/** A license.json written by hand: the fields ferry writes, with what the writer chose. */
function writeLicense(machine: Machine, fields: Partial<Omit<LicenseState, 'format'>> & Record<string, unknown>): void {
  mkdirSync(machine.home, { recursive: true });
  const state = {
    format: 2, server: 'http://127.0.0.1:9', licenseId: '1', kind: 'permanent', licenseExpiresAt: null, activationId: 1,
    key: null, claimCode: null, activatedAt: new Date().toISOString(), refused: null, ...fields,
  };
  writeFileSync(machine.licenseFile, JSON.stringify(state), { mode: 0o600 });
}

/** `ferry ls` against a port where nothing listens: refused for the license (18) before any connection (20). */
async function transfer(machine: Machine): Promise<Run> {
  return machine.run(['ls', `sftp://root@127.0.0.1:${await freePort()}/`]);
}

describe('the trust root: licenses only from this deployment', function () {
  let server: TestServer;
  let fake: FakeLicenseServer;
  before(async () => {
    server = await startServer();
    fake = await new FakeLicenseServer().start();
  });
  after(async () => {
    await fake.close();
    await server.close();
  });

  it('refuses a fake license server: exit 18 for a trial and for a key, and nothing is stored', async () => {
    const machine = new Machine();
    const trial = await machine.run(['activate', '--trial', '--server', fake.url]);
    expectExitCode(trial, UNTRUSTED, 'activate --trial at a fake server');
    assertOneLineError(trial, /the license that http:\/\/127\.0\.0\.1:\d+ sent \(nothing was stored\) is not certified by FERRY_TRUST_ROOT .*not the trust root's/);
    const key = await machine.run(['activate', '--key', generateKey(), '--server', fake.url]);
    expectExitCode(key, UNTRUSTED, 'activate --key at a fake server');
    assert.deepEqual(readdirSync(machine.home).filter((f) => f.startsWith('license') || f.startsWith('trust')), []);
    expectExitCode(await machine.run(['status']), 10, 'no license afterwards');
  });

  it('refuses a fake server that sends the real certificate with a token of its own key', async () => {
    const real = (await request(`${server.url}/.well-known/ferry-keys.json`)).body as { keys: { kid: string; certificate: SignedStatement }[] };
    const borrowing = await new FakeLicenseServer().start();
    try {
      // Its token even names the real kid: only the real key's signature would match the certificate.
      borrowing.signWith = { ...borrowing.key, kid: real.keys[0]!.kid };
      borrowing.certificate = real.keys[0]!.certificate;
      const machine = new Machine();
      const run = await machine.run(['activate', '--trial', '--server', borrowing.url]);
      expectExitCode(run, UNTRUSTED, 'activate with a borrowed certificate');
      assertOneLineError(run, /signature does not match/);
      assert.equal(machine.hasLicense(), false);
    } finally {
      await borrowing.close();
    }
  });

  it('keeps a licensed machine on its server: another --server (fake, or another deployment) cannot replace the license', async () => {
    const machine = new Machine();
    expectExitCode(await machine.run(['activate', '--trial', '--server', server.url]), 0, 'activate at the real server');
    const before = readFileSync(machine.licenseFile, 'utf8');
    expectExitCode(await machine.run(['activate', '--trial', '--server', fake.url]), UNTRUSTED, 'activate at the fake server');
    // A real Ferry server, but of another deployment (its own root, made on its first start).
    const other = await startServer({ dataDir: tempDir('ferry-data-other-') });
    try {
      const run = await machine.run(['activate', '--trial', '--server', other.url]);
      expectExitCode(run, UNTRUSTED, 'activate at another deployment');
      assertOneLineError(run, /not the trust root's/);
    } finally {
      await other.close();
    }
    assert.equal(readFileSync(machine.licenseFile, 'utf8'), before, 'license.json untouched');
    expectExitCode(await machine.run(['status']), 0, 'the real license still works');
  });

  it('refuses a hand-made license.json with a key and root of its own, for status and for transfers', async () => {
    const machine = new Machine();
    const { token, certificate } = fake.issued(fingerprint(machine.id), 'permanent');
    writeLicense(machine, { token, certificate, server: fake.url });
    const status = await machine.run(['status']);
    expectExitCode(status, UNTRUSTED, 'status with a hand-made license');
    assertOneLineError(status, /the stored license was not issued under this build's trust root, or was edited \(the signature is not the trust root's\)/);
    const ls = await transfer(machine);
    expectExitCode(ls, UNTRUSTED, 'a transfer with a hand-made license');
    assert.deepEqual(fake.requests.filter((r) => r.includes('validate')), [], 'refused offline: nothing asked of its server');
    // It holds no seat here, so it does not stand in the way of a real activation.
    expectExitCode(await machine.run(['activate', '--trial', '--server', server.url]), 0, 'activate over the hand-made license');
    expectExitCode(await machine.run(['status']), 0, 'status with the real license');
  });

  it('refuses a real token with a self-made certificate, and a real token with edited claims', async () => {
    const machine = new Machine();
    expectExitCode(await machine.run(['activate', '--trial', '--server', server.url]), 0, 'activate');
    const real = machine.license();
    // The real key, certified by a root of one's own: the certificate is not the deployment root's.
    const selfMade = certifySigningKey(generateRootKey().privateKey, server.app.signingKeys.active, 0);
    writeLicense(machine, { ...real, certificate: selfMade });
    expectExitCode(await machine.run(['status']), UNTRUSTED, 'status with a self-made certificate');
    expectExitCode(await transfer(machine), UNTRUSTED, 'a transfer with a self-made certificate');

    const [header, payload, signature] = real.token.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as { lic_exp: number };
    claims.lic_exp += 365 * 24 * 3600;
    writeLicense(machine, { ...real, token: [header, Buffer.from(JSON.stringify(claims)).toString('base64url'), signature].join('.') });
    const edited = await machine.run(['status']);
    expectExitCode(edited, UNTRUSTED, 'status with an edited token');
    assertOneLineError(edited, /signature does not match/);

    // The file's own fields too: a trial that calls itself permanent would stop reporting its use.
    writeLicense(machine, { ...real, kind: 'permanent' });
    const relabelled = await machine.run(['status']);
    expectExitCode(relabelled, UNTRUSTED, 'status with the kind edited');
    assertOneLineError(relabelled, /its kind, license or activation is not what its signed token says/);

    writeLicense(machine, { ...real });
    expectExitCode(await machine.run(['status']), 0, 'the real license, put back, works');
  });

  it('confirms a license.json of the earlier format online once, and refuses one made up for a fake server', async () => {
    const machine = new Machine();
    expectExitCode(await machine.run(['activate', '--trial', '--server', server.url]), 0, 'activate');
    const { certificate: _kept, ...state } = machine.license();
    const jwks = (await request(`${server.url}/.well-known/jwks.json`)).body;
    writeLicense(machine, { ...state, format: 1, jwks });

    const offline = await machine.run(['status', '--server', await deadServerUrl()]);
    expectExitCode(offline, 15, 'an old-format license while the server is away');
    assertOneLineError(offline, /license\.json was written by an earlier ferry and must be confirmed once by its license server, but cannot reach/);
    const online = await machine.run(['status', '--json']);
    expectExitCode(online, 0, 'an old-format license, confirmed online');
    assert.equal((JSON.parse(online.stdout) as StatusReport).renewed, true);
    assert.equal(machine.license().format, 2);
    assert.ok(machine.license().certificate, 'the certificate is kept from now on');

    const forged = new Machine();
    const { token } = fake.issued(fingerprint(forged.id), 'permanent');
    writeLicense(forged, { token, server: fake.url, format: 1, jwks: { keys: [publicJwk(fake.key)] }, key: generateKey() });
    const run = await forged.run(['status']);
    expectExitCode(run, UNTRUSTED, 'an old-format license of a fake server');
    assertOneLineError(run, /earlier ferry .* is not certified by FERRY_TRUST_ROOT/);
  });

  it('serves the root and its certificates, and sends the signing key\'s certificate with every token', async () => {
    const keys = await request(`${server.url}/.well-known/ferry-keys.json`);
    assert.equal(keys.status, 200);
    assert.equal(keys.body.root, readFileSync(TEST_ROOT.publicFile, 'utf8'));
    assert.match(keys.body.rootFingerprint, /^([0-9a-f]{4}:){15}[0-9a-f]{4}$/);
    const trial = await request(`${server.url}/v1/trials`, { body: { fingerprint: fingerprint(new Machine().id) } });
    assert.equal(trial.status, 201);
    const verified = verifyCertifiedToken(trial.body.token, trial.body.certificate, TEST_ROOT.publicKey);
    assert.equal(verified.claims.kind, 'trial');
    assert.deepEqual(keys.body.keys.map((k: { kid: string }) => k.kid), [kidOf(trial.body.token)]);
    const printed = await serverCommand(['trust-root'], { FERRY_DATA_DIR: server.config.dataDir, ADMIN_TOKEN: server.adminToken });
    assert.equal(printed.code, 0, printed.stderr);
    assert.equal(printed.stdout, keys.body.root);
  });
});

describe('the trust root of a development build', function () {
  it('trusts the root of its first server when FERRY_TRUST_ROOT is unset, says so loudly, and then no other', async () => {
    const server = await startServer();
    const other = await startServer({ dataDir: tempDir('ferry-data-other-') });
    const fake = await new FakeLicenseServer().start();
    try {
      const machine = new Machine();
      const noRoot = { FERRY_TRUST_ROOT: '' };
      const first = await machine.run(['activate', '--trial', '--server', server.url], { env: noRoot });
      expectExitCode(first, 0, 'activate without FERRY_TRUST_ROOT');
      assert.match(first.stderr, new RegExp(`^ferry: development build: trusting the root of ${server.url} \\(SHA-256 [0-9a-f:]+\\) from now on`, 'm'));
      assert.ok(existsSync(join(machine.home, 'trust-root.json')));
      const status = await machine.run(['status'], { env: noRoot });
      expectExitCode(status, 0, 'status');
      assert.equal(status.stderr, '', 'said once, at the first activation');
      expectExitCode(await machine.run(['deactivate'], { env: noRoot }), 0, 'deactivate');
      for (const url of [other.url, fake.url]) {
        const run = await machine.run(['activate', '--trial', '--server', url], { env: noRoot });
        expectExitCode(run, UNTRUSTED, `activate at ${url} after trusting the first server's root`);
        assertOneLineError(run, /is not certified by the root this development build trusted from/);
      }
    } finally {
      await fake.close();
      await other.close();
      await server.close();
    }
  });
});

describe('the trust root of a release build', function () {
  // A copy of the built agent with the build-info.json that `npm run package` writes, inside dist/
  // so that node_modules is found as from the real build.
  const dist = fileURLToPath(new URL('../', import.meta.url));
  const release = join(dist, `.release-test-${process.pid}`);
  before(() => {
    for (const part of ['agent', 'licensing']) cpSync(join(dist, part), join(release, part), { recursive: true });
    const info = { version: '9.9.9', build: 'test', release: true, trustRoot: readFileSync(TEST_ROOT.publicFile, 'utf8'), server: null };
    writeFileSync(join(release, 'agent', 'build-info.json'), JSON.stringify(info));
  });
  after(() => rmSync(release, { recursive: true, force: true }));

  it('trusts only its built-in root: FERRY_TRUST_ROOT changes nothing', async () => {
    const server = await startServer();
    const other = await startServer({ dataDir: tempDir('ferry-data-other-') });
    try {
      const otherRoot = { FERRY_TRUST_ROOT: join(other.config.dataDir, 'root', 'root-public.pem') };
      const releaseCli = join(release, 'agent', 'cli.js');
      const refused = await new Machine({ cli: releaseCli }).run(['activate', '--trial', '--server', other.url], { env: otherRoot });
      expectExitCode(refused, UNTRUSTED, 'a release build at another deployment, FERRY_TRUST_ROOT pointing at its root');
      assertOneLineError(refused, /is not certified by the root built into this release/);
      const machine = new Machine({ cli: releaseCli });
      expectExitCode(await machine.run(['activate', '--trial', '--server', server.url], { env: otherRoot }), 0, 'a release build at its own deployment');
      expectExitCode(await machine.run(['status'], { env: { FERRY_TRUST_ROOT: '' } }), 0, 'status');
      assert.equal(existsSync(join(machine.home, 'trust-root.json')), false, 'a release build pins nothing');
      // The same FERRY_TRUST_ROOT does choose the root of a development build.
      expectExitCode(await new Machine().run(['activate', '--trial', '--server', other.url], { env: otherRoot }), 0, 'a development build');
    } finally {
      await other.close();
      await server.close();
    }
  });
});

describe('signing keys certified by the root', function () {
  it('rotates only with the root present, never signs with an uncertified key, and keeps agents working across a certified rotation, offline too', async () => {
    const first = await startServer();
    const { dataDir, databaseUrl } = first.config;
    const port = Number(new URL(first.url).port);
    const env = { FERRY_DATA_DIR: dataDir, ADMIN_TOKEN: first.adminToken };
    const restart = () => startServer({ databaseUrl, dataDir, adminToken: first.adminToken, port });
    let current: TestServer = first;
    try {
      const machine = new Machine();
      expectExitCode(await machine.run(['activate', '--key', await newPermanentKey(first), '--server', first.url]), 0, 'activate');
      const oldKid = kidOf(machine.license().token);
      await first.close();

      // The operator has moved the root private key offline.
      const offline = join(tempDir('ferry-usb-'), 'root-key.pem');
      renameSync(join(dataDir, 'root', 'root-key.pem'), offline);
      const keyFiles = () => readdirSync(join(dataDir, 'signing-keys')).filter((f) => f.endsWith('.pem'));
      const refused = await serverCommand(['keys', 'rotate'], env);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /^ferry-server: keys rotate certifies the new key with the root, but the root private key .*root-key\.pem is not here: bring it back from where it is kept offline \(or set FERRY_ROOT_KEY to its file\); nothing was changed\n$/);
      assert.equal(keyFiles().length, 1, 'no key was added');

      // A newer key without a certificate (copied in by hand): it must not sign.
      const stray = generateSigningKey();
      writeFileSync(join(dataDir, 'signing-keys', `${Date.now()}-${stray.kid}.pem`), stray.privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
      const uncertifiedNewest = await startServerProcess({
        ...env, DATABASE_URL: databaseUrl, REDIS_URL: first.config.redisUrl, REDIS_PREFIX: first.config.redisPrefix, LOG_LEVEL: 'warn',
      });
      try {
        const trial = await request(`${uncertifiedNewest.url}/v1/trials`, { body: { fingerprint: fingerprint(new Machine().id) } });
        assert.equal(kidOf(trial.body.token), oldKid, 'the certified key signs');
        const served = await request(`${uncertifiedNewest.url}/.well-known/ferry-keys.json`);
        assert.deepEqual(served.body.keys.map((k: { kid: string }) => k.kid), [oldKid]);
        assert.match(uncertifiedNewest.output(), new RegExp(`signing key ${stray.kid} is not certified by the root, so it does not sign: run .{1,2}ferry-server keys certify ${stray.kid}`));
      } finally {
        await uncertifiedNewest.stop();
      }

      // The root is brought back on removable media: the key is certified, and signs from the restart.
      const certified = await serverCommand(['keys', 'certify', stray.kid], { ...env, FERRY_ROOT_KEY: offline });
      assert.equal(certified.code, 0, certified.stderr);
      current = await restart();
      const due = Date.now() + POLICIES.permanent.leaseMs - POLICIES.permanent.renewWhenLeftMs + HOUR;
      const renewed = await machine.run(['status', '--json'], { now: due });
      expectExitCode(renewed, 0, 'status when renewal is due, after the rotation');
      assert.equal((JSON.parse(renewed.stdout) as StatusReport).renewed, true);
      assert.equal(kidOf(machine.license().token), stray.kid, 'a token of the new key');
      assert.match(machine.license().certificate!.payload, new RegExp(`"kid":"${stray.kid}"`), 'with its certificate');

      // Offline afterwards: the new key's token stands on its stored certificate alone.
      const dead = await deadServerUrl();
      expectExitCode(await machine.run(['status', '--server', dead], { now: due + DAY }), 0, 'status offline');
      expectExitCode(await machine.run(['ls', `sftp://root@127.0.0.1:${await freePort()}/`], { now: due + DAY }), 20, 'a transfer gets past the license');
    } finally {
      await current.close();
    }
  });
});
