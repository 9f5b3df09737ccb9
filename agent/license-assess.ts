import type { KeyObject } from 'node:crypto';
import {
  certifiedKey, POLICIES, TokenError, TrustError, verifyCertifiedToken, verifyTime, type LicenseClaims,
} from '../licensing/index.js';

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
  | ({ verdict: 'trial-ended'; trialEndsAt: number } & Judged)
  /** Lease (plus offline grace) over: it works again only after renewing online. */
  | ({ verdict: 'lease-ended'; leaseEndsAt: number; usableUntil: number } & Judged)
  | ({
      verdict: 'usable';
      leaseEndsAt: number;
      /** Lease end plus the kind's offline grace. */
      usableUntil: number;
      /** Less than the kind's renewal margin is left: renew online now. */
      renewDue: boolean;
      /** Past the lease end, working on the offline grace. */
      inGrace: boolean;
    } & Judged);

/** What every verdict on a genuine token says about time. */
export interface Judged {
  claims: LicenseClaims;
  /**
   * The highest time the server signed that this machine holds: the token's `iat`, or a check-in
   * answer's signed time when it is later and verifies under the token's certificate.
   */
  trustedTime: number;
  /** Where `trustedTime` comes from: the token, or a check-in's signed time. */
  trustedFrom: 'token' | 'check-in';
  /** The stored check-in time, when it verifies (later than the token's `iat` or not). */
  checkInTime: number | null;
  /** The time the verdict went by: the latest of the clock (held at its high-water mark) and `trustedTime`. */
  judgedAt: number;
}

export interface AssessInput {
  token: string;
  /** The root's certificate of the key that signed the token. */
  certificate: unknown;
  root: KeyObject;
  fingerprint: string;
  /** The clock's time, already held at the high-water mark. */
  now: number;
  /** A check-in's signed time, as stored: counted only if it verifies under `certificate`. */
  timeStatement?: unknown;
}

/** Far beyond any lease: the signature and machine are checked here, the times below. */
const ANY_AGE_MS = Number.MAX_SAFE_INTEGER;

/** The time a stored statement carries, or null when it is absent or does not verify under the certificate. */
function statedTime(statement: unknown, certificate: unknown, root: KeyObject): number | null {
  if (statement === undefined || statement === null) return null;
  try {
    return verifyTime(statement, certifiedKey(root, certificate));
  } catch (err) {
    if (err instanceof TrustError) return null;
    throw err;
  }
}

export function assessLicense({ token, certificate, root, fingerprint, now, timeStatement }: AssessInput): Assessment {
  let claims: LicenseClaims;
  try {
    claims = verifyCertifiedToken(token, certificate, root, { fingerprint, now, acceptExpiredForMs: ANY_AGE_MS }).claims;
  } catch (err) {
    if (err instanceof TrustError) return { verdict: 'invalid', reason: err.message, untrusted: true };
    if (err instanceof TokenError) return { verdict: 'invalid', reason: err.message, untrusted: err.code !== 'TOKEN_WRONG_MACHINE' };
    throw err;
  }
  // The server issued this token at `iat`, and said at a check-in that its clock had passed the
  // stated time: time on this machine cannot be earlier than either, whatever the clock says, even
  // if clock.json was removed along with a clock set back. A statement that does not verify (edited,
  // another key) is no time at all, never a reason to refuse the license.
  const issuedAt = claims.iat * 1000;
  const stated = statedTime(timeStatement, certificate, root);
  const fromCheckIn = stated !== null && stated > issuedAt;
  const trustedTime = fromCheckIn ? stated : issuedAt;
  const at = Math.max(now, trustedTime);
  const judged: Judged = { claims, trustedTime, trustedFrom: fromCheckIn ? 'check-in' : 'token', checkInTime: stated, judgedAt: at };
  const policy = POLICIES[claims.kind];

  if (claims.kind === 'trial' && claims.lic_exp !== undefined && at >= claims.lic_exp * 1000) {
    return { verdict: 'trial-ended', ...judged, trialEndsAt: claims.lic_exp * 1000 };
  }
  const leaseEndsAt = claims.exp * 1000;
  const usableUntil = leaseEndsAt + policy.offlineGraceMs;
  if (at >= usableUntil) return { verdict: 'lease-ended', ...judged, leaseEndsAt, usableUntil };
  return {
    verdict: 'usable',
    ...judged,
    leaseEndsAt,
    usableUntil,
    renewDue: leaseEndsAt - at < policy.renewWhenLeftMs,
    inGrace: at >= leaseEndsAt,
  };
}
