import { sign, verify } from 'node:crypto';
import type { CertifiedKey } from './certificate.js';
import type { SigningKey } from './token.js';
import { canonicalJson, TrustError, type SignedStatement } from './trust.js';

/**
 * A server-signed time: `{payload, signature}` where `payload` is the canonical JSON of
 * `{kid, t, type: 'ferry-time'}` (`t` in milliseconds since the epoch) and `signature` the
 * ES256 signature (raw r||s, base64url) of its UTF-8 bytes under the signing key `kid`, the key
 * whose root certificate the agent already holds for its token.
 *
 * It says only "the server's clock had passed `t`", which stays true forever: so it needs no nonce
 * and no freshness check. A replayed old statement tells the agent a time it already knew or less,
 * and the agent keeps the highest time it has verified, so a replay moves nothing back; a later
 * time than the server's own cannot be made without the signing key. That is why one statement can
 * be signed once a second and handed to every check-in of that second (server/licenses/trusted-time.ts).
 */
export const TIME_STATEMENT_TYPE = 'ferry-time';

/** Most characters an agent accepts in a time statement's parts: far more than one needs. */
export const TIME_STATEMENT_MAX_CHARS = 512;

export function signTime(key: Pick<SigningKey, 'kid' | 'privateKey'>, t: number): SignedStatement {
  const payload = canonicalJson({ kid: key.kid, t: Math.floor(t), type: TIME_STATEMENT_TYPE });
  const signature = sign('sha256', Buffer.from(payload, 'utf8'), { key: key.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  return { payload, signature };
}

/**
 * The time a statement carries, once it is signed by `key` (certified by the root, see
 * certificate.ts). Throws TrustError for anything else: unsigned, edited, another key, another
 * kind of statement, or a time before the key's certificate starts.
 */
export function verifyTime(statement: unknown, key: CertifiedKey): number {
  const s = statement as Partial<SignedStatement> | null;
  if (typeof s !== 'object' || s === null || typeof s.payload !== 'string' || typeof s.signature !== 'string') {
    throw new TrustError('the time is not a signed statement');
  }
  if (s.payload.length > TIME_STATEMENT_MAX_CHARS || s.signature.length > TIME_STATEMENT_MAX_CHARS) throw new TrustError('the time statement is too long');
  let body: { kid?: unknown; t?: unknown; type?: unknown };
  try {
    body = JSON.parse(s.payload) as typeof body;
  } catch {
    throw new TrustError('the signed time is not JSON');
  }
  if (typeof body !== 'object' || body === null || body.type !== TIME_STATEMENT_TYPE) throw new TrustError(`the statement is not a ${TIME_STATEMENT_TYPE}`);
  if (body.kid !== key.kid) throw new TrustError('the time is signed by another key than the certified one');
  const signature = Buffer.from(s.signature, 'base64url');
  if (signature.length !== 64 || !verify('sha256', Buffer.from(s.payload, 'utf8'), { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, signature)) {
    throw new TrustError('the signature of the time is not the certified key\'s');
  }
  if (!Number.isSafeInteger(body.t)) throw new TrustError('the signed time is not a number of milliseconds');
  const t = body.t as number;
  if (t < key.notBefore) throw new TrustError('the signed time is before its key was certified');
  return t;
}
