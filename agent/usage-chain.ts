import { canonicalUsageBytes, chainGenesis, usageEventHash, type ReportedUse } from '../licensing/index.js';
import type { DeviceKey } from './device-key.js';
import { withFileLock } from './file-lock.js';
import { readJsonFile, removeFile, UnreadableFileError, writeJsonAtomic } from './home.js';
import { spoolEvents, usageEventLine, type UsageEvent } from './usage-spool.js';

/**
 * The head of this activation's chain of signed usage events, `$FERRY_HOME/usage-chain.json`: the
 * last counter and the hash of the last event made (see licensing/usage-chain.ts for the encoding).
 *
 * Two events naming the same predecessor are what the server takes for a cloned installation, so
 * the honest agent must never make two, however many ferry commands run at once. Each command
 * advances the head holding `usage-chain.json.lock` (an O_EXCL lock file, file-lock.ts): read the
 * head, sign the next events, write the head, append them to the spool, release. Holding the lock
 * for the spool append too keeps the spool's lines in counter order.
 *
 * Crash safety: the head is written (atomically, with the new lines in `pending`) before the lines
 * are appended, and `pending` is cleared after. A crash between the two leaves `pending` set, and the
 * next command appends those lines first: an event is never lost (which the server would see as a
 * gap) and a counter never used twice (a fork). Appending them twice is harmless: the spool sends
 * the same line once and the server counts a resent event as a duplicate.
 */
interface ChainHead {
  format: 1;
  /** The chain belongs to this device key and activation: another (a new key) starts a new chain. */
  publicKey: string;
  activationId: number;
  counter: number;
  hash: string;
  /** Spool lines of the last events, until they are known to be in the spool. */
  pending: string[] | null;
}

/** A holder keeps the lock for a read, a signature and two small writes: milliseconds. */
const CHAIN_LOCK = { waitMs: 10_000, staleAfterMs: 60_000 };

function isHead(value: unknown): value is ChainHead {
  const h = value as Partial<ChainHead> | null;
  return typeof h === 'object' && h !== null && h.format === 1 && typeof h.publicKey === 'string' &&
    Number.isSafeInteger(h.activationId) && Number.isSafeInteger(h.counter) && typeof h.hash === 'string' &&
    (h.pending === null || (Array.isArray(h.pending) && h.pending.every((l) => typeof l === 'string')));
}

async function readHead(file: string): Promise<ChainHead | null> {
  try {
    const value = await readJsonFile(file);
    return isHead(value) ? value : null;
  } catch (err) {
    if (err instanceof UnreadableFileError) return null;
    throw err;
  }
}

export interface ChainOwner {
  activationId: number;
  key: DeviceKey;
}

/**
 * Signs `uses` as the next events of the chain and appends them to the spool. Returns false, having
 * recorded nothing, when the lock could not be had (another command holding it for 10 s: a hung
 * process; a lost use is better than a fork).
 */
export async function recordChained(headFile: string, spool: string, owner: ChainOwner, uses: ReportedUse[]): Promise<boolean> {
  const locked = await withFileLock(`${headFile}.lock`, CHAIN_LOCK, async () => {
    const kept = await readHead(headFile);
    if (kept?.pending) await spoolEvents(spool, kept.pending.map((line) => JSON.parse(line) as UsageEvent));
    const continues = kept !== null && kept.publicKey === owner.key.publicKey && kept.activationId === owner.activationId;
    // A head that is unreadable, or another key's, starts over: the server keeps a chain per key.
    let counter = continues ? kept.counter : 0;
    let prev = continues ? kept.hash : chainGenesis(owner.activationId, owner.key.publicKey);
    const events: UsageEvent[] = uses.map((use) => {
      counter += 1;
      const unsigned = { at: use.at, locale: use.locale, kind: use.kind as UsageEvent['kind'], counter, prev };
      const event: UsageEvent = { ...unsigned, sig: owner.key.sign(canonicalUsageBytes(owner.activationId, unsigned)) };
      prev = usageEventHash(owner.activationId, unsigned);
      return event;
    });
    const head: ChainHead = { format: 1, publicKey: owner.key.publicKey, activationId: owner.activationId, counter, hash: prev, pending: events.map(usageEventLine) };
    await writeJsonAtomic(headFile, head);
    await spoolEvents(spool, events);
    await writeJsonAtomic(headFile, { ...head, pending: null });
  });
  return locked.done;
}

/** After deactivation: the key is gone, and with it its chain. */
export async function removeChainHead(headFile: string): Promise<void> {
  await removeFile(headFile);
}
