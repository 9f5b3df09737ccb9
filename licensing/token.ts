import { createHash, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { FINGERPRINT_PATTERN } from './fingerprint.js';
import { LICENSE_KINDS, type LicenseKind } from './policy.js';

/**
 * License tokens: JWTs signed with ECDSA P-256 (ES256). The algorithm is pinned on both sides:
 * a token whose header names anything else (`none`, HS256 made with the public key…) is refused
 * before its signature is looked at.
 */
export const TOKEN_ALGORITHM = 'ES256' as const;
export const TOKEN_ISSUER = 'ferry';

export interface LicenseClaims {
  /** License id. */
  sub: string;
  /** Activation id. */
  aid: number;
  /** Machine fingerprint the activation is bound to. */
  fp: string;
  kind: LicenseKind;
  iat: number;
  /** End of this lease, seconds since the epoch. */
  exp: number;
  /** End of the license itself (the trial's end), absent for a permanent license. */
  lic_exp?: number;
  iss: typeof TOKEN_ISSUER;
}

export interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export interface PublicJwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
  kid: string;
  alg: typeof TOKEN_ALGORITHM;
  use: 'sig';
}

export interface Jwks {
  keys: PublicJwk[];
}

export type TokenErrorCode =
  | 'TOKEN_MALFORMED'
  | 'TOKEN_ALGORITHM'
  | 'TOKEN_UNKNOWN_KEY'
  | 'TOKEN_SIGNATURE'
  | 'TOKEN_EXPIRED'
  | 'TOKEN_WRONG_MACHINE';

const TOKEN_ERROR_MESSAGES: Record<TokenErrorCode, string> = {
  TOKEN_MALFORMED: 'the license token is not a well-formed Ferry token',
  TOKEN_ALGORITHM: `the license token is not signed with ${TOKEN_ALGORITHM}`,
  TOKEN_UNKNOWN_KEY: 'the license token was signed by a key this verifier does not know',
  TOKEN_SIGNATURE: 'the license token signature does not match its content',
  TOKEN_EXPIRED: 'the license token has expired',
  TOKEN_WRONG_MACHINE: 'the license token belongs to another machine',
};

export class TokenError extends Error {
  override readonly name = 'TokenError';
  constructor(readonly code: TokenErrorCode, detail?: string) {
    super(detail ? `${TOKEN_ERROR_MESSAGES[code]}: ${detail}` : TOKEN_ERROR_MESSAGES[code]);
  }
}

/** RFC 7638 thumbprint of the public key: a stable `kid` that names the key by its content. */
export function thumbprint(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' });
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return createHash('sha256').update(canonical).digest('base64url');
}

export function generateSigningKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { kid: thumbprint(publicKey), privateKey, publicKey };
}

export function signingKeyFromPrivate(privateKey: KeyObject): SigningKey {
  if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new Error('a Ferry signing key must be an EC P-256 private key');
  }
  const publicKey = createPublicKey(privateKey);
  return { kid: thumbprint(publicKey), privateKey, publicKey };
}

export function publicJwk(key: Pick<SigningKey, 'kid' | 'publicKey'>): PublicJwk {
  const jwk = key.publicKey.export({ format: 'jwk' });
  return { kty: 'EC', crv: 'P-256', x: jwk.x!, y: jwk.y!, kid: key.kid, alg: TOKEN_ALGORITHM, use: 'sig' };
}

export interface IssueInput {
  licenseId: number | string;
  activationId: number;
  fingerprint: string;
  kind: LicenseKind;
  /** Lease end, milliseconds since the epoch. */
  leaseEndsAt: number;
  /** License end (trials), milliseconds since the epoch, or null. */
  licenseExpiresAt: number | null;
  now: number;
}

export function issueToken(input: IssueInput, key: SigningKey): string {
  const claims: LicenseClaims = {
    sub: String(input.licenseId),
    aid: input.activationId,
    fp: input.fingerprint,
    kind: input.kind,
    iat: Math.floor(input.now / 1000),
    exp: Math.floor(input.leaseEndsAt / 1000),
    iss: TOKEN_ISSUER,
  };
  if (input.licenseExpiresAt !== null) claims.lic_exp = Math.floor(input.licenseExpiresAt / 1000);
  return signJwt(claims, key);
}

/** The order of P-256's base point: an ECDSA signature (r, s) is as valid as its twin (r, n - s). */
const P256_ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const P256_HALF_ORDER = P256_ORDER >> 1n;
const SCALAR_BYTES = 32;

const toScalar = (bytes: Buffer) => BigInt(`0x${bytes.toString('hex')}`);
const fromScalar = (value: bigint) => Buffer.from(value.toString(16).padStart(SCALAR_BYTES * 2, '0'), 'hex');

/**
 * Signs the JWT with crypto directly (ES256's raw r||s form, RFC 7518 3.4) and keeps s in the lower
 * half of the group order. OpenSSL may give either twin; the verifier accepts only the low one, so
 * a token has exactly one valid signature and cannot be altered into a second, still-valid string.
 */
function signJwt(claims: LicenseClaims, key: SigningKey): string {
  const header = { alg: TOKEN_ALGORITHM, typ: 'JWT', kid: key.kid };
  const signingInput = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const signature = sign('sha256', Buffer.from(signingInput), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  const s = toScalar(signature.subarray(SCALAR_BYTES));
  if (s > P256_HALF_ORDER) fromScalar(P256_ORDER - s).copy(signature, SCALAR_BYTES);
  return `${signingInput}.${signature.toString('base64url')}`;
}

/** Whether the token's signature is 64 raw bytes with s in the lower half: the one form we issue. */
function hasLowS(token: string): boolean {
  const signature = Buffer.from(token.slice(token.lastIndexOf('.') + 1), 'base64url');
  return signature.length === SCALAR_BYTES * 2 && toScalar(signature.subarray(SCALAR_BYTES)) <= P256_HALF_ORDER;
}

/** Public keys by kid, turned into KeyObjects once rather than on every verification. */
export class Keyring {
  private readonly keys = new Map<string, KeyObject>();

  constructor(keys: Iterable<Pick<SigningKey, 'kid' | 'publicKey'>> = []) {
    for (const key of keys) this.keys.set(key.kid, key.publicKey);
  }

  static fromJwks(jwks: Jwks): Keyring {
    const ring = new Keyring();
    for (const jwk of jwks.keys ?? []) {
      if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.kid !== 'string') continue;
      ring.keys.set(jwk.kid, createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y }, format: 'jwk' }));
    }
    return ring;
  }

  get(kid: string): KeyObject | undefined {
    return this.keys.get(kid);
  }

  get size(): number {
    return this.keys.size;
  }
}

export interface VerifyOptions {
  /** The fingerprint this token must be bound to (the agent's own machine); omitted: any. */
  fingerprint?: string;
  /** Milliseconds since the epoch; defaults to the clock. */
  now?: number;
  /**
   * How long past its lease end a token is still accepted. The agent passes its offline grace; the
   * server passes the grace within which an old lease may still be renewed.
   */
  acceptExpiredForMs?: number;
}

export interface VerifiedToken {
  claims: LicenseClaims;
  /** The lease has ended, but the token is still within `acceptExpiredForMs`. */
  leaseEnded: boolean;
}

function isClaims(value: unknown): value is LicenseClaims {
  if (typeof value !== 'object' || value === null) return false;
  const c = value as Record<string, unknown>;
  return (
    typeof c.sub === 'string' &&
    Number.isSafeInteger(c.aid) &&
    typeof c.fp === 'string' &&
    new RegExp(FINGERPRINT_PATTERN).test(c.fp) &&
    LICENSE_KINDS.includes(c.kind as LicenseKind) &&
    Number.isSafeInteger(c.iat) &&
    Number.isSafeInteger(c.exp) &&
    (c.lic_exp === undefined || Number.isSafeInteger(c.lic_exp)) &&
    c.iss === TOKEN_ISSUER
  );
}

/**
 * Verifies a license token against known public keys, with the algorithm pinned to ES256, and
 * checks its lease end and machine. Throws TokenError with a code the caller can branch on.
 */
export function verifyToken(token: string, keyring: Keyring, options: VerifyOptions = {}): VerifiedToken {
  const decoded = jwt.decode(token, { complete: true });
  if (!decoded || typeof decoded.payload === 'string') throw new TokenError('TOKEN_MALFORMED');
  if (decoded.header.alg !== TOKEN_ALGORITHM) throw new TokenError('TOKEN_ALGORITHM', `found ${decoded.header.alg}`);
  const kid = decoded.header.kid;
  const publicKey = kid === undefined ? undefined : keyring.get(kid);
  if (!publicKey) throw new TokenError('TOKEN_UNKNOWN_KEY');
  if (!hasLowS(token)) throw new TokenError('TOKEN_SIGNATURE');

  let payload: unknown;
  try {
    payload = jwt.verify(token, publicKey, {
      algorithms: [TOKEN_ALGORITHM],
      issuer: TOKEN_ISSUER,
      ignoreExpiration: true,
      ignoreNotBefore: true,
    });
  } catch {
    throw new TokenError('TOKEN_SIGNATURE');
  }
  if (!isClaims(payload)) throw new TokenError('TOKEN_MALFORMED', 'claims missing or of the wrong type');

  const nowSeconds = Math.floor((options.now ?? Date.now()) / 1000);
  const graceSeconds = Math.floor((options.acceptExpiredForMs ?? 0) / 1000);
  if (nowSeconds >= payload.exp + graceSeconds) throw new TokenError('TOKEN_EXPIRED');
  if (options.fingerprint !== undefined && payload.fp !== options.fingerprint) throw new TokenError('TOKEN_WRONG_MACHINE');
  return { claims: payload, leaseEnded: nowSeconds >= payload.exp };
}

/** Reads a token's claims without trusting them: for display and for choosing what to do next. */
export function peekClaims(token: string): LicenseClaims | null {
  // The payload part only, by hand: the server peeks at every check-in, and a JWT library's decode
  // (header and all, through streams) cost a twentieth of a validation.
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
  return isClaims(payload) ? payload : null;
}
