import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { generateSigningKey, issueToken, peekClaims } from '../licensing/index.js';
import { issueLicense, revokeLicense } from './support/admin.js';
import { request } from './support/http.js';
import { newMachine } from './support/machines.js';
import { openDb, startServer, type TestServer } from './support/server.js';

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('POST /v1/validate', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  const validate = (token: string, body: unknown = {}) => request(`${server.url}/v1/validate`, { body, token });

  async function trial(fingerprint = newMachine()) {
    const res = await request(`${server.url}/v1/trials`, { body: { fingerprint } });
    return { ...res.body, fingerprint };
  }

  it('records when a machine was last seen, written in batches and at shutdown', async () => {
    const other = await startServer();
    const db = await openDb(other.config.databaseUrl);
    try {
      const t = await request(`${other.url}/v1/trials`, { body: { fingerprint: newMachine() } });
      const lastSeen = async () => {
        const [rows] = await db.query('SELECT last_validated_at AS at FROM activations WHERE id = ?', [t.body.activation.id]);
        return (rows as { at: Date }[])[0]!.at.getTime();
      };
      await db.query('UPDATE activations SET last_validated_at = ? WHERE id = ?', [new Date(Date.now() - 2 * 86_400_000), t.body.activation.id]);
      const before = Date.now();
      assert.equal((await request(`${other.url}/v1/validate`, { body: {}, token: t.body.token })).status, 200);
      await other.close(); // the batch still waiting is written before the pool closes
      assert.ok((await lastSeen()) >= before - 1000, 'written at shutdown');
    } finally {
      await db.end();
    }
  });

  it('never renews a trial lease past the end of the trial', async () => {
    const short = await startServer({ trialLengthMs: 3_600_000, remindersBeforeEndMs: [] });
    try {
      const res = await request(`${short.url}/v1/trials`, { body: { fingerprint: newMachine() } });
      const claims = peekClaims(res.body.token)!;
      assert.equal(claims.exp, claims.lic_exp);
      assert.equal(claims.exp * 1000, Math.floor(Date.parse(res.body.license.expiresAt) / 1000) * 1000);
    } finally {
      await short.close();
    }
  });

  it('takes effect at the next validation when the license is revoked', async () => {
    const license = await issueLicense(server, 1);
    const fingerprint = newMachine();
    const activated = await request(`${server.url}/v1/activations`, { body: { key: license.key, fingerprint } });
    assert.equal((await validate(activated.body.token, { fingerprint })).status, 200);
    await revokeLicense(server, license.id);
    const res = await validate(activated.body.token, { fingerprint });
    assert.equal(res.status, 403);
    assert.equal(res.body.error.code, 'LICENSE_REVOKED');
  });

  it('refuses the token of a deactivated machine with 403 ACTIVATION_INACTIVE', async () => {
    const t = await trial();
    await request(`${server.url}/v1/activations/${t.activation.id}`, { method: 'DELETE', token: t.token });
    const res = await validate(t.token);
    assert.equal(res.status, 403);
    assert.equal(res.body.error.code, 'ACTIVATION_INACTIVE');
  });

  describe('refuses tampered tokens', () => {
    it('with a changed payload', async () => {
      const t = await trial();
      const [header, , signature] = t.token.split('.');
      const forged = b64({ ...peekClaims(t.token), kind: 'permanent', lic_exp: undefined });
      const res = await validate(`${header}.${forged}.${signature}`);
      assert.equal(res.status, 401);
      assert.equal(res.body.error.code, 'TOKEN_SIGNATURE');
    });

    it('with alg "none"', async () => {
      const t = await trial();
      const [header] = t.token.split('.');
      const kid = JSON.parse(Buffer.from(header!, 'base64url').toString()).kid;
      const res = await validate(`${b64({ alg: 'none', typ: 'JWT', kid })}.${b64(peekClaims(t.token))}.`);
      assert.equal(res.status, 401);
      assert.equal(res.body.error.code, 'TOKEN_ALGORITHM');
    });

    it('signed HS256 with the published public key as the secret', async () => {
      const t = await trial();
      const jwks = (await request(`${server.url}/.well-known/jwks.json`)).body;
      const { createPublicKey } = await import('node:crypto');
      const pem = createPublicKey({ key: jwks.keys[0], format: 'jwk' }).export({ format: 'pem', type: 'spki' });
      const head = b64({ alg: 'HS256', typ: 'JWT', kid: jwks.keys[0].kid });
      const body = b64(peekClaims(t.token));
      const sig = createHmac('sha256', pem).update(`${head}.${body}`).digest('base64url');
      const res = await validate(`${head}.${body}.${sig}`);
      assert.equal(res.status, 401);
      assert.equal(res.body.error.code, 'TOKEN_ALGORITHM');
    });

    it('signed by a key that is not the server\'s', async () => {
      const t = await trial();
      const claims = peekClaims(t.token)!;
      const stranger = generateSigningKey();
      const token = issueToken({
        licenseId: claims.sub, activationId: claims.aid, fingerprint: claims.fp, kind: 'permanent',
        leaseEndsAt: Date.now() + 3_600_000, licenseExpiresAt: null, now: Date.now(),
      }, stranger);
      const res = await validate(token);
      assert.equal(res.status, 401);
      assert.equal(res.body.error.code, 'TOKEN_UNKNOWN_KEY');
    });

    it('expired beyond renewal', async () => {
      const t = await trial();
      const claims = peekClaims(t.token)!;
      // The server's own key, so only the expiry is wrong: a trial lease may not be renewed once over.
      const { loadKeySet } = await import('../server/keys/store.js');
      const { keys } = await loadKeySet(server.config.dataDir);
      const expired = issueToken({
        licenseId: claims.sub, activationId: claims.aid, fingerprint: claims.fp, kind: 'trial',
        leaseEndsAt: Date.now() - 60_000, licenseExpiresAt: claims.lic_exp! * 1000, now: Date.now() - 3_600_000,
      }, keys.active);
      const res = await validate(expired);
      assert.equal(res.status, 401);
      assert.equal(res.body.error.code, 'TOKEN_EXPIRED');
    });

    it("presented by another machine, and records it", async () => {
      const t = await trial();
      const other = newMachine();
      const res = await validate(t.token, { fingerprint: other });
      assert.equal(res.status, 403);
      assert.equal(res.body.error.code, 'TOKEN_WRONG_MACHINE');
      const db = await openDb(server.config.databaseUrl);
      try {
        const [rows] = await db.query("SELECT fingerprint FROM license_events WHERE kind = 'wrong_machine' AND license_id = ?", [t.license.id]);
        assert.deepEqual(rows, [{ fingerprint: other }]);
      } finally {
        await db.end();
      }
    });

    it('that is not a token at all, or missing', async () => {
      assert.equal((await validate('abc.def.ghi')).body.error.code, 'TOKEN_MALFORMED');
      const none = await request(`${server.url}/v1/validate`, { body: {} });
      assert.equal(none.status, 401);
      assert.equal(none.body.error.code, 'TOKEN_MISSING');
    });
  });

  it('renews a permanent lease within its offline grace after the lease ended', async () => {
    const license = await issueLicense(server, 1);
    const fingerprint = newMachine();
    const activated = await request(`${server.url}/v1/activations`, { body: { key: license.key, fingerprint } });
    const claims = peekClaims(activated.body.token)!;
    const { loadKeySet } = await import('../server/keys/store.js');
    const { keys } = await loadKeySet(server.config.dataDir);
    const lapsed = issueToken({
      licenseId: claims.sub, activationId: claims.aid, fingerprint, kind: 'permanent',
      leaseEndsAt: Date.now() - 24 * 3_600_000, licenseExpiresAt: null, now: Date.now() - 8 * 24 * 3_600_000,
    }, keys.active);
    const res = await validate(lapsed, { fingerprint });
    assert.equal(res.status, 200);
    assert.ok(peekClaims(res.body.token)!.exp * 1000 > Date.now());
    assert.ok(jwt.decode(res.body.token));
  });
});
