/**
 * License kinds and the policy each one carries. The server signs leases by these numbers and
 * the agent decides from them when to renew and how long it may work offline.
 */
export const LICENSE_KINDS = ['trial', 'permanent'] as const;
export type LicenseKind = (typeof LICENSE_KINDS)[number];

export const LICENSE_STATUSES = ['active', 'suspended', 'revoked', 'cancelled'] as const;
export type LicenseStatus = (typeof LICENSE_STATUSES)[number];

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export interface LicensePolicy {
  /** How long one signed lease (token) lasts before it must be renewed online. */
  leaseMs: number;
  /** The agent renews once this much of the lease is left, so a short outage never bites. */
  renewWhenLeftMs: number;
  /**
   * How long after the lease ends the agent keeps working offline, and the server still accepts
   * the old token for renewal. Trials get none: a trial must check in to keep counting.
   */
  offlineGraceMs: number;
}

export const POLICIES: Record<LicenseKind, LicensePolicy> = {
  // A day: short enough that a revoked or expired trial stops soon, long enough to ride out a restart.
  trial: { leaseMs: DAY, renewWhenLeftMs: 12 * HOUR, offlineGraceMs: 0 },
  // A week with two weeks of grace: a laptop on a long trip keeps working.
  permanent: { leaseMs: 7 * DAY, renewWhenLeftMs: 4 * DAY, offlineGraceMs: 14 * DAY },
};

/** A lease never outlives the license it belongs to: a trial's lease ends with the trial. */
export function leaseEnd(kind: LicenseKind, now: number, licenseExpiresAt: number | null): number {
  const end = now + POLICIES[kind].leaseMs;
  return licenseExpiresAt === null ? end : Math.min(end, licenseExpiresAt);
}

/** The kinds of use the agent reports during a trial: the command's kind only, never its arguments. */
export const USAGE_KINDS = [
  'activate', 'status', 'deactivate', 'privacy',
  'put', 'get', 'ls', 'mkdir', 'rm', 'mv', 'sync',
  'clock_set_back',
] as const;
export type UsageKind = (typeof USAGE_KINDS)[number];

/** Most usage events one `POST /v1/usage` takes; the agent sends a longer spool in several batches. */
export const USAGE_BATCH_MAX = 500;
