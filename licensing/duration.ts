/** Durations as people write them in settings: `90s`, `15m`, `12h`, `30d`. */
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

const DURATION = /^(\d+)(s|m|h|d)$/;

/** Parses `30d`, `60s`… into milliseconds; returns null for anything else (including 0). */
export function parseDuration(text: string): number | null {
  const match = DURATION.exec(text.trim());
  if (!match) return null;
  const ms = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
  return ms > 0 && Number.isSafeInteger(ms) ? ms : null;
}

/** `7d,1d` → [604800000, 86400000]; null when any part is not a duration. */
export function parseDurationList(text: string): number[] | null {
  const parts = text.split(',').map((p) => p.trim()).filter((p) => p !== '');
  const values = parts.map(parseDuration);
  return values.some((v) => v === null) ? null : (values as number[]);
}

export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', UNIT_MS.d], ['h', UNIT_MS.h], ['m', UNIT_MS.m]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${Math.round(ms / 1000)}s`;
}
