import { randomBytes } from 'node:crypto';
import { readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CHAIN_HASH_PATTERN, CHAIN_SIGNATURE_PATTERN, USAGE_BATCH_MAX, USAGE_KINDS, type UsageKind } from '../licensing/index.js';
import { withFileLock } from './file-lock.js';
import { appendPrivateLine, readTextFile } from './home.js';

/**
 * The usage spool: trial usage events waiting to be sent, one JSON object a line in
 * `$FERRY_HOME/usage-spool.jsonl`, each line exactly the JSON that goes to the server.
 *
 * Several ferry commands may run at once (a long transfer and a `ferry status`), so the spool is
 * never rewritten in place: events are added with one O_APPEND write each (under the chain's lock,
 * see usage-chain.ts, so the lines come in counter order), and a flush first renames the spool away
 * (atomic: later events start a new spool), sends what it took, and appends back what the server
 * did not take. A crash midway leaves a claimed file that the next flush picks up; the server stores
 * each event once, so sending twice is harmless, while losing events is not.
 *
 * One flush at a time (a lock beside the spool; a command that finds a flush running leaves its
 * events to it or to the next command): two flushes at once could send a later event before an
 * earlier one that the other put back, which the server would rightly see as a gap in the chain.
 */
export interface UsageEvent {
  /** ISO time with milliseconds. */
  at: string;
  locale: string;
  kind: UsageKind;
  /** Signed events (an activation with a device key): the place in the chain and the signature. */
  counter?: number;
  prev?: string;
  sig?: string;
}

/** How one batch went: sent (remove), keep (try again later), drop (the server will never take it). */
export type BatchOutcome = 'sent' | 'keep' | 'drop';

export interface FlushResult {
  sent: number;
  kept: number;
  dropped: number;
}

const CLAIMED_MARK = '.sending-';
const FLUSH_LOCK_MARK = '.flush.lock';
/** A flush holds its lock while it sends: a few batches, each with the background timeout. */
const FLUSH_STALE_MS = 10 * 60_000;

const HASH_RE = new RegExp(CHAIN_HASH_PATTERN);
const SIGNATURE_RE = new RegExp(CHAIN_SIGNATURE_PATTERN);

function isChainPart(e: Partial<UsageEvent>): boolean {
  if (e.counter === undefined && e.prev === undefined && e.sig === undefined) return true;
  return Number.isSafeInteger(e.counter) && e.counter! > 0 && typeof e.prev === 'string' && HASH_RE.test(e.prev) &&
    typeof e.sig === 'string' && SIGNATURE_RE.test(e.sig);
}

function isUsageEvent(value: unknown): value is UsageEvent {
  const e = value as Partial<UsageEvent> | null;
  return (
    typeof e === 'object' && e !== null &&
    typeof e.at === 'string' && typeof e.locale === 'string' &&
    USAGE_KINDS.includes(e.kind as UsageKind) && isChainPart(e)
  );
}

/** The event with its fields in their fixed order: a spool line, and the object sent. */
function ordered(e: UsageEvent): UsageEvent {
  return e.counter === undefined
    ? { at: e.at, locale: e.locale, kind: e.kind }
    : { at: e.at, locale: e.locale, kind: e.kind, counter: e.counter, prev: e.prev!, sig: e.sig! };
}

/** One spool line: the JSON of the event exactly as it is sent (inside `{"events": [...]}`). */
export function usageEventLine(e: UsageEvent): string {
  return JSON.stringify(ordered(e));
}

function parseLines(text: string): UsageEvent[] {
  const events: UsageEvent[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const value: unknown = JSON.parse(line);
      if (isUsageEvent(value)) events.push(ordered(value));
    } catch {
      // A line cut short by a crash: the rest of the spool is still good.
    }
  }
  return events;
}

function serialize(events: UsageEvent[]): string {
  return events.map(usageEventLine).join('\n');
}

/** Adds events to the spool in one write. */
export async function spoolEvents(spool: string, events: UsageEvent[]): Promise<void> {
  if (events.length > 0) await appendPrivateLine(spool, serialize(events));
}

/** Spool files claimed by flushes that did not finish (or are running now). */
async function claimedFiles(spool: string): Promise<string[]> {
  const prefix = basename(spool) + CLAIMED_MARK;
  const names = await readdir(dirname(spool)).catch(() => [] as string[]);
  return names.filter((name) => name.startsWith(prefix)).map((name) => join(dirname(spool), name));
}

async function readEvents(files: string[]): Promise<UsageEvent[]> {
  const events: UsageEvent[] = [];
  for (const file of files) events.push(...parseLines((await readTextFile(file)) ?? ''));
  return events;
}

/**
 * Events waiting to be sent, claimed ones included, as they will be sent: each once, signed ones in
 * the order of their counters.
 */
export async function spooledEvents(spool: string): Promise<UsageEvent[]> {
  return inSendingOrder(await readEvents([spool, ...(await claimedFiles(spool))]));
}

export async function countSpooled(spool: string): Promise<number> {
  return (await spooledEvents(spool)).length;
}

/**
 * The same event twice (a line put back by a flush that crashed, or by the chain's crash recovery)
 * is sent once; the chain's events go in counter order (a flush puts back unsent ones after lines
 * appended meanwhile). Unsigned events keep their order, ahead of signed ones.
 */
function inSendingOrder(events: UsageEvent[]): UsageEvent[] {
  const seen = new Set<string>();
  const once = events.filter((e) => {
    // Unsigned: the same time and kind is the same event to the server. Signed: the same line.
    const key = e.counter === undefined ? `${e.at}|${e.kind}` : usageEventLine(e);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return once.sort((a, b) => (a.counter ?? 0) - (b.counter ?? 0));
}

/**
 * Sends the spool in batches of at most `batchMax` through `send`. Stops at the first batch to
 * keep (the server is down or not taking them now) and puts it and the rest back in the spool.
 * Sends nothing when another flush is running.
 */
export async function flushSpool(
  spool: string,
  send: (events: UsageEvent[]) => Promise<BatchOutcome>,
  batchMax: number = USAGE_BATCH_MAX,
): Promise<FlushResult> {
  const flushed = await withFileLock(`${spool}${FLUSH_LOCK_MARK}`, { waitMs: 0, staleAfterMs: FLUSH_STALE_MS }, () => flushClaimed(spool, send, batchMax));
  // Another command is flushing: it, or the next command, sends what is there.
  return flushed.done ? flushed.value : { sent: 0, kept: 0, dropped: 0 };
}

async function flushClaimed(
  spool: string,
  send: (events: UsageEvent[]) => Promise<BatchOutcome>,
  batchMax: number,
): Promise<FlushResult> {
  try {
    await rename(spool, `${spool}${CLAIMED_MARK}${process.pid}-${randomBytes(4).toString('hex')}`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const claimed = await claimedFiles(spool);
  const events = inSendingOrder(await readEvents(claimed));

  const result: FlushResult = { sent: 0, kept: 0, dropped: 0 };
  let kept: UsageEvent[] = [];
  for (let start = 0; start < events.length; start += batchMax) {
    const batch = events.slice(start, start + batchMax);
    const outcome = await send(batch).catch((): BatchOutcome => 'keep');
    if (outcome === 'keep') {
      kept = events.slice(start);
      break;
    }
    if (outcome === 'sent') result.sent += batch.length;
    else result.dropped += batch.length;
  }
  result.kept = kept.length;

  // Back in the spool before the claimed files go: a crash between the two sends twice, never loses.
  await spoolEvents(spool, kept);
  for (const file of claimed) await unlink(file).catch(() => undefined);
  return result;
}

/** Removes the spool and any claimed files: for when no one will ever take these events. */
export async function discardSpool(spool: string): Promise<void> {
  for (const file of [spool, ...(await claimedFiles(spool))]) await unlink(file).catch(() => undefined);
}
