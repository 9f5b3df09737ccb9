/** How the agent writes times and ids for people. */

/** `2025-03-01 14:05 UTC`: the same on every machine, so a support call can compare. */
export function formatTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** Enough of a fingerprint to tell machines apart on screen. */
export function shortFingerprint(fingerprint: string): string {
  return `${fingerprint.slice(0, 12)}…`;
}

/** `12h`, `4d`: for renewal margins and grace periods. */
export function formatSpan(ms: number): string {
  const hours = ms / 3_600_000;
  return hours >= 48 && hours % 24 === 0 ? `${hours / 24}d` : `${Math.round(hours)}h`;
}
