import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fingerprint, generateKey, POLICIES } from '../licensing/index.js';
import type { StatusReport } from '../agent/commands/status.js';
import { rotateKey } from '../server/keys/store.js';
import { TEST_ROOT } from './support/trust-root.js';
import { request } from './support/http.js';
import { freePort } from './support/processes.js';
import { openDb, startServer, type TestServer } from './support/server.js';
import { startTcpProxy } from './support/tcp-proxy.js';
import { DAY, HOUR, tempDir } from './support/agent-fixtures.js';
import { Machine, type Run } from './support/ferry-machine.js';

function expectExitCode(run: Run, code: number, what: string): void {
  assert.equal(run.code, code, `${what}: exit ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
}

/** A stderr of exactly one `ferry: …` line (plus any warnings before it), never a stack trace. */
function assertOneLineError(run: Run, pattern: RegExp): void {
  const lines = run.stderr.trimEnd().split('\n');
  assert.match(lines.at(-1)!, /^ferry: /);
  assert.match(lines.at(-1)!, pattern);
  assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
}

async function newPermanentLicense(server: TestServer, seats: number): Promise<{ id: number; key: string }> {
  const res = await request(`${server.url}/v1/admin/licenses`, { token: server.adminToken, body: { kind: 'permanent', seats } });
  assert.equal(res.status, 201);
  return { id: res.body.license.id, key: res.body.license.key };
}

async function usageKinds(server: TestServer, activationId: number): Promise<string[]> {
  const db = await openDb(server.config.databaseUrl);
  try {
    const [rows] = await db.query('SELECT kind FROM usage_events WHERE activation_id = ? ORDER BY occurred_at, id', [activationId]);
    return (rows as { kind: string }[]).map((r) => r.kind);
  } finally {
    await db.end();
  }
}

/**
 * An https front for the test server, with a self-signed certificate for 127.0.0.1 made by openssl
 * for this run: a license server reached over TLS, as in production.
 */
async function startHttpsProxy(target: string): Promise<{ url: string; certFile: string; requests(): number; close(): Promise<void> }> {
  const dir = tempDir('ferry-tls-');
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile,
  ], { stdio: 'ignore' });
  let count = 0;
  const upstream = new URL(target);
  const server = createHttpsServer({ key: readFileSync(keyFile), cert: readFileSync(certFile) }, (req, res) => {
    count++;
    const forward = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    certFile,
    requests: () => count,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A loopback port where nothing listens: a license server that is down. */
async function deadServerUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`;
}

describe('ferry activate, status, deactivate (the built CLI against a running server)', function () {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  describe('trial', () => {
    it('starts a trial and prints its end date and claim code, with where to enter it', async () => {
      const machine = new Machine();
      const run = await machine.run(['activate', '--trial', '--server', server.url]);
      expectExitCode(run, 0, 'activate --trial');
      assert.match(run.stdout, /^Trial started on this machine: it ends \d{4}-\d\d-\d\d \d\d:\d\d UTC\. Claim code [0-9A-Z]{10}: enter it in MyAccount to register this trial\.\n$/);
      const state = machine.license();
      assert.equal(state.kind, 'trial');
      assert.equal(state.server, server.url);
      assert.match(state.certificate?.payload ?? '', /"type":"ferry-signing-key"/, 'the root\'s certificate of the signing key is kept');
      assert.equal(statSync(machine.home).mode & 0o777, 0o700);
      assert.equal(statSync(join(machine.home, 'license.json')).mode & 0o777, 0o600);
    });

    it('starts one trial when two ferry commands of one machine ask at once (they send the same secret)', async () => {
      const machine = new Machine();
      const runs = await Promise.all([1, 2].map(() => machine.run(['activate', '--trial', '--server', server.url])));
      runs.forEach((run, i) => expectExitCode(run, 0, `command ${i + 1}`));
      const ids = runs.map((run) => /Claim code ([0-9A-Z]{10})/.exec(run.stdout)?.[1]);
      assert.equal(ids[0], ids[1]);
      assert.equal(statSync(join(machine.home, 'trial-secret')).mode & 0o777, 0o600);
    });

    it('says in one line, exit 2, when the trial secret in the ferry home is damaged', async () => {
      const machine = new Machine();
      writeFileSync(join(machine.home, 'trial-secret'), 'not a secret\n', { mode: 0o600 });
      const run = await machine.run(['activate', '--trial', '--server', server.url]);
      expectExitCode(run, 2, 'activate with a damaged secret');
      assertOneLineError(run, /trial-secret is damaged/);
    });

    it('gives the same machine the same trial, with the same end date, when asked again', async () => {
      const machine = new Machine();
      const first = await machine.run(['activate', '--trial', '--server', server.url]);
      const firstState = machine.license();
      const again = await machine.run(['activate', '--trial', '--server', server.url]);
      expectExitCode(again, 0, 'second activate --trial');
      assert.match(again.stdout, /^This machine's trial is active: it ends/);
      assert.equal(again.stdout.match(/ends (.*?) UTC/)![1], first.stdout.match(/ends (.*?) UTC/)![1]);
      assert.equal(machine.license().licenseId, firstState.licenseId);
      assert.equal(machine.license().licenseExpiresAt, firstState.licenseExpiresAt);
    });

    it('sends an email address only after the age confirmation: off a terminal, only with --i-am-13-or-older', async () => {
      const emailOf = async (licenseId: string) => {
        const db = await openDb(server.config.databaseUrl);
        try {
          return ((await db.query('SELECT email FROM licenses WHERE id = ?', [licenseId]))[0] as { email: string | null }[])[0]!.email;
        } finally {
          await db.end();
        }
      };
      // A script without the flag: a USAGE error saying so, and nothing sent.
      const script = new Machine();
      const refused = await script.run(['activate', '--trial', '--email', 'kid@example.org', '--server', server.url]);
      expectExitCode(refused, 2, 'off a terminal without --i-am-13-or-older');
      assertOneLineError(refused, /--email needs --i-am-13-or-older when ferry is not run on a terminal/);
      assert.equal(script.hasLicense(), false);
      const flagged = new Machine();
      expectExitCode(await flagged.run(['activate', '--trial', '--email', 'teen@example.org', '--i-am-13-or-older', '--server', server.url]), 0, 'with the flag');
      assert.equal(await emailOf(flagged.license().licenseId), 'teen@example.org');
      const db = await openDb(server.config.databaseUrl);
      try {
        const [rows] = await db.query("SELECT COUNT(*) AS n FROM licenses WHERE email = 'kid@example.org'");
        assert.deepEqual(rows, [{ n: 0 }], 'no address sent without the confirmation');
      } finally {
        await db.end();
      }
    });

    it('sends the email only when given with --email, with the marketing choice', async () => {
      const withEmail = new Machine();
      expectExitCode(await withEmail.run(['activate', '--trial', '--email', 'ada@example.org', '--marketing', '--i-am-13-or-older', '--server', server.url]), 0, 'with --email');
      const without = new Machine();
      expectExitCode(await without.run(['activate', '--trial', '--server', server.url]), 0, 'without --email');
      const db = await openDb(server.config.databaseUrl);
      try {
        const [rows] = await db.query('SELECT id, email, marketing_opt_in FROM licenses WHERE id IN (?, ?) ORDER BY id', [
          withEmail.license().licenseId, without.license().licenseId,
        ]);
        const byId = new Map((rows as { id: number; email: string | null; marketing_opt_in: number }[]).map((r) => [String(r.id), r]));
        assert.equal(byId.get(withEmail.license().licenseId)!.email, 'ada@example.org');
        assert.equal(byId.get(withEmail.license().licenseId)!.marketing_opt_in, 1);
        assert.equal(byId.get(without.license().licenseId)!.email, null);
      } finally {
        await db.end();
      }
    });

    it('renews the lease once it is due and keeps working', async () => {
      const machine = new Machine();
      await machine.run(['activate', '--trial', '--server', server.url]);
      const fresh = JSON.parse((await machine.run(['status', '--json'])).stdout) as StatusReport;
      assert.equal(fresh.renewed, false, 'a fresh lease is not renewed');
      const run = await machine.run(['status', '--json'], { now: Date.now() + POLICIES.trial.leaseMs - POLICIES.trial.renewWhenLeftMs + HOUR });
      expectExitCode(run, 0, 'status when renewal is due');
      const due = JSON.parse(run.stdout) as StatusReport;
      assert.equal(due.renewed, true);
      assert.equal(due.offline, false);
      assert.ok(Date.parse(due.leaseEndsAt!) >= Date.parse(fresh.leaseEndsAt!));
    });

    it('exits 11 once the trial has ended, even offline, and says how to enter a key', async () => {
      const machine = new Machine();
      await machine.run(['activate', '--trial', '--server', server.url]);
      const afterEnd = Date.parse(machine.license().licenseExpiresAt!) + DAY;
      const online = await machine.run(['status'], { now: afterEnd });
      expectExitCode(online, 11, 'status after the trial end');
      assertOneLineError(online, /trial .*ended on .*ferry activate --key KEY/);
      const offline = await machine.run(['status', '--server', await deadServerUrl()], { now: afterEnd });
      expectExitCode(offline, 11, 'status after the trial end, offline');
      // Setting the clock back to before the end does not bring the trial back.
      const setBack = await machine.run(['status']);
      expectExitCode(setBack, 11, 'status with the clock set back');
      assert.match(setBack.stderr, /clock was set back/);
    });

    it('detects a clock set back, warns on stderr and reports it during the trial', async () => {
      const machine = new Machine();
      await machine.run(['activate', '--trial', '--server', server.url]);
      const ahead = await machine.run(['status'], { now: Date.now() + 2 * HOUR });
      expectExitCode(ahead, 0, 'status two hours ahead');
      const back = await machine.run(['status', '--json']);
      expectExitCode(back, 0, 'status with the clock back to now');
      assert.match(back.stderr, /^ferry: the clock was set back: it says .* but .* was seen before/);
      const report = JSON.parse(back.stdout) as StatusReport;
      assert.equal(report.clock.setBack, true);
      assert.ok((await usageKinds(server, machine.license().activationId)).includes('clock_set_back'));
    });

    it('exits 17 when this machine was deactivated elsewhere (e.g. in MyAccount)', async () => {
      const machine = new Machine();
      await machine.run(['activate', '--trial', '--server', server.url]);
      const { activationId, token } = machine.license();
      const removed = await request(`${server.url}/v1/activations/${activationId}`, { method: 'DELETE', token });
      assert.equal(removed.status, 204);
      const run = await machine.run(['status'], { now: Date.now() + 13 * HOUR });
      expectExitCode(run, 17, 'status after deactivation elsewhere');
      assertOneLineError(run, /deactivated elsewhere/);
    });
  });

  describe('a second machine that knows only the machine id', () => {
    /** Machine A's trial, started with an email; B: another ferry home with A's machine id (a clone, or someone who read it). */
    async function aAndItsClone(): Promise<{ a: Machine; b: Machine; claimCode: string; fingerprint: string }> {
      const a = new Machine();
      const started = await a.run(['activate', '--trial', '--email', 'ada@example.org', '--i-am-13-or-older', '--server', server.url]);
      expectExitCode(started, 0, 'A starts its trial');
      const claimCode = /Claim code ([0-9A-Z]{10})/.exec(started.stdout)![1]!;
      return { a, b: new Machine({ id: a.id }), claimCode, fingerprint: fingerprint(a.id) };
    }

    async function trialContact(licenseId: string): Promise<unknown> {
      const db = await openDb(server.config.databaseUrl);
      try {
        const [rows] = await db.query('SELECT email, marketing_opt_in, customer_id FROM licenses WHERE id = ?', [licenseId]);
        return (rows as object[])[0];
      } finally {
        await db.end();
      }
    }

    it('gets no trial, no token and no claim code, through the agent or by hand, and changes nothing', async () => {
      const { a, b, claimCode, fingerprint } = await aAndItsClone();
      const before = await trialContact(a.license().licenseId);

      for (const args of [['activate', '--trial'], ['activate', '--trial', '--email', 'mallory@example.org', '--marketing', '--i-am-13-or-older']]) {
        const run = await b.run([...args, '--server', server.url]);
        expectExitCode(run, 19, `B: ${args.join(' ')}`);
        assertOneLineError(run, /already had its trial .*activation secret is not in this ferry home/);
        assert.equal(run.stdout, '');
        assert.ok(!run.stderr.includes(claimCode), 'no claim code for B');
        assert.equal(b.hasLicense(), false);
      }
      const byHand = await request(`${server.url}/v1/trials`, { body: { fingerprint, email: 'mallory@example.org' } });
      assert.equal(byHand.status, 409);
      assert.equal(byHand.body.error.code, 'TRIAL_EXISTS');
      assert.equal(byHand.body.token, undefined);
      assert.ok(!JSON.stringify(byHand.body).includes(claimCode));
      assert.deepEqual(await trialContact(a.license().licenseId), before, 'email, marketing choice and claim unchanged');

      // B has nothing to deactivate A with.
      expectExitCode(await b.run(['deactivate', '--server', server.url]), 10, 'B deactivates');
      const { activationId } = a.license();
      assert.equal((await request(`${server.url}/v1/activations/${activationId}`, { method: 'DELETE' })).status, 401);
    });

    it('leaves A working: its token renews, its status shows its claim code, and it can deactivate and come back', async () => {
      const { a, b, claimCode } = await aAndItsClone();
      expectExitCode(await b.run(['activate', '--trial', '--server', server.url]), 19, 'B asks for the trial');

      const due = await a.run(['status', '--json'], { now: Date.now() + POLICIES.trial.leaseMs - POLICIES.trial.renewWhenLeftMs + HOUR });
      expectExitCode(due, 0, 'A renews');
      const report = JSON.parse(due.stdout) as StatusReport;
      assert.equal(report.renewed, true);
      assert.equal(report.claimCode, claimCode);
      assert.match((await a.run(['status'])).stdout, new RegExp(`Claim code: +${claimCode}`));

      const firstEnd = a.license().licenseExpiresAt;
      expectExitCode(await a.run(['deactivate']), 0, 'A deactivates');
      assert.equal(statSync(join(a.home, 'trial-secret')).mode & 0o777, 0o600, 'the secret stays, private');
      // Even now that A's activation is off, B gets nothing.
      expectExitCode(await b.run(['activate', '--trial', '--server', server.url]), 19, 'B asks while A is deactivated');
      const back = await a.run(['activate', '--trial', '--server', server.url]);
      expectExitCode(back, 0, 'A activates again');
      assert.match(back.stdout, new RegExp(`^This machine's trial is active: .*Claim code ${claimCode}`));
      assert.equal(a.license().licenseExpiresAt, firstEnd, 'same trial, same end date');
    });
  });

  describe('license keys', () => {
    it('refuses a mistyped key with exit 3 and one line, without any request', async () => {
      let requests = 0;
      const counter = createHttpServer((_req, res) => {
        requests++;
        res.writeHead(500).end();
      });
      await new Promise<void>((resolve) => counter.listen(0, '127.0.0.1', resolve));
      try {
        const key = generateKey();
        const typo = key.slice(0, 3) + (key[3] === 'A' ? 'B' : 'A') + key.slice(4);
        const run = await new Machine().run(['activate', '--key', typo, '--server', `http://127.0.0.1:${(counter.address() as AddressInfo).port}`]);
        expectExitCode(run, 3, 'activate with a mistyped key');
        assert.equal(run.stderr, 'ferry: bad license key: the key is mistyped: its check character does not match\n');
        assert.equal(requests, 0);
      } finally {
        await new Promise((resolve) => counter.close(resolve));
      }
    });

    it('exits 14 for a well-formed key the server does not know', async () => {
      const run = await new Machine().run(['activate', '--key', generateKey(), '--server', server.url]);
      expectExitCode(run, 14, 'activate with an unknown key');
      assertOneLineError(run, /does not know this key/);
    });

    it('activates a key, and exits 13 on a second machine when its one seat is taken', async () => {
      const { key } = await newPermanentLicense(server, 1);
      const first = await new Machine().run(['activate', '--key', key, '--server', server.url]);
      expectExitCode(first, 0, 'first machine');
      assert.match(first.stdout, /^License \d+ \(permanent\) activated on this machine: activation \d+\.\n$/);
      const second = await new Machine().run(['activate', '--key', key.toLowerCase().replace(/-/g, ''), '--server', server.url]);
      expectExitCode(second, 13, 'second machine');
      assertOneLineError(second, /seats .* in use/);
    });

    it('frees the seat on deactivate, so that another machine can activate', async () => {
      const { key } = await newPermanentLicense(server, 1);
      const laptop = new Machine();
      const desktop = new Machine();
      expectExitCode(await laptop.run(['activate', '--key', key, '--server', server.url]), 0, 'laptop activates');
      expectExitCode(await desktop.run(['activate', '--key', key, '--server', server.url]), 13, 'desktop finds no seat');
      const off = await laptop.run(['deactivate']);
      expectExitCode(off, 0, 'laptop deactivates');
      assert.match(off.stdout, /its seat is free/);
      assert.equal(laptop.hasLicense(), false);
      expectExitCode(await laptop.run(['status']), 10, 'laptop has no license any more');
      expectExitCode(await desktop.run(['activate', '--key', key, '--server', server.url]), 0, 'desktop activates');
    });

    it('moves a trial machine to a purchased key on the same server, and stops reporting', async () => {
      const machine = new Machine();
      expectExitCode(await machine.run(['activate', '--trial', '--server', server.url]), 0, 'trial');
      const trialActivation = machine.license().activationId;
      const { key } = await newPermanentLicense(server, 1);
      const run = await machine.run(['activate', '--key', key]);
      expectExitCode(run, 0, 'activate --key without --server: the license\'s server');
      assert.equal(machine.license().kind, 'permanent');
      expectExitCode(await machine.run(['status']), 0, 'status');
      assert.deepEqual(machine.spooledKinds(), []);
      assert.deepEqual(await usageKinds(server, trialActivation), ['activate'], 'nothing more reported after the key');
      const privacy = await machine.run(['privacy']);
      assert.match(privacy.stdout, /reporting: +off: this machine has a permanent license/);
    });

    it('exits 12 at the next renewal once the license is revoked, and stays refused offline', async () => {
      const { id, key } = await newPermanentLicense(server, 2);
      const machine = new Machine();
      expectExitCode(await machine.run(['activate', '--key', key, '--server', server.url]), 0, 'activate');
      const revoked = await request(`${server.url}/v1/admin/licenses/${id}/revoke`, { method: 'POST', token: server.adminToken });
      assert.equal(revoked.status, 200);
      // The lease is fresh: revocation takes effect at the next validation, not before.
      expectExitCode(await machine.run(['status']), 0, 'status before renewal is due');
      const due = Date.now() + POLICIES.permanent.leaseMs - POLICIES.permanent.renewWhenLeftMs + HOUR;
      const run = await machine.run(['status'], { now: due });
      expectExitCode(run, 12, 'status when renewal is due');
      assertOneLineError(run, /revoked/);
      assert.equal(machine.hasLicense(), true, 'nothing is removed, the license is marked');
      expectExitCode(await machine.run(['status', '--server', await deadServerUrl()], { now: due }), 12, 'status offline');
    });

    it('keeps working offline within the grace of a permanent license, then needs the server', async () => {
      const { key } = await newPermanentLicense(server, 1);
      const machine = new Machine();
      expectExitCode(await machine.run(['activate', '--key', key, '--server', server.url]), 0, 'activate');
      const dead = await deadServerUrl();
      const inGrace = await machine.run(['status', '--server', dead], { now: Date.now() + POLICIES.permanent.leaseMs + DAY });
      expectExitCode(inGrace, 0, 'status offline in grace');
      assert.match(inGrace.stdout, /offline, grace until \d{4}-\d\d-\d\d/);
      const pastGrace = await machine.run(['status', '--server', dead], {
        now: Date.now() + POLICIES.permanent.leaseMs + POLICIES.permanent.offlineGraceMs + DAY,
      });
      expectExitCode(pastGrace, 15, 'status offline past grace');
      assertOneLineError(pastGrace, /lease ended on .*cannot reach the license server/);
    });
  });

  describe('status --json', () => {
    it('prints one JSON object with what this machine knows', async () => {
      const machine = new Machine();
      await machine.run(['activate', '--trial', '--server', server.url]);
      const run = await machine.run(['status', '--json']);
      expectExitCode(run, 0, 'status --json');
      const report = JSON.parse(run.stdout) as StatusReport;
      const state = machine.license();
      assert.equal(report.status, 'active');
      assert.equal(report.exitCode, 0);
      assert.equal(report.problem, null);
      assert.equal(report.kind, 'trial');
      assert.equal(report.licenseId, state.licenseId);
      assert.equal(report.activationId, state.activationId);
      assert.equal(report.server, server.url);
      assert.equal(Date.parse(report.trialEndsAt!), Date.parse(state.licenseExpiresAt!));
      assert.ok(Date.parse(report.leaseEndsAt!) > Date.now());
      assert.match(report.fingerprint, /^[0-9a-f]{12}…$/);
      assert.equal(report.machineIdSource, 'FERRY_MACHINE_ID');
      assert.equal(report.offline, false);
      assert.equal(report.clock.setBack, false);
    });

    it('escapes what the license server said before it reaches the terminal', async () => {
      const { key } = await newPermanentLicense(server, 1);
      const machine = new Machine();
      expectExitCode(await machine.run(['activate', '--key', key, '--server', server.url]), 0, 'activate');
      // A server that refuses the renewal with a window-title escape and a bidi override in its message.
      const hostile = createHttpServer((_req, res) => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'BOOM', message: 'down \u001b]0;owned\u0007 \u202etxt' } }));
      });
      await new Promise<void>((resolve) => hostile.listen(0, '127.0.0.1', resolve));
      try {
        const url = `http://127.0.0.1:${(hostile.address() as AddressInfo).port}`;
        const dueForRenewal = Date.now() + POLICIES.permanent.leaseMs - POLICIES.permanent.renewWhenLeftMs + HOUR;
        const run = await machine.run(['status', '--server', url], { now: dueForRenewal });
        assert.match(run.stdout, /Renewal: .*down \\x1b\]0;owned\\x07 \\u202etxt/, run.stdout);
        assert.doesNotMatch(run.stdout + run.stderr, /[\u001b\u0007\u202e]/);
      } finally {
        await new Promise<void>((resolve) => hostile.close(() => resolve()));
      }
    });

    it('still prints one JSON object, and exits 10, when there is no license', async () => {
      const run = await new Machine().run(['status', '--json', '--server', server.url]);
      expectExitCode(run, 10, 'status --json without a license');
      const report = JSON.parse(run.stdout) as StatusReport;
      assert.equal(report.status, 'no_license');
      assert.equal(report.problem?.exit, 'NO_LICENSE');
    });
  });

  describe('when the license server cannot be reached', () => {
    it('exits 15 on activation and says which server it tried', async () => {
      const dead = await deadServerUrl();
      const run = await new Machine().run(['activate', '--trial', '--server', dead]);
      expectExitCode(run, 15, 'activate --trial against a dead port');
      assert.equal(run.stderr, `ferry: cannot reach the license server at ${dead} (connection refused)\n`);
    });

    it('talks to a license server over https when it trusts the certificate, and refuses it otherwise', async () => {
      const proxy = await startHttpsProxy(server.url);
      try {
        const untrusted = await new Machine().run(['activate', '--trial', '--server', proxy.url]);
        expectExitCode(untrusted, 15, 'activate against a self-signed certificate');
        assertOneLineError(untrusted, /cannot reach the license server at https:\/\/127\.0\.0\.1:\d+ \(its TLS certificate was refused: self-signed certificate\)/);
        const machine = new Machine();
        const trusted = await machine.run(['activate', '--trial', '--server', proxy.url], { env: { NODE_EXTRA_CA_CERTS: proxy.certFile } });
        expectExitCode(trusted, 0, 'activate over https with the certificate trusted');
        assert.equal(machine.license().server, proxy.url);
        assert.ok(proxy.requests() >= 1, 'the activation went through the https server');
      } finally {
        await proxy.close();
      }
    });

    it('keeps the license on deactivate, so that the seat can still be freed later', async () => {
      const machine = new Machine();
      await machine.run(['activate', '--trial', '--server', server.url]);
      const run = await machine.run(['deactivate', '--server', await deadServerUrl()]);
      expectExitCode(run, 15, 'deactivate while offline');
      assert.equal(machine.hasLicense(), true);
      expectExitCode(await machine.run(['deactivate']), 0, 'deactivate once the server is back');
    });

    it('keeps usage events in the spool while the server is down and sends them when it is back', async () => {
      const proxy = await startTcpProxy('127.0.0.1', Number(new URL(server.url).port));
      try {
        const machine = new Machine();
        expectExitCode(await machine.run(['activate', '--trial', '--server', `http://127.0.0.1:${proxy.port}`]), 0, 'activate');
        assert.deepEqual(machine.spooledKinds(), [], 'sent at once while the server is up');

        await proxy.cut();
        expectExitCode(await machine.run(['status']), 0, 'status while the server is down');
        expectExitCode(await machine.run(['privacy']), 0, 'privacy while the server is down');
        assert.deepEqual(machine.spooledKinds(), ['status', 'privacy']);
        const privacy = await machine.run(['privacy']);
        assert.match(privacy.stdout, /waiting events: 3/);

        await proxy.restore();
        expectExitCode(await machine.run(['status']), 0, 'status once the server is back');
        assert.deepEqual(machine.spooledKinds(), []);
        assert.deepEqual(await usageKinds(server, machine.license().activationId), ['activate', 'status', 'privacy', 'privacy', 'status']);
      } finally {
        await proxy.close();
      }
    });
  });

  describe('privacy', () => {
    it('lists what is reported and this machine\'s fingerprint and locale', async () => {
      const machine = new Machine();
      const run = await machine.run(['privacy']);
      expectExitCode(run, 0, 'privacy');
      for (const phrase of [/HMAC-SHA256 of the OS machine id, never the id itself/, /locale/, /date and time/,
        /never file names, paths,\s+host names/, /IP address/, /During a trial only/, /permanent license sends nothing beyond/,
        /--email/, /fingerprint: +[0-9a-f]{64}/, /locale: +\S+/, /reporting: +off/, /waiting events: 0/]) {
        assert.match(run.stdout, phrase);
      }
    });
  });
});

describe('ferry and a server that rotates its signing key', () => {
  it('renews with a token of the new key and its certificate', async () => {
    const first = await startServer();
    const port = Number(new URL(first.url).port);
    const machine = new Machine();
    let second: TestServer | undefined;
    try {
      const { key } = await newPermanentLicense(first, 1);
      expectExitCode(await machine.run(['activate', '--key', key, '--server', first.url]), 0, 'activate');
      const kidOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()).kid as string;
      const oldKid = kidOf(machine.license().token);
      await first.close();
      await rotateKey(first.config.dataDir, TEST_ROOT.privateKey);
      second = await startServer({ databaseUrl: first.config.databaseUrl, dataDir: first.config.dataDir, adminToken: first.adminToken, port });
      const run = await machine.run(['status'], { now: Date.now() + POLICIES.permanent.leaseMs - POLICIES.permanent.renewWhenLeftMs + HOUR });
      expectExitCode(run, 0, 'status after the rotation');
      assert.notEqual(kidOf(machine.license().token), oldKid, 'a token of the new key');
      assert.match(machine.license().certificate!.payload, new RegExp(`"kid":"${kidOf(machine.license().token)}"`));
    } finally {
      await (second ?? first).close();
    }
  });
});
