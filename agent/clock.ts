import { readFile } from 'node:fs/promises';
import { AgentError } from './errors.js';
import { readJsonFile, UnreadableFileError, writeJsonAtomic } from './home.js';

/**
 * The agent's sense of time, which a clock set back cannot fool. It remembers the highest time it
 * has seen (the high-water mark). When the clock turns up well behind that mark, the agent notes
 * by how much (the skew) and from then on counts license time as clock + skew: time goes on at
 * the clock's pace from the mark, rather than standing still (which would stretch a lease for as
 * long as the clock stays back) or going back (which would lengthen a trial). Once the clock is
 * past the mark again it is trusted as it is.
 *
 * Times the license server signed (a token's `iat`, a check-in answer's `time`) raise the mark
 * too (`noteTrustedTime`): a clock found behind one of them by more than the tolerance is set back
 * as far as that, even when clock.json was removed with it. License time is thus the latest of the
 * clock, the high-water mark and the trusted time, and never goes back.
 *
 * The mark is monotonic beyond the clock too: it remembers the time since boot at which it was
 * license time (`boot`), and while the machine stays up, license time is at least the mark plus the
 * time since boot that passed since. No one can set that back, so a clock held at one time before
 * every command still sees license time go on (and is found set back); a reboot starts it over.
 */

/** NTP corrections and a few minutes' drift between boots stay below this: not a clock set back. */
export const CLOCK_SET_BACK_TOLERANCE_MS = 5 * 60_000;

export interface ClockMark {
  /** The highest license time seen, ms since the epoch. */
  highWater: number;
  /** How far the clock is known to be behind; 0 while it is not. */
  skewMs: number;
  /** The time since boot at which `highWater` was license time; absent where none is known. */
  boot?: Monotonic;
}

/** The time since this machine booted, which no user can set: the boot's id and milliseconds since it. */
export interface Monotonic {
  bootId: string;
  uptimeMs: number;
}

/** The mark as it stands now: moved on by the time since boot that passed since it was written, on the same boot. */
function markAsOfNow(mark: ClockMark | null, monotonic: Monotonic | null): ClockMark | null {
  if (!mark?.boot || !monotonic || mark.boot.bootId !== monotonic.bootId || monotonic.uptimeMs < mark.boot.uptimeMs) return mark;
  return { ...mark, highWater: mark.highWater + (monotonic.uptimeMs - mark.boot.uptimeMs) };
}

/** The next mark, with the time since boot at which it holds (when known). */
function withBoot(mark: ClockMark, monotonic: Monotonic | null | undefined): ClockMark {
  return monotonic ? { ...mark, boot: monotonic } : mark;
}

export interface ClockReading {
  /** What this machine's clock says (or FERRY_NOW). Usage events carry this time. */
  wallNow: number;
  /** The time license decisions use: never earlier than a time already seen. */
  now: number;
  /** The high-water mark before this command, or null the first time. */
  highWater: number | null;
  /** The clock is behind a time already seen (by more than the tolerance when it was found). */
  setBack: boolean;
  /** This command is the first to find the clock set back (this far): report it once. */
  newlySetBack: boolean;
}

export function judgeClock(wallNow: number, stored: ClockMark | null, monotonic: Monotonic | null = null): { reading: ClockReading; next: ClockMark } {
  const mark = markAsOfNow(stored, monotonic);
  if (mark === null || wallNow >= mark.highWater) {
    // The first run, or a clock at or past everything seen: trust it, and forget any old skew.
    const reading = { wallNow, now: wallNow, highWater: mark?.highWater ?? null, setBack: false, newlySetBack: false };
    return { reading, next: withBoot({ highWater: wallNow, skewMs: 0 }, monotonic) };
  }
  let skewMs = mark.skewMs;
  let newlySetBack = false;
  if (wallNow + skewMs < mark.highWater - CLOCK_SET_BACK_TOLERANCE_MS) {
    skewMs = mark.highWater - wallNow;
    newlySetBack = true;
  }
  const now = Math.max(wallNow + skewMs, mark.highWater);
  return {
    reading: { wallNow, now, highWater: mark.highWater, setBack: skewMs > 0, newlySetBack },
    next: withBoot({ highWater: now, skewMs }, monotonic),
  };
}

/**
 * A time the license server signed, in the light of this command's reading: license time is never
 * earlier than it, and a clock behind it by more than the tolerance is that far behind from now on
 * (the skew). Null when the reading already is at or past it.
 */
export function judgeTrustedTime(
  reading: ClockReading, mark: ClockMark | null, trusted: number, monotonic: Monotonic | null = null,
): { reading: ClockReading; next: ClockMark } | null {
  if (trusted <= reading.now) return null;
  const known = markAsOfNow(mark, monotonic) ?? { highWater: reading.now, skewMs: 0 };
  const behind = trusted - reading.wallNow;
  const skewMs = behind > CLOCK_SET_BACK_TOLERANCE_MS ? Math.max(known.skewMs, behind) : known.skewMs;
  const next = withBoot({ highWater: Math.max(known.highWater, trusted), skewMs }, monotonic);
  const now = Math.max(trusted, reading.wallNow + skewMs);
  return {
    reading: { ...reading, now, setBack: reading.setBack || skewMs > 0, newlySetBack: reading.newlySetBack || skewMs > known.skewMs },
    next,
  };
}

interface ClockFile {
  highWater: string;
  skewMs: number;
  boot?: { id: string; uptimeMs: number };
}

async function readMark(file: string): Promise<ClockMark | null> {
  let stored: unknown;
  try {
    stored = await readJsonFile(file);
  } catch (err) {
    // A damaged mark is as good as none; the token's issue time still bounds how far back time can go.
    if (err instanceof UnreadableFileError) return null;
    throw err;
  }
  const { highWater, skewMs, boot } = (stored ?? {}) as Partial<ClockFile>;
  const ms = typeof highWater === 'string' ? Date.parse(highWater) : NaN;
  if (!Number.isFinite(ms)) return null;
  const mark: ClockMark = { highWater: ms, skewMs: Number.isSafeInteger(skewMs) && skewMs! > 0 ? skewMs! : 0 };
  if (typeof boot?.id === 'string' && Number.isSafeInteger(boot.uptimeMs) && boot.uptimeMs >= 0) mark.boot = { bootId: boot.id, uptimeMs: boot.uptimeMs };
  return mark;
}

/** Reads the clock for this command and moves the mark on. */
export async function readClock(file: string, wallNow: number, monotonic: Monotonic | null = null): Promise<ClockReading> {
  const mark = await readMark(file);
  const { reading, next } = judgeClock(wallNow, mark, monotonic);
  if (mark === null || next.highWater !== mark.highWater || next.skewMs !== mark.skewMs || next.boot !== undefined) await writeMark(file, next);
  return reading;
}

async function writeMark(file: string, mark: ClockMark): Promise<void> {
  const stored: ClockFile = { highWater: new Date(mark.highWater).toISOString(), skewMs: mark.skewMs };
  if (mark.boot) stored.boot = { id: mark.boot.bootId, uptimeMs: mark.boot.uptimeMs };
  await writeJsonAtomic(file, stored);
}

/**
 * The time since boot, where the system tells it (Linux: the boot id and /proc/uptime, which
 * count on through suspend); null elsewhere, and then the mark moves with the clock alone.
 */
export async function readMonotonic(): Promise<Monotonic | null> {
  try {
    const [bootId, uptime] = await Promise.all([
      readFile('/proc/sys/kernel/random/boot_id', 'utf8'), readFile('/proc/uptime', 'utf8'),
    ]);
    const uptimeMs = Math.floor(Number(uptime.split(' ')[0]) * 1000);
    return bootId.trim() && Number.isSafeInteger(uptimeMs) ? { bootId: bootId.trim(), uptimeMs } : null;
  } catch {
    return null;
  }
}

/** FERRY_UPTIME, for tests only: milliseconds since a boot of its own, in place of the system's. */
export function parseFerryUptime(text: string): Monotonic {
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed) || !Number.isSafeInteger(Number(trimmed))) {
    throw new AgentError('USAGE', `FERRY_UPTIME must be milliseconds since boot, got "${text}"`);
  }
  return { bootId: 'FERRY_UPTIME', uptimeMs: Number(trimmed) };
}

/** Moves the mark on to a time the server signed (see `judgeTrustedTime`); the reading as it now stands. */
export async function noteTrustedTime(file: string, reading: ClockReading, trusted: number, monotonic: Monotonic | null = null): Promise<ClockReading> {
  if (trusted <= reading.now) return reading;
  const judged = judgeTrustedTime(reading, await readMark(file), trusted, monotonic);
  if (!judged) return reading;
  await writeMark(file, judged.next);
  return judged.reading;
}

/**
 * FERRY_NOW, for tests only: an ISO date or milliseconds since the epoch that the agent takes as
 * the clock's time.
 */
export function parseFerryNow(text: string): number {
  const trimmed = text.trim();
  const ms = /^\d+$/.test(trimmed) ? Number(trimmed) : Date.parse(trimmed);
  if (!Number.isSafeInteger(ms)) {
    throw new AgentError('USAGE', `FERRY_NOW must be an ISO date or milliseconds since 1970, got "${text}"`);
  }
  return ms;
}
