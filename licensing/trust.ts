import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';

/**
 * The deployment's root of trust: an Ed25519 key pair. Its public half is built into every agent
 * that deployment packages; its private half signs statements (a signing key's certificate, a
 * release manifest) and can be kept offline, apart from the keys the server signs tokens with.
 *
 * A signed statement is `{payload, signature}`: `payload` is the exact JSON text that was signed
 * (kept as text, so that verification never depends on how a parser re-serialises it) and
 * `signature` the base64url Ed25519 signature of its UTF-8 bytes. Every payload names its `type`,
 * so that a statement made for one purpose is never accepted for another.
 */
export interface SignedStatement {
  payload: string;
  signature: string;
}

export type StatementType = 'ferry-signing-key' | 'ferry-release-manifest';

export class TrustError extends Error {
  override readonly name = 'TrustError';
}

export function generateRootKey(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ed25519');
}

/** The PEM (SPKI) text of a root public key, as builds carry it. */
export function rootPublicPem(publicKey: KeyObject): string {
  return publicKey.export({ format: 'pem', type: 'spki' }).toString();
}

export function rootPrivateFromPem(pem: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new TrustError('a Ferry root key must be an Ed25519 private key');
  return key;
}

export function rootPublicFromPem(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new TrustError(`the trust root is not a public key: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new TrustError('the trust root must be an Ed25519 public key');
  return key;
}

/** JSON with object keys sorted at every level: one text for one value, whoever writes it. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  });
}

/** Signs `body` (which gets `type`) with the root's private key. */
export function signStatement<T extends object>(rootPrivateKey: KeyObject, type: StatementType, body: T): SignedStatement {
  const payload = canonicalJson({ ...body, type });
  const signature = sign(null, Buffer.from(payload, 'utf8'), rootPrivateKey).toString('base64url');
  return { payload, signature };
}

function isStatement(value: unknown): value is SignedStatement {
  return (
    typeof value === 'object' && value !== null &&
    typeof (value as SignedStatement).payload === 'string' &&
    typeof (value as SignedStatement).signature === 'string'
  );
}

/**
 * Checks a statement's signature against the root and its type, and returns its body. Throws
 * TrustError on anything else: a statement of another type, another root, or an edited byte.
 */
export function verifyStatement(rootPublicKey: KeyObject, type: StatementType, statement: unknown): Record<string, unknown> {
  if (!isStatement(statement)) throw new TrustError('not a signed statement');
  const signature = Buffer.from(statement.signature, 'base64url');
  if (signature.length !== 64 || !verify(null, Buffer.from(statement.payload, 'utf8'), rootPublicKey, signature)) {
    throw new TrustError('the signature is not the trust root\'s');
  }
  let body: unknown;
  try {
    body = JSON.parse(statement.payload);
  } catch {
    throw new TrustError('the signed payload is not JSON');
  }
  if (typeof body !== 'object' || body === null || (body as { type?: unknown }).type !== type) {
    throw new TrustError(`the statement is not a ${type}`);
  }
  return body as Record<string, unknown>;
}
