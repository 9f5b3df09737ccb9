import { AgentError } from './errors.js';
import { readJsonFile, UnreadableFileError, writeJsonAtomic } from './home.js';

/**
 * The agent remembers the highest time it has seen. A clock more than this much behind that mark
 * was set back on purpose: NTP corrections and a few minutes' drift between boots stay below it.
 */
export const CLOCK_SET_BACK_TOLERANCE_MS = 5 * 60_000;

export interface ClockReading {
  /** What this machine's clock says (or FERRY_NOW). Usage events carry this time. */
  wallNow: number;
  /** The time expiry decisions use: never earlier than the high-water mark. */
  now: number;
  /** The highest time seen before this command, or null the first time. */
  highWater: number | null;
  /** The clock is behind the high-water mark by more than the tolerance. */
  setBack: boolean;
}

/**
 * Judges the clock against the high-water mark. A clock set back does not move time back for the
 * license: `now` stays at the mark, so setting the clock back never lengthens a trial or a lease.
 */
export function judgeClock(wallNow: number, highWater: number | null): ClockReading {
  if (highWater === null) return { wallNow, now: wallNow, highWater, setBack: false };
  const setBack = wallNow < highWater - CLOCK_SET_BACK_TOLERANCE_MS;
  return { wallNow, now: Math.max(wallNow, highWater), highWater, setBack };
}

interface ClockFile {
  highWater: string;
}

async function readHighWater(file: string): Promise<number | null> {
  let stored: unknown;
  try {
    stored = await readJsonFile(file);
  } catch (err) {
    // A damaged mark is as good as none; the token's issue time still bounds how far back time can go.
    if (err instanceof UnreadableFileError) return null;
    throw err;
  }
  const text = (stored as Partial<ClockFile> | undefined)?.highWater;
  const ms = typeof text === 'string' ? Date.parse(text) : NaN;
  return Number.isFinite(ms) ? ms : null;
}

/** Reads the clock for this command and raises the high-water mark to it. */
export async function readClock(file: string, wallNow: number): Promise<ClockReading> {
  const highWater = await readHighWater(file);
  const reading = judgeClock(wallNow, highWater);
  if (highWater === null || wallNow > highWater) {
    const mark: ClockFile = { highWater: new Date(wallNow).toISOString() };
    await writeJsonAtomic(file, mark);
  }
  return reading;
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
