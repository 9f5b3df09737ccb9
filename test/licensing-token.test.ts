import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, verify } from 'node:crypto';
import jwt from 'jsonwebtoken';
import {
  fingerprint, generateSigningKey, issueToken, Keyring, parseDuration, publicJwk, TokenError, verifyToken,
  type IssueInput,
} from '../licensing/index.js';

const HOUR = 3_600_000;
/** The order of P-256's group. */
const P256_ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const now = Date.UTC(2026, 10, 23, 12, 0, 0);
const machine = fingerprint('machine-one');

function input(overrides: Partial<IssueInput> = {}): IssueInput {
  return {
    licenseId: 42, activationId: 7, fingerprint: machine, kind: 'trial',
    leaseEndsAt: now + 24 * HOUR, licenseExpiresAt: now + 30 * 24 * HOUR, now, ...overrides,
  };
}

function refusedWith(code: string, fn: () => unknown) {
  assert.throws(fn, (err: unknown) => err instanceof TokenError && err.code === code);
}

describe('license tokens', () => {
  const key = generateSigningKey();
  const ring = Keyring.fromJwks({ keys: [publicJwk(key)] });

  it('verifies a token it issued, with the claims the design names', () => {
    const { claims, leaseEnded } = verifyToken(issueToken(input(), key), ring, { fingerprint: machine, now });
    assert.equal(leaseEnded, false);
    assert.deepEqual(
      { sub: claims.sub, aid: claims.aid, fp: claims.fp, kind: claims.kind, exp: claims.exp, lic_exp: claims.lic_exp },
      { sub: '42', aid: 7, fp: machine, kind: 'trial', exp: (now + 24 * HOUR) / 1000, lic_exp: (now + 30 * 24 * HOUR) / 1000 },
    );
  });

  it('leaves lic_exp out of a permanent license token', () => {
    const token = issueToken(input({ kind: 'permanent', licenseExpiresAt: null }), key);
    assert.equal(verifyToken(token, ring, { now }).claims.lic_exp, undefined);
  });

  it('names its signing key in the header', () => {
    const header = jwt.decode(issueToken(input(), key), { complete: true })!.header;
    assert.equal(header.kid, key.kid);
    assert.equal(header.alg, 'ES256');
  });

  it('refuses a token whose payload was changed', () => {
    const [h, , s] = issueToken(input(), key).split('.');
    const forged = Buffer.from(JSON.stringify({ ...jwt.decode(issueToken(input(), key)) as object, kind: 'permanent' })).toString('base64url');
    refusedWith('TOKEN_SIGNATURE', () => verifyToken(`${h}.${forged}.${s}`, ring, { now }));
  });

  it('refuses alg "none"', () => {
    const payload = jwt.decode(issueToken(input(), key)) as object;
    const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT', kid: key.kid })).toString('base64url');
    const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
    refusedWith('TOKEN_ALGORITHM', () => verifyToken(`${header}.${body}.`, ring, { now }));
  });

  it('refuses HS256 signed with the public key as the secret', () => {
    const payload = jwt.decode(issueToken(input(), key)) as object;
    const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: key.kid })).toString('base64url');
    const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
    const secret = key.publicKey.export({ format: 'pem', type: 'spki' });
    const signature = createHmac('sha256', secret).update(`${header}.${body}`).digest('base64url');
    refusedWith('TOKEN_ALGORITHM', () => verifyToken(`${header}.${body}.${signature}`, ring, { now }));
  });

  it('refuses a token signed by a key it does not know', () => {
    const stranger = generateSigningKey();
    refusedWith('TOKEN_UNKNOWN_KEY', () => verifyToken(issueToken(input(), stranger), ring, { now }));
  });

  it('refuses a token signed by another key under a known kid', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const token = jwt.sign(jwt.decode(issueToken(input(), key)) as object, privateKey, { algorithm: 'ES256', keyid: key.kid });
    refusedWith('TOKEN_SIGNATURE', () => verifyToken(token, ring, { now }));
  });

  it('refuses an expired lease, unless within the grace the caller allows', () => {
    const token = issueToken(input({ leaseEndsAt: now - HOUR }), key);
    refusedWith('TOKEN_EXPIRED', () => verifyToken(token, ring, { now }));
    assert.equal(verifyToken(token, ring, { now, acceptExpiredForMs: 2 * HOUR }).leaseEnded, true);
  });

  it("refuses another machine's token", () => {
    refusedWith('TOKEN_WRONG_MACHINE', () => verifyToken(issueToken(input(), key), ring, { fingerprint: fingerprint('machine-two'), now }));
  });

  it('refuses garbage', () => {
    refusedWith('TOKEN_MALFORMED', () => verifyToken('not a token', ring, { now }));
  });

  it('refuses the high-S twin of a valid signature, and issues only the low-S form', () => {
    const sOf = (token: string) => BigInt(`0x${Buffer.from(token.split('.')[2]!, 'base64url').subarray(32).toString('hex')}`);
    const tokens = Array.from({ length: 1_000 }, (_, i) => issueToken(input({ activationId: i + 1 }), key));
    const high = tokens.filter((token) => sOf(token) > P256_ORDER / 2n);
    assert.equal(high.length, 0, `${high.length} of 1,000 issued tokens carry a high S`);

    const token = tokens[0]!;
    const [h, p, signature] = token.split('.') as [string, string, string];
    const raw = Buffer.from(signature, 'base64url');
    const twinS = P256_ORDER - sOf(token);
    const twin = Buffer.concat([raw.subarray(0, 32), Buffer.from(twinS.toString(16).padStart(64, '0'), 'hex')]).toString('base64url');
    // The twin is a mathematically valid ECDSA signature (plain crypto accepts it)…
    assert.ok(verify('sha256', Buffer.from(`${h}.${p}`), { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(twin, 'base64url')));
    // …but not a Ferry token: one token has exactly one valid encoding.
    refusedWith('TOKEN_SIGNATURE', () => verifyToken(`${h}.${p}.${twin}`, ring, { now }));
    assert.equal(verifyToken(token, ring, { now }).claims.aid, 1);
  });
});

describe('machine fingerprint', () => {
  it('is 64 hex characters that do not reveal the machine id', () => {
    const id = '4c4c4544-0042-3510-8052-b4c04f4e3732';
    const fp = fingerprint(id);
    assert.match(fp, /^[0-9a-f]{64}$/);
    assert.ok(!fp.includes(id.replace(/-/g, '')));
    assert.equal(fingerprint(id), fp, 'stable');
    assert.notEqual(fingerprint(`${id}x`), fp);
  });
});

describe('durations', () => {
  it('reads s, m, h and d and refuses anything else', () => {
    assert.equal(parseDuration('60s'), 60_000);
    assert.equal(parseDuration('30d'), 30 * 24 * HOUR);
    for (const bad of ['', '0d', '1w', '1.5h', '-1d', 'd']) assert.equal(parseDuration(bad), null, bad);
  });
});
