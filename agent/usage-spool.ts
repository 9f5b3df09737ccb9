import { randomBytes } from 'node:crypto';
import { readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { USAGE_BATCH_MAX, USAGE_KINDS, type UsageKind } from '../licensing/index.js';
import { appendPrivateLine, readTextFile } from './home.js';

/**
 * The usage spool: trial usage events waiting to be sent, one JSON object a line in
 * `$FERRY_HOME/usage-spool.jsonl`.
 *
 * Several ferry commands may run at once (a long transfer and a `ferry status`), so the spool is
 * never rewritten in place: events are added with one O_APPEND write each, and a flush first
 * renames the spool away (atomic: later events start a new spool), sends what it took, and
 * appends back what the server did not take. A crash midway leaves a claimed file that the next
 * flush picks up; the server stores each (activation, at, kind) once, so sending twice is harmless,
 * while losing events is not.
 */
export interface UsageEvent {
  /** ISO time with milliseconds. */
  at: string;
  locale: string;
  kind: UsageKind;
}

/** How one batch went: sent (remove), keep (try again later), drop (the server will never take it). */
export type BatchOutcome = 'sent' | 'keep' | 'drop';

export interface FlushResult {
  sent: number;
  kept: number;
  dropped: number;
}

const CLAIMED_MARK = '.sending-';

function isUsageEvent(value: unknown): value is UsageEvent {
  const e = value as Partial<UsageEvent> | null;
  return (
    typeof e === 'object' && e !== null &&
    typeof e.at === 'string' && typeof e.locale === 'string' &&
    USAGE_KINDS.includes(e.kind as UsageKind)
  );
}

function parseLines(text: string): UsageEvent[] {
  const events: UsageEvent[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const value: unknown = JSON.parse(line);
      if (isUsageEvent(value)) events.push({ at: value.at, locale: value.locale, kind: value.kind });
    } catch {
      // A line cut short by a crash: the rest of the spool is still good.
    }
  }
  return events;
}

function serialize(events: UsageEvent[]): string {
  return events.map((e) => JSON.stringify({ at: e.at, locale: e.locale, kind: e.kind })).join('\n');
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

/** Events waiting to be sent, claimed ones included. */
export async function countSpooled(spool: string): Promise<number> {
  return (await readEvents([spool, ...(await claimedFiles(spool))])).length;
}

/** Same time and kind is the same event to the server; send it once. */
function withoutDuplicates(events: UsageEvent[]): UsageEvent[] {
  const seen = new Set<string>();
  return events.filter((e) => {
    const key = `${e.at}|${e.kind}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * Sends the spool in batches of at most `batchMax` through `send`. Stops at the first batch to
 * keep (the server is down or not taking them now) and puts it and the rest back in the spool.
 */
export async function flushSpool(
  spool: string,
  send: (events: UsageEvent[]) => Promise<BatchOutcome>,
  batchMax: number = USAGE_BATCH_MAX,
): Promise<FlushResult> {
  try {
    await rename(spool, `${spool}${CLAIMED_MARK}${process.pid}-${randomBytes(4).toString('hex')}`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const claimed = await claimedFiles(spool);
  const events = withoutDuplicates(await readEvents(claimed));

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
