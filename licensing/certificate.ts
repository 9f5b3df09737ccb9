import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { Keyring, publicJwk, thumbprint, TokenError, verifyToken, type PublicJwk, type SigningKey, type VerifiedToken, type VerifyOptions } from './token.js';
import { signStatement, TrustError, verifyStatement, type SignedStatement } from './trust.js';

/**
 * A signing key's certificate: a 'ferry-signing-key' statement of the root that names the key
 * (`kid`, its public JWK) and the time from which tokens it signs count (`notBefore`, seconds).
 * The agent accepts a token only under a key certified this way by its own trust root, so a
 * server (or a file) can hand it keys, but never make it trust them.
 */
export interface CertifiedKey {
  kid: string;
  publicKey: KeyObject;
  /** Milliseconds since the epoch. */
  notBefore: number;
}

export function certifySigningKey(rootPrivateKey: KeyObject, key: Pick<SigningKey, 'kid' | 'publicKey'>, notBefore: number): SignedStatement {
  return signStatement(rootPrivateKey, 'ferry-signing-key', { kid: key.kid, jwk: publicJwk(key), notBefore: Math.floor(notBefore / 1000) });
}

function isJwk(value: unknown): value is PublicJwk {
  const jwk = value as Record<string, unknown> | null;
  return typeof jwk === 'object' && jwk !== null && jwk.kty === 'EC' && jwk.crv === 'P-256' &&
    typeof jwk.x === 'string' && typeof jwk.y === 'string';
}

/** The key a certificate names, once its signature is the root's. Throws TrustError otherwise. */
export function certifiedKey(rootPublicKey: KeyObject, certificate: unknown): CertifiedKey {
  const body = verifyStatement(rootPublicKey, 'ferry-signing-key', certificate);
  if (typeof body.kid !== 'string' || !isJwk(body.jwk) || !Number.isSafeInteger(body.notBefore)) {
    throw new TrustError('the signing key certificate lacks its kid, key or start');
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: body.jwk.x, y: body.jwk.y }, format: 'jwk' });
  } catch {
    throw new TrustError('the certified key is not a P-256 public key');
  }
  // The kid names the key by its content: a certificate cannot lend one key's name to another.
  if (thumbprint(publicKey) !== body.kid) throw new TrustError('the certified kid is not the thumbprint of the certified key');
  return { kid: body.kid, publicKey, notBefore: (body.notBefore as number) * 1000 };
}

/**
 * Verifies a license token under the key its certificate names, the certificate under the root:
 * the whole chain a license stands on, checked offline. Throws TrustError (the certificate) or
 * TokenError (the token, as verifyToken does).
 */
export function verifyCertifiedToken(token: string, certificate: unknown, rootPublicKey: KeyObject, options: VerifyOptions = {}): VerifiedToken {
  const key = certifiedKey(rootPublicKey, certificate);
  const verified = verifyToken(token, new Keyring([key]), options);
  if (verified.claims.iat * 1000 < key.notBefore) {
    throw new TokenError('TOKEN_SIGNATURE', 'it says it was issued before its signing key was certified');
  }
  return verified;
}

/** SHA-256 of the root's SPKI bytes, hex in groups of four: short enough to compare by eye. */
export function rootFingerprint(rootPublicKey: KeyObject): string {
  const digest = createHash('sha256').update(rootPublicKey.export({ format: 'der', type: 'spki' })).digest('hex');
  return digest.match(/.{4}/g)!.join(':');
}
