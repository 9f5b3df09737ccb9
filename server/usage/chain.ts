import type { PoolConnection, RowDataPacket } from 'mysql2/promise';
import { chainGenesis, usageEventHash, type ChainedUse } from '../../licensing/index.js';

/**
 * Judges signed usage events against the chain the server holds for (activation, device key): each
 * event must follow the one it names (`prev`) with the next counter, and no two may follow the same
 * one. What is judged here has a valid signature already (routes.ts checks it first), so whatever
 * is wrong was made by the holder of the device key: a copied ferry home on a second machine (a
 * fork), an edited or restored spool (a replay, a counter going back), events held back (a gap), or
 * a clock set back behind the chain's own times.
 *
 * The honest agent advances its chain under a lock and sends it in counter order, one flush at a
 * time (agent/usage-chain.ts, agent/usage-spool.ts), so none of these come from it; a gap that it
 * fills later (events lost in a batch the server refused whole, then resent) is taken then.
 */

/** Signals of a chain; the kinds of license_events and piracy_signals (migration 015). */
export const CHAIN_SIGNALS = ['usage_forged', 'usage_replay', 'usage_gap', 'usage_fork', 'usage_counter_back', 'usage_time_back', 'usage_before_trial'] as const;
export type ChainSignal = (typeof CHAIN_SIGNALS)[number];

/**
 * How far an event may be dated before its predecessor before that counts as time going back:
 * the agent dates an event when its command starts, so two commands started together may reach the
 * chain's lock in the other order.
 */
export const TIME_BACK_TOLERANCE_MS = 10 * 60_000;

export interface ChainFinding {
  signal: ChainSignal;
  message: string;
}

/** What becomes of one event: stored (perhaps with findings), a duplicate, or refused. */
export type ChainVerdict =
  | { outcome: 'store'; hash: Buffer; findings: ChainFinding[] }
  | { outcome: 'duplicate' }
  | { outcome: 'refuse'; code: string; finding: ChainFinding };

interface Link {
  counter: number;
  hash: string;
  prev: string | null;
  at: Date | null;
}

export interface Chain {
  id: number;
  head: Link;
}

const hex = (b: Buffer | null) => (b === null ? null : b.toString('base64url'));

/** The chain of this activation and key, created at its genesis when new, locked until the transaction ends. */
export async function lockChain(db: PoolConnection, activationId: number, deviceKey: Buffer): Promise<Chain> {
  const genesis = Buffer.from(chainGenesis(activationId, deviceKey.toString('base64url')), 'base64url');
  await db.execute('INSERT IGNORE INTO usage_chains (activation_id, device_key, head_hash) VALUES (?, ?, ?)', [activationId, deviceKey, genesis]);
  const [rows] = await db.execute<RowDataPacket[]>(
    'SELECT id, head_counter, head_hash, head_at FROM usage_chains WHERE activation_id = ? AND device_key = ? FOR UPDATE',
    [activationId, deviceKey],
  );
  const row = rows[0]!;
  return { id: Number(row.id), head: { counter: Number(row.head_counter), hash: hex(row.head_hash as Buffer)!, prev: null, at: row.head_at as Date | null } };
}

/**
 * The stored events a batch can touch (at, before and after its counters, and those its hashes
 * name), indexed three ways; events judged good are added as they are judged, so a batch is judged
 * as if its events came one by one.
 */
class KnownLinks {
  private readonly byHash = new Map<string, Link>();
  private readonly byCounter = new Map<number, Link>();
  private readonly byPrev = new Map<string, Link>();

  add(link: Link): void {
    this.byHash.set(link.hash, link);
    this.byCounter.set(link.counter, link);
    if (link.prev !== null) this.byPrev.set(link.prev, link);
  }

  hash(h: string) { return this.byHash.get(h); }
  counter(c: number) { return this.byCounter.get(c); }
  after(prev: string) { return this.byPrev.get(prev); }

  static async load(db: PoolConnection, chainId: number, events: { counter: number; prev: string; hash: string }[]): Promise<KnownLinks> {
    const known = new KnownLinks();
    if (events.length === 0) return known;
    const counters = [...new Set(events.flatMap((e) => [e.counter - 1, e.counter, e.counter + 1]))];
    const hashes = [...new Set(events.flatMap((e) => [e.hash, e.prev]))].map((h) => Buffer.from(h, 'base64url'));
    const [rows] = await db.query<RowDataPacket[]>(
      `SELECT counter, hash, prev_hash, occurred_at FROM usage_events
        WHERE chain_id = ? AND (counter IN (?) OR hash IN (?) OR prev_hash IN (?))`,
      [chainId, counters, hashes, hashes],
    );
    for (const r of rows) known.add({ counter: Number(r.counter), hash: hex(r.hash as Buffer)!, prev: hex(r.prev_hash as Buffer), at: r.occurred_at as Date });
    return known;
  }
}

export interface JudgedEvent {
  event: ChainedUse;
  at: Date;
}

/** Judges `events` (valid signatures, real times) in the order given, against `chain`, and moves its head. */
export async function judgeChain(db: PoolConnection, chain: Chain, activationId: number, deviceKey: Buffer, events: JudgedEvent[]): Promise<ChainVerdict[]> {
  const genesis = chainGenesis(activationId, deviceKey.toString('base64url'));
  const hashed = events.map(({ event }) => ({ counter: event.counter, prev: event.prev, hash: usageEventHash(activationId, event) }));
  const known = await KnownLinks.load(db, chain.id, hashed);
  const head = { ...chain.head };

  const verdicts = events.map(({ event, at }, i): ChainVerdict => {
    const { counter: c, prev: p, hash: h } = hashed[i]!;
    const refuse = (code: string, signal: ChainSignal, message: string): ChainVerdict => ({ outcome: 'refuse', code, finding: { signal, message } });
    if (known.hash(h)) return { outcome: 'duplicate' };

    const predecessor: Link | undefined = p === genesis ? { counter: 0, hash: genesis, prev: null, at: null } : known.hash(p);
    const sibling = known.after(p);
    if (sibling) return refuse('USAGE_FORK', 'usage_fork', `event ${c} follows the same event as the stored event ${sibling.counter}: two histories of one installation`);
    if (predecessor && c <= predecessor.counter) {
      return refuse('USAGE_COUNTER_BACK', 'usage_counter_back', `event ${c} names event ${predecessor.counter} as its predecessor: the counter went back`);
    }
    if (known.counter(c)) return refuse('USAGE_REPLAY', 'usage_replay', `event ${c} was received before with other content`);
    const next = known.counter(c + 1);
    if (next && next.prev !== null && next.prev !== h) {
      return refuse('USAGE_FORK', 'usage_fork', `event ${c} is not the one the stored event ${c + 1} follows: two histories of one installation`);
    }
    if (!predecessor && c === 1) return refuse('USAGE_CHAIN_INVALID', 'usage_forged', 'event 1 does not start from this activation\'s genesis value');
    const before = known.counter(c - 1);
    if (!predecessor && before) {
      return refuse('USAGE_FORK', 'usage_fork', `event ${c} does not follow the stored event ${c - 1}: two histories of one installation`);
    }

    const findings: ChainFinding[] = [];
    if (!predecessor) findings.push({ signal: 'usage_gap', message: `event ${c} arrived without event ${c - 1}: events missing` });
    else if (c > predecessor.counter + 1) findings.push({ signal: 'usage_gap', message: `the counter jumps from ${predecessor.counter} to ${c}: ${c - predecessor.counter - 1} event(s) missing` });
    const reference = predecessor ?? before ?? (c > head.counter ? head : undefined);
    if (reference?.at && at.getTime() < reference.at.getTime() - TIME_BACK_TOLERANCE_MS) {
      findings.push({ signal: 'usage_time_back', message: `event ${c} is dated ${at.toISOString()}, before its predecessor's ${reference.at.toISOString()}: the clock went back` });
    }
    known.add({ counter: c, hash: h, prev: p, at });
    if (c > head.counter) Object.assign(head, { counter: c, hash: h, at });
    return { outcome: 'store', hash: Buffer.from(h, 'base64url'), findings };
  });

  if (head.counter !== chain.head.counter) {
    await db.execute('UPDATE usage_chains SET head_counter = ?, head_hash = ?, head_at = ? WHERE id = ?', [head.counter, Buffer.from(head.hash, 'base64url'), head.at, chain.id]);
  }
  return verdicts;
}
