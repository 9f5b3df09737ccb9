import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { certifySigningKey, generateKey, generateRootKey, generateSigningKey, peekClaims, POLICIES, type LicenseKind, type SigningKey } from '../licensing/index.js';
import { saveLicenseState, type LicenseState } from '../agent/license-state.js';
import { checkLicense, requireLicense } from '../agent/license.js';
import { agentContext, DAY, HOUR, jwksOf, newMachineId, tempDir, tokenFor } from './support/agent-fixtures.js';
import { testCertificate } from './support/trust-root.js';

/**
 * The license state machine against a scripted license server: the answers the real server gives
 * only after days (an expired lease, a rotated key), on demand.
 */
interface Seen {
  method: string;
  path: string;
  auth: string | undefined;
  body: any;
}
type Answer = { status: number; body?: unknown };

class ScriptedServer {
  readonly seen: Seen[] = [];
  keys: SigningKey[] = [generateSigningKey()];
  routes = new Map<string, (seen: Seen) => Answer>();
  private server!: Server;
  url = '';

  async start(): Promise<this> {
    this.route('GET /.well-known/jwks.json', () => ({ status: 200, body: jwksOf(...this.keys) }));
    this.server = createServer(async (req: IncomingMessage, res) => {
      let text = '';
      for await (const chunk of req) text += chunk;
      const seen: Seen = { method: req.method!, path: req.url!, auth: req.headers.authorization, body: text ? JSON.parse(text) : undefined };
      this.seen.push(seen);
      const handler = this.routes.get(`${req.method} ${req.url}`);
      const answer = handler ? handler(seen) : { status: 404, body: { error: { code: 'NOT_FOUND', message: 'no route' } } };
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(answer.body === undefined ? '' : JSON.stringify(answer.body));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  route(route: string, handler: (seen: Seen) => Answer): void {
    this.routes.set(route, handler);
  }

  paths(): string[] {
    return this.seen.map((s) => `${s.method} ${s.path}`);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function refusal(status: number, code: string): Answer {
  return { status, body: { error: { code, message: code.toLowerCase().replace(/_/g, ' ') } } };
}

const T = Date.UTC(2025, 5, 1, 12, 0, 0);

interface Setup {
  home: string;
  machine: ReturnType<typeof newMachineId>;
  env: Record<string, string>;
}

function setup(now: number): Setup {
  const home = tempDir();
  const machine = newMachineId();
  return { home, machine, env: { FERRY_HOME: home, FERRY_MACHINE_ID: machine.id, FERRY_NOW: String(now) } };
}

function licensedAnswer(
  server: ScriptedServer, s: Setup, kind: LicenseKind, issuedAt: number, status = 200, key = server.keys[0]!, certificate = testCertificate(key),
): Answer {
  const trialEnd = T + 30 * DAY;
  const token = tokenFor({
    key, fingerprint: s.machine.fingerprint, kind, issuedAt, licenseId: 7, activationId: 9,
    leaseEndsAt: issuedAt + POLICIES[kind].leaseMs, licenseExpiresAt: kind === 'trial' ? trialEnd : null,
  });
  const license = { id: 7, kind, status: 'active', seats: 1, expiresAt: kind === 'trial' ? new Date(trialEnd).toISOString() : null, createdAt: new Date(T).toISOString() };
  return { status, body: { valid: true, license, activation: { id: 9, fingerprint: s.machine.fingerprint, active: true, createdAt: new Date(T).toISOString() }, token, certificate } };
}

async function storeLicense(server: ScriptedServer, s: Setup, kind: LicenseKind, issuedAt: number, extra: Partial<LicenseState> = {}): Promise<LicenseState> {
  const { ctx } = await agentContext(s.env);
  const answer = licensedAnswer(server, s, kind, issuedAt).body as Pick<LicenseState, 'token' | 'certificate'>;
  const state: LicenseState = {
    format: 2, server: server.url, token: answer.token, licenseId: '7', kind,
    licenseExpiresAt: kind === 'trial' ? new Date(T + 30 * DAY).toISOString() : null,
    activationId: 9, key: kind === 'permanent' ? generateKey() : null, claimCode: null,
    certificate: answer.certificate, activatedAt: new Date(issuedAt).toISOString(), refused: null, ...extra,
  };
  await saveLicenseState(ctx.paths, state);
  return state;
}

function storedState(s: Setup): LicenseState {
  return JSON.parse(readFileSync(join(s.home, 'license.json'), 'utf8')) as LicenseState;
}

describe('license renewal and re-activation', () => {
  let server: ScriptedServer;
  beforeEach(async () => {
    server = await new ScriptedServer().start();
  });
  afterEach(() => server.close());

  it('uses a fresh lease without asking the server anything', async () => {
    const s = setup(T + HOUR);
    await storeLicense(server, s, 'permanent', T);
    const { ctx } = await agentContext(s.env);
    const check = await checkLicense(ctx);
    assert.equal(check.problem, null);
    assert.deepEqual(server.seen, []);
  });

  it('renews a lease that is due and stores the new token', async () => {
    const now = T + 4 * DAY;
    const s = setup(now);
    const before = await storeLicense(server, s, 'permanent', T);
    server.route('POST /v1/validate', (seen) => {
      assert.equal(seen.auth, `Bearer ${before.token}`);
      assert.deepEqual(seen.body, { fingerprint: s.machine.fingerprint });
      return licensedAnswer(server, s, 'permanent', now);
    });
    const { ctx } = await agentContext(s.env);
    const check = await checkLicense(ctx);
    assert.equal(check.problem, null);
    assert.equal(peekClaims(storedState(s).token)!.exp, Math.floor((now + POLICIES.permanent.leaseMs) / 1000));
  });

  it('activates the stored key again when the server no longer takes the old lease', async () => {
    const now = T + 30 * DAY; // lease and grace are over
    const s = setup(now);
    const before = await storeLicense(server, s, 'permanent', T);
    server.route('POST /v1/validate', () => refusal(401, 'TOKEN_EXPIRED'));
    server.route('POST /v1/activations', (seen) => {
      assert.equal(seen.body.key, before.key);
      assert.equal(seen.body.fingerprint, s.machine.fingerprint);
      return licensedAnswer(server, s, 'permanent', now);
    });
    const { ctx } = await agentContext(s.env);
    const license = await requireLicense(ctx, 'status');
    assert.equal(license.state.key, before.key);
    assert.deepEqual(server.paths(), ['POST /v1/validate', 'POST /v1/activations']);
  });

  it('asks for the same trial again when a trial lease ran out, without the email, with its secret and old token', async () => {
    const now = T + 2 * DAY;
    const s = setup(now);
    const stored = await storeLicense(server, s, 'trial', T);
    server.route('POST /v1/validate', () => refusal(401, 'TOKEN_EXPIRED'));
    server.route('POST /v1/trials', (seen) => {
      assert.equal(seen.body.fingerprint, s.machine.fingerprint);
      assert.equal(seen.body.email, undefined);
      // The secret kept in the home (made now, 0600), and the old token: it vouches for a trial from before secrets.
      assert.equal(seen.body.activationSecret, readFileSync(join(s.home, 'trial-secret'), 'utf8').trim());
      assert.match(seen.body.activationSecret, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(statSync(join(s.home, 'trial-secret')).mode & 0o777, 0o600);
      assert.equal(seen.auth, `Bearer ${stored.token}`);
      return licensedAnswer(server, s, 'trial', now);
    });
    server.route('POST /v1/usage', () => ({ status: 202, body: { accepted: 1, duplicates: 0 } }));
    const { ctx } = await agentContext(s.env);
    await requireLicense(ctx, 'status');
    await ctx.settle(); // the use is reported while the command works, and before it ends
    assert.deepEqual(server.paths(), ['POST /v1/validate', 'POST /v1/trials', 'POST /v1/usage']);
  });

  it('follows a rotation of the server\'s signing key, with the certificate that comes with the token', async () => {
    const now = T + 4 * DAY;
    const s = setup(now);
    await storeLicense(server, s, 'permanent', T);
    const rotated = generateSigningKey();
    server.keys = [rotated, ...server.keys];
    server.route('POST /v1/validate', () => licensedAnswer(server, s, 'permanent', now, 200, rotated));
    const { ctx } = await agentContext(s.env);
    assert.equal((await checkLicense(ctx)).problem, null);
    assert.deepEqual(server.paths(), ['POST /v1/validate']);
    assert.match(storedState(s).certificate!.payload, new RegExp(`"kid":"${rotated.kid}"`));
  });

  it('does not store a token under a key the trust root did not certify', async () => {
    const now = T + 4 * DAY;
    const s = setup(now);
    const before = await storeLicense(server, s, 'permanent', T);
    const stranger = generateSigningKey();
    const selfMade = certifySigningKey(generateRootKey().privateKey, stranger, 0);
    server.route('POST /v1/validate', () => licensedAnswer(server, s, 'permanent', now, 200, stranger, selfMade));
    const { ctx } = await agentContext(s.env);
    const check = await checkLicense(ctx);
    // The lease still has days left: the machine keeps working, the suspicious token is not kept.
    assert.equal(check.problem, null);
    assert.match(check.renewalProblem ?? '', /is not certified by FERRY_TRUST_ROOT/);
    assert.equal(storedState(s).token, before.token);
  });

  it('remembers a revocation, so that going offline does not bring the license back', async () => {
    const s = setup(T + 4 * DAY);
    await storeLicense(server, s, 'permanent', T);
    server.route('POST /v1/validate', () => refusal(403, 'LICENSE_REVOKED'));
    const first = await checkLicense((await agentContext(s.env)).ctx);
    assert.equal(first.problem?.exit, 'LICENSE_REVOKED');
    assert.equal(storedState(s).refused?.exit, 'LICENSE_REVOKED');

    await server.close();
    server = await new ScriptedServer().start(); // a fresh server for afterEach; the old address is dead
    const offline = await checkLicense((await agentContext({ ...s.env, FERRY_NOW: String(T + HOUR) })).ctx);
    assert.equal(offline.problem?.exit, 'LICENSE_REVOKED');
  });

  it('keeps a permanent license working offline within its grace, and says until when', async () => {
    const s = setup(T + POLICIES.permanent.leaseMs + DAY);
    await storeLicense(server, s, 'permanent', T);
    await server.close();
    server = await new ScriptedServer().start();
    const { ctx, stderr } = await agentContext(s.env);
    const license = await requireLicense(ctx, 'status');
    assert.equal(license.offline, true);
    assert.equal(license.usableUntil, T + POLICIES.permanent.leaseMs + POLICIES.permanent.offlineGraceMs);
    assert.match(stderr.join(''), /works without renewing until 2025-06-22 12:00 UTC/);
  });

  it('gives up on a server that stalls in the middle of its answer, and works offline within the grace', async () => {
    // Headers and half a body, then nothing: the timeout must cover the whole answer.
    const stalling = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"valid": tr');
    });
    await new Promise<void>((resolve) => stalling.listen(0, '127.0.0.1', resolve));
    try {
      const s = setup(T + POLICIES.permanent.leaseMs + DAY);
      await storeLicense(server, s, 'permanent', T, { server: `http://127.0.0.1:${(stalling.address() as AddressInfo).port}` });
      const { ctx, stderr } = await agentContext(s.env);
      const license = await requireLicense(ctx, 'status');
      assert.equal(license.offline, true);
      assert.match(stderr.join(''), /could not renew the license lease \(cannot reach the license server at http:\/\/127\.0\.0\.1:\d+ \(no answer within 3 s\)\)/);
    } finally {
      stalling.closeAllConnections();
      await new Promise((resolve) => stalling.close(resolve));
    }
  });

  it('treats a 503 as the server being unreachable', async () => {
    const s = setup(T + 2 * DAY);
    await storeLicense(server, s, 'trial', T);
    server.route('POST /v1/validate', () => refusal(503, 'SERVICE_UNAVAILABLE'));
    const check = await checkLicense((await agentContext(s.env)).ctx);
    assert.equal(check.problem?.exit, 'SERVER_UNREACHABLE');
    assert.match(check.problem!.message, /lease ended on 2025-06-02 12:00 UTC/);
  });

  it('reports a trial\'s use with its token, and a permanent license\'s use not at all', async () => {
    const trial = setup(T + HOUR);
    const trialState = await storeLicense(server, trial, 'trial', T);
    const batches: Seen[] = [];
    server.route('POST /v1/usage', (seen) => {
      batches.push(seen);
      return { status: 202, body: { accepted: seen.body.events.length, duplicates: 0 } };
    });
    const trialCtx = (await agentContext(trial.env)).ctx;
    await requireLicense(trialCtx, 'put');
    await trialCtx.settle();
    assert.equal(batches.length, 1);
    assert.equal(batches[0]!.auth, `Bearer ${trialState.token}`);
    assert.deepEqual(batches[0]!.body.events.map((e: { kind: string }) => e.kind), ['put']);
    assert.deepEqual(Object.keys(batches[0]!.body.events[0]).sort(), ['at', 'kind', 'locale']);
    assert.equal(batches[0]!.body.events[0].at, new Date(T + HOUR).toISOString());

    const permanent = setup(T + HOUR);
    await storeLicense(server, permanent, 'permanent', T);
    const permanentCtx = (await agentContext(permanent.env)).ctx;
    await requireLicense(permanentCtx, 'put');
    await permanentCtx.settle();
    assert.equal(batches.length, 1);
    assert.equal(existsSync(join(permanent.home, 'usage-spool.jsonl')), false);
  });
});
