import type { KeyObject } from 'node:crypto';
import { POLICIES, TokenError, TrustError, verifyCertifiedToken, type LicenseClaims } from '../licensing/index.js';

/**
 * What this machine can decide about its license without the server: the token's signature under
 * the key its certificate names and that certificate under the trust root, its machine, the trial's end, the lease and the offline grace. Pure:
 * the time comes in, the verdict goes out, so every branch is unit-tested without a server.
 */
export type Assessment =
  /**
   * Not a license for this machine: another machine's (`untrusted` false), or not certified by the
   * trust root at all: tampered, hand-made, or from another deployment (`untrusted` true).
   */
  | { verdict: 'invalid'; reason: string; untrusted: boolean }
  /** The trial's own end has passed: no renewal can help. */
  | { verdict: 'trial-ended'; claims: LicenseClaims; trialEndsAt: number }
  /** Lease (plus offline grace) over: it works again only after renewing online. */
  | { verdict: 'lease-ended'; claims: LicenseClaims; leaseEndsAt: number; usableUntil: number }
  | {
      verdict: 'usable';
      claims: LicenseClaims;
      leaseEndsAt: number;
      /** Lease end plus the kind's offline grace. */
      usableUntil: number;
      /** Less than the kind's renewal margin is left: renew online now. */
      renewDue: boolean;
      /** Past the lease end, working on the offline grace. */
      inGrace: boolean;
    };

export interface AssessInput {
  token: string;
  /** The root's certificate of the key that signed the token. */
  certificate: unknown;
  root: KeyObject;
  fingerprint: string;
  /** The clock's time, already held at the high-water mark. */
  now: number;
}

/** Far beyond any lease: the signature and machine are checked here, the times below. */
const ANY_AGE_MS = Number.MAX_SAFE_INTEGER;

export function assessLicense({ token, certificate, root, fingerprint, now }: AssessInput): Assessment {
  let claims: LicenseClaims;
  try {
    claims = verifyCertifiedToken(token, certificate, root, { fingerprint, now, acceptExpiredForMs: ANY_AGE_MS }).claims;
  } catch (err) {
    if (err instanceof TrustError) return { verdict: 'invalid', reason: err.message, untrusted: true };
    if (err instanceof TokenError) return { verdict: 'invalid', reason: err.message, untrusted: err.code !== 'TOKEN_WRONG_MACHINE' };
    throw err;
  }
  // The server issued this token at `iat`: time on this machine cannot be earlier than that, even
  // if clock.json was removed along with a clock set back.
  const at = Math.max(now, claims.iat * 1000);
  const policy = POLICIES[claims.kind];

  if (claims.kind === 'trial' && claims.lic_exp !== undefined && at >= claims.lic_exp * 1000) {
    return { verdict: 'trial-ended', claims, trialEndsAt: claims.lic_exp * 1000 };
  }
  const leaseEndsAt = claims.exp * 1000;
  const usableUntil = leaseEndsAt + policy.offlineGraceMs;
  if (at >= usableUntil) return { verdict: 'lease-ended', claims, leaseEndsAt, usableUntil };
  return {
    verdict: 'usable',
    claims,
    leaseEndsAt,
    usableUntil,
    renewDue: leaseEndsAt - at < policy.renewWhenLeftMs,
    inGrace: at >= leaseEndsAt,
  };
}
