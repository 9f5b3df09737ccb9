import { Keyring, TokenError, verifyToken, type Jwks, type LicenseClaims } from '../licensing/index.js';
import { AgentError } from './errors.js';
import { fetchJwks } from './license-api.js';

/**
 * The server's public keys are pinned at the first activation (trust on first use) and every
 * token the server sends afterwards must verify against them before it is stored. When the server
 * rotates its signing key, a token arrives with a kid we have not seen: the agent fetches the keys
 * from the same server once and adds the new ones, never replacing a key it already pinned.
 */

/** Pinned keys plus those of `fresh` whose kid is new. */
export function mergeJwks(pinned: Jwks, fresh: Jwks): Jwks {
  const known = new Set(pinned.keys.map((k) => k.kid));
  return { keys: [...pinned.keys, ...fresh.keys.filter((k) => typeof k.kid === 'string' && !known.has(k.kid))] };
}

/** Lease times are judged later, against this machine's clock; here only origin and machine count. */
const ANY_AGE_MS = Number.MAX_SAFE_INTEGER;

function verifyAgainst(server: string, token: string, jwks: Jwks, fingerprint: string): LicenseClaims {
  let keyring: Keyring;
  try {
    keyring = Keyring.fromJwks(jwks);
  } catch (err) {
    throw new AgentError('SERVER_ERROR', `the public keys of ${server} are unusable: ${(err as Error).message}`);
  }
  return verifyToken(token, keyring, { fingerprint, acceptExpiredForMs: ANY_AGE_MS }).claims;
}

function untrusted(server: string, err: TokenError): AgentError {
  return new AgentError('SERVER_ERROR', `the license server ${server} sent a token this machine cannot trust: ${err.message}`);
}

/**
 * Verifies a token just received from `server`, against the pinned keys (or, at the first
 * activation, against keys fetched now). Returns its claims and the keys to store with it.
 */
export async function verifyIssuedToken(
  server: string,
  token: string,
  pinned: Jwks | null,
  fingerprint: string,
): Promise<{ claims: LicenseClaims; jwks: Jwks }> {
  const jwks = pinned ?? (await fetchJwks(server));
  try {
    return { claims: verifyAgainst(server, token, jwks, fingerprint), jwks };
  } catch (err) {
    if (!(err instanceof TokenError)) throw err;
    if (err.code !== 'TOKEN_UNKNOWN_KEY' || pinned === null) throw untrusted(server, err);
  }
  const merged = mergeJwks(jwks, await fetchJwks(server));
  try {
    return { claims: verifyAgainst(server, token, merged, fingerprint), jwks: merged };
  } catch (err) {
    if (err instanceof TokenError) throw untrusted(server, err);
    throw err;
  }
}
