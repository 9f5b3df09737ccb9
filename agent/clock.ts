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
 */

/** NTP corrections and a few minutes' drift between boots stay below this: not a clock set back. */
export const CLOCK_SET_BACK_TOLERANCE_MS = 5 * 60_000;

export interface ClockMark {
  /** The highest license time seen, ms since the epoch. */
  highWater: number;
  /** How far the clock is known to be behind; 0 while it is not. */
  skewMs: number;
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

export function judgeClock(wallNow: number, mark: ClockMark | null): { reading: ClockReading; next: ClockMark } {
  if (mark === null || wallNow >= mark.highWater) {
    // The first run, or a clock at or past everything seen: trust it, and forget any old skew.
    const reading = { wallNow, now: wallNow, highWater: mark?.highWater ?? null, setBack: false, newlySetBack: false };
    return { reading, next: { highWater: wallNow, skewMs: 0 } };
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
    next: { highWater: now, skewMs },
  };
}

/**
 * A time the license server signed, in the light of this command's reading: license time is never
 * earlier than it, and a clock behind it by more than the tolerance is that far behind from now on
 * (the skew). Null when the reading already is at or past it.
 */
export function judgeTrustedTime(reading: ClockReading, mark: ClockMark | null, trusted: number): { reading: ClockReading; next: ClockMark } | null {
  if (trusted <= reading.now) return null;
  const known = mark ?? { highWater: reading.now, skewMs: 0 };
  const behind = trusted - reading.wallNow;
  const skewMs = behind > CLOCK_SET_BACK_TOLERANCE_MS ? Math.max(known.skewMs, behind) : known.skewMs;
  const next = { highWater: Math.max(known.highWater, trusted), skewMs };
  const now = Math.max(trusted, reading.wallNow + skewMs);
  return {
    reading: { ...reading, now, setBack: reading.setBack || skewMs > 0, newlySetBack: reading.newlySetBack || skewMs > known.skewMs },
    next,
  };
}

interface ClockFile {
  highWater: string;
  skewMs: number;
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
  const { highWater, skewMs } = (stored ?? {}) as Partial<ClockFile>;
  const ms = typeof highWater === 'string' ? Date.parse(highWater) : NaN;
  if (!Number.isFinite(ms)) return null;
  return { highWater: ms, skewMs: Number.isSafeInteger(skewMs) && skewMs! > 0 ? skewMs! : 0 };
}

/** Reads the clock for this command and moves the mark on. */
export async function readClock(file: string, wallNow: number): Promise<ClockReading> {
  const mark = await readMark(file);
  const { reading, next } = judgeClock(wallNow, mark);
  if (mark === null || next.highWater !== mark.highWater || next.skewMs !== mark.skewMs) await writeMark(file, next);
  return reading;
}

async function writeMark(file: string, mark: ClockMark): Promise<void> {
  const stored: ClockFile = { highWater: new Date(mark.highWater).toISOString(), skewMs: mark.skewMs };
  await writeJsonAtomic(file, stored);
}

/** Moves the mark on to a time the server signed (see `judgeTrustedTime`); the reading as it now stands. */
export async function noteTrustedTime(file: string, reading: ClockReading, trusted: number): Promise<ClockReading> {
  if (trusted <= reading.now) return reading;
  const judged = judgeTrustedTime(reading, await readMark(file), trusted);
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
