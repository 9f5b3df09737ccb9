import assert from 'node:assert/strict';
import { issueToken, peekClaims } from '../licensing/index.js';
import { loadKeySet } from '../server/keys/store.js';
import { request } from './support/http.js';
import { newActivationSecret, newMachine } from './support/machines.js';
import { openDb, startServer, type TestServer } from './support/server.js';

describe('POST /v1/trials', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  it('starts a trial of TRIAL_LENGTH with a token, a claim code and one seat', async () => {
    const before = Date.now();
    const res = await request(`${server.url}/v1/trials`, { body: { fingerprint: newMachine(), locale: 'en-US', platform: 'linux' } });
    assert.equal(res.status, 201);
    const { license, activation, token } = res.body;
    assert.equal(license.kind, 'trial');
    assert.equal(license.status, 'active');
    assert.equal(license.seats, 1);
    assert.match(license.claimCode, /^[0-9A-Z]{10}$/);
    const length = Date.parse(license.expiresAt) - before;
    assert.ok(Math.abs(length - server.config.trialLengthMs) < 60_000, `trial length ${length}`);
    assert.ok(activation.id > 0);
    assert.equal(token.split('.').length, 3);
  });

  it('gives the same machine the same trial with the same end date, again and again', async () => {
    const fingerprint = newMachine();
    const activationSecret = newActivationSecret();
    const first = await request(`${server.url}/v1/trials`, { body: { fingerprint, activationSecret } });
    const again = await request(`${server.url}/v1/trials`, { body: { fingerprint, activationSecret, locale: 'de-DE' } });
    assert.equal(first.status, 201);
    assert.equal(again.status, 200);
    assert.equal(again.body.license.id, first.body.license.id);
    assert.equal(again.body.license.expiresAt, first.body.license.expiresAt);
    assert.equal(again.body.activation.id, first.body.activation.id);
  });

  it('creates one trial when one machine asks twenty times at once', async () => {
    const fingerprint = newMachine();
    const activationSecret = newActivationSecret();
    const answers = await Promise.all(Array.from({ length: 20 }, () => request(`${server.url}/v1/trials`, { body: { fingerprint, activationSecret } })));
    const statuses = answers.map((a) => a.status).sort();
    assert.deepEqual(statuses, [...Array(19).fill(200), 201]);
    assert.equal(new Set(answers.map((a) => a.body.license.id)).size, 1);
    const db = await openDb(server.config.databaseUrl);
    try {
      const [rows] = await db.query('SELECT COUNT(*) AS n FROM licenses WHERE trial_fingerprint = ?', [fingerprint]);
      assert.equal((rows as { n: number }[])[0]!.n, 1);
      const [acts] = await db.query('SELECT COUNT(*) AS n FROM activations WHERE fingerprint = ?', [fingerprint]);
      assert.equal((acts as { n: number }[])[0]!.n, 1);
    } finally {
      await db.end();
    }
  });

  it('keeps the email and the marketing choice given with the trial', async () => {
    const fingerprint = newMachine();
    await request(`${server.url}/v1/trials`, { body: { fingerprint, email: 'ada@example.org', marketingOptIn: true } });
    const db = await openDb(server.config.databaseUrl);
    try {
      const [rows] = await db.query('SELECT email, marketing_opt_in FROM licenses WHERE trial_fingerprint = ?', [fingerprint]);
      assert.deepEqual((rows as object[])[0], { email: 'ada@example.org', marketing_opt_in: 1 });
    } finally {
      await db.end();
    }
  });

  it('refuses a trial once it has ended: 403 TRIAL_EXPIRED, and no new trial for that machine', async () => {
    const short = await startServer({ trialLengthMs: 1_000, remindersBeforeEndMs: [] });
    try {
      const fingerprint = newMachine();
      const first = await request(`${short.url}/v1/trials`, { body: { fingerprint } });
      assert.equal(first.status, 201);
      await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(first.body.license.expiresAt) - Date.now()) + 50));
      const after = await request(`${short.url}/v1/trials`, { body: { fingerprint } });
      assert.equal(after.status, 403);
      assert.equal(after.body.error.code, 'TRIAL_EXPIRED');
      assert.match(after.body.error.message, new RegExp(first.body.license.expiresAt.slice(0, 10)));
    } finally {
      await short.close();
    }
  });

  it('answers bad input with 400 and a code, never a 5xx', async () => {
    const cases: [unknown, string][] = [
      [{}, 'VALIDATION_FAILED'],
      [{ fingerprint: 'abc' }, 'VALIDATION_FAILED'],
      [{ fingerprint: newMachine(), email: 'not-an-email' }, 'VALIDATION_FAILED'],
      [{ fingerprint: newMachine(), locale: 'x'.repeat(100) }, 'VALIDATION_FAILED'],
      [{ fingerprint: newMachine(), activationSecret: 'short' }, 'VALIDATION_FAILED'],
      [[1, 2, 3], 'VALIDATION_FAILED'],
    ];
    for (const [body, code] of cases) {
      const res = await request(`${server.url}/v1/trials`, { body });
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.error.code, code);
      assert.ok(res.body.error.message.length > 0);
    }
    const broken = await request(`${server.url}/v1/trials`, { rawBody: '{"fingerprint": ', headers: { 'content-type': 'application/json' } });
    assert.equal(broken.status, 400);
    assert.equal(broken.body.error.code, 'INVALID_JSON');
  });

  it('answers 415 for a body that is not JSON and 413 for one too large, in the error shape', async () => {
    const form = await request(`${server.url}/v1/trials`, { rawBody: 'fingerprint=abc', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(form.status, 415);
    assert.equal(form.body.error.code, 'UNSUPPORTED_MEDIA_TYPE');
    const huge = await request(`${server.url}/v1/trials`, { rawBody: JSON.stringify({ fingerprint: 'a'.repeat(2 * 1024 * 1024) }), headers: { 'content-type': 'application/json' } });
    assert.equal(huge.status, 413);
    assert.equal(huge.body.error.code, 'PAYLOAD_TOO_LARGE');
  });

  it('answers an unknown route with 404 in the error shape', async () => {
    const res = await request(`${server.url}/v1/nothing-here`);
    assert.equal(res.status, 404);
    assert.equal(res.body.error.code, 'NOT_FOUND');
  });
});

describe('POST /v1/trials from a second machine that knows only the machine id', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  const trial = (body: Record<string, unknown>, token?: string) => request(`${server.url}/v1/trials`, { body, token });

  async function contactOf(licenseId: number): Promise<{ email: string | null; marketing_opt_in: number }> {
    const db = await openDb(server.config.databaseUrl);
    try {
      const [rows] = await db.query('SELECT email, marketing_opt_in FROM licenses WHERE id = ?', [licenseId]);
      return (rows as { email: string | null; marketing_opt_in: number }[])[0]!;
    } finally {
      await db.end();
    }
  }

  /** A 409 that gives nothing to act on the trial with: no token, no claim code, nothing but the error. */
  function assertNothingToActOn(answer: { status: number; body: any }, first: { body: any }): void {
    assert.equal(answer.status, 409, JSON.stringify(answer.body));
    assert.equal(answer.body.error.code, 'TRIAL_EXISTS');
    assert.match(answer.body.error.message, /already had its trial \(it ends .*\); only the installation that started it/);
    assert.deepEqual(Object.keys(answer.body), ['error']);
    const text = JSON.stringify(answer.body);
    for (const secret of [first.body.token, first.body.license.claimCode]) {
      assert.ok(!text.includes(secret), `the answer holds ${secret}`);
    }
  }

  it('gets no token, no claim code and cannot change the email; the first machine keeps its trial', async () => {
    const fingerprint = newMachine();
    const secretA = newActivationSecret();
    const first = await trial({ fingerprint, activationSecret: secretA, email: 'ada@example.org', marketingOptIn: true });
    assert.equal(first.status, 201);

    assertNothingToActOn(await trial({ fingerprint }), first);
    assertNothingToActOn(await trial({ fingerprint, activationSecret: newActivationSecret() }), first);
    assertNothingToActOn(await trial({ fingerprint, activationSecret: newActivationSecret(), email: 'mallory@example.org', marketingOptIn: false }), first);
    // Not even a token of another trial of this server opens it.
    const other = await trial({ fingerprint: newMachine(), activationSecret: newActivationSecret() });
    assertNothingToActOn(await trial({ fingerprint, activationSecret: newActivationSecret() }, other.body.token), first);
    assert.deepEqual(await contactOf(first.body.license.id), { email: 'ada@example.org', marketing_opt_in: 1 });

    // Deactivating takes the activation's token, which only the first machine has.
    const deactivate = await request(`${server.url}/v1/activations/${first.body.activation.id}`, { method: 'DELETE' });
    assert.equal(deactivate.status, 401);

    // The first machine: same trial, same end date, its claim code, its token renews.
    const again = await trial({ fingerprint, activationSecret: secretA });
    assert.equal(again.status, 200);
    assert.equal(again.body.license.id, first.body.license.id);
    assert.equal(again.body.license.expiresAt, first.body.license.expiresAt);
    assert.equal(again.body.license.claimCode, first.body.license.claimCode);
    const renewed = await request(`${server.url}/v1/validate`, { body: { fingerprint }, token: first.body.token });
    assert.equal(renewed.status, 200);
  });

  it('keeps one trial per machine: an ended trial stays ended for anyone', async () => {
    const short = await startServer({ trialLengthMs: 1_000, remindersBeforeEndMs: [] });
    try {
      const fingerprint = newMachine();
      const first = await request(`${short.url}/v1/trials`, { body: { fingerprint, activationSecret: newActivationSecret() } });
      assert.equal(first.status, 201);
      await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(first.body.license.expiresAt) - Date.now()) + 50));
      const stranger = await request(`${short.url}/v1/trials`, { body: { fingerprint, activationSecret: newActivationSecret() } });
      assert.equal(stranger.status, 403);
      assert.equal(stranger.body.error.code, 'TRIAL_EXPIRED');
    } finally {
      await short.close();
    }
  });

  it('keeps a trial started without a secret (an older agent) for whoever shows one of its tokens with a secret', async () => {
    const fingerprint = newMachine();
    const first = await trial({ fingerprint });
    assert.equal(first.status, 201);
    assertNothingToActOn(await trial({ fingerprint }), first);
    assertNothingToActOn(await trial({ fingerprint, activationSecret: newActivationSecret() }), first);
    const activationSecret = newActivationSecret();
    const bound = await trial({ fingerprint, activationSecret }, first.body.token);
    assert.equal(bound.status, 200, JSON.stringify(bound.body));
    assert.equal(bound.body.license.claimCode, first.body.license.claimCode);
    assert.equal((await trial({ fingerprint, activationSecret })).status, 200, 'the secret alone does from now on');
  });

  it('lets a trial from before secrets take the secret of the first request that shows one of its tokens', async () => {
    const fingerprint = newMachine();
    const old = await trial({ fingerprint });
    assert.equal(old.status, 201);
    const db = await openDb(server.config.databaseUrl);
    try {
      // What migration 005 leaves of a trial started before it.
      await db.query('UPDATE licenses SET trial_secret_hash = NULL WHERE id = ?', [old.body.license.id]);
    } finally {
      await db.end();
    }
    const adopted = newActivationSecret();
    assertNothingToActOn(await trial({ fingerprint, activationSecret: adopted }), old);
    // What a machine whose day-long lease lapsed holds: a token of the trial that /v1/validate no longer takes.
    const claims = peekClaims(old.body.token)!;
    const { keys } = await loadKeySet(server.config.dataDir);
    const lapsed = issueToken({
      licenseId: claims.sub, activationId: claims.aid, fingerprint: claims.fp, kind: 'trial',
      leaseEndsAt: Date.now() - 60_000, licenseExpiresAt: claims.lic_exp! * 1000, now: Date.now() - 3_600_000,
    }, keys.active);
    assert.equal((await request(`${server.url}/v1/validate`, { body: {}, token: lapsed })).status, 401);
    const withToken = await trial({ fingerprint, activationSecret: adopted }, lapsed);
    assert.equal(withToken.status, 200, JSON.stringify(withToken.body));
    assert.equal(withToken.body.license.id, old.body.license.id);
    // From now on the secret is what counts: the old token no longer opens the trial with another one.
    assertNothingToActOn(await trial({ fingerprint, activationSecret: newActivationSecret() }, old.body.token), old);
    assert.equal((await trial({ fingerprint, activationSecret: adopted })).status, 200);
  });
});

describe('rate limits on trials and activations', () => {
  it('answers 429 with Retry-After past RATE_LIMIT_PER_MINUTE from one address', async () => {
    const server = await startServer({ rateLimitPerMinute: 3 });
    try {
      const answers = [];
      for (let i = 0; i < 4; i++) answers.push(await request(`${server.url}/v1/trials`, { body: { fingerprint: newMachine() } }));
      assert.deepEqual(answers.map((a) => a.status), [201, 201, 201, 429]);
      const limited = answers[3]!;
      assert.equal(limited.body.error.code, 'RATE_LIMITED');
      assert.ok(Number(limited.headers.get('retry-after')) > 0);
      const activation = await request(`${server.url}/v1/activations`, { body: { key: 'x', fingerprint: newMachine() } });
      assert.equal(activation.status, 429, 'activations count towards the same limit');
      // Validation is not an activation call: an agent behind a busy NAT still renews.
      const validate = await request(`${server.url}/v1/validate`, { body: {}, token: answers[0]!.body.token });
      assert.equal(validate.status, 200);
    } finally {
      await server.close();
    }
  });
});
