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

/**
 * A size as `ls -lh` shows it: bytes below 1024, else K, M, G, T, P (powers of 1024) with one
 * decimal below 10; rounded up, as GNU ls does, so that a file never looks smaller than it is.
 */
export function humanSize(bytes: number): string {
  if (bytes < 1024) return String(bytes);
  const units = ['K', 'M', 'G', 'T', 'P', 'E'];
  let value = bytes / 1024;
  let unit = 0;
  for (;;) {
    const shown = value < 10 ? Math.ceil(value * 10) / 10 : Math.ceil(value);
    if (shown < 1024 || unit === units.length - 1) return `${shown < 10 ? shown.toFixed(1) : shown}${units[unit]}`;
    value /= 1024;
    unit++;
  }
}
