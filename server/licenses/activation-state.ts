import { performance } from 'node:perf_hooks';
import type { Pool } from 'mysql2/promise';
import {
  stateRows, type ActivationRow, type ActivationVersion, type LicenseFacts, type LicenseVersion,
} from './repository.js';

/**
 * Everything a validation reads, held in the process: every activation (its license, machine,
 * whether it is active, the digest of its current token) and every license (kind, status, seats,
 * end). Agents check in every hour, each from its own activation, so no cache of recent ones would
 * help: a check-in reads memory, never MariaDB.
 *
 * Loaded at start, page by page, and kept current three ways:
 * - a change message (license-changes.ts, over Redis): the license (with all its activations) or
 *   the activation is dropped at once (validations of it read MariaDB until it is back) and read
 *   again;
 * - a catch-up every `catchUpEveryMs`: the rows whose `updated_at` (migration 017, set by MariaDB on
 *   every UPDATE, whoever makes it) is newer than the last look, minus `overlapMs` for transactions
 *   that committed after their statement ran. A lost message, or a change that sent none, is seen
 *   at the next catch-up;
 * - a validation of an activation not held (made on another server a moment ago) reads it, batched
 *   with the other misses of the moment, and keeps it.
 * While catch-ups fail (MariaDB away), what is held is used for `maxStaleMs` after the last one
 * that worked began, then no longer: every validation reads MariaDB (and fails as it does).
 *
 * Compact: activations live in typed arrays indexed by a slot (a Map from activation id to slot);
 * licenses in a Map of small records. 300,000 activations and 100,000 licenses: 74 MiB in all
 * (bench/state-memory.ts).
 */

/** What a validation reads of an activation. */
export interface ActivationFacts extends Pick<ActivationRow, 'id' | 'license_id' | 'fingerprint' | 'active' | 'converted_from_license_id'> {
  /** ms since the epoch; null: never. */
  lastValidatedMs: number | null;
}

export interface HeldActivation {
  activation: ActivationFacts;
  license: LicenseFacts;
  /**
   * SHA-256 of the token last issued to the activation; null when none was recorded. From memory,
   * a view of the state's own bytes: compare it at once, never after an await.
   */
  tokenDigest: Uint8Array | null;
}

const factsOf = ({ activation, tokenDigest }: ActivationVersion, license: LicenseFacts): HeldActivation => ({
  activation: {
    id: activation.id,
    license_id: activation.license_id,
    fingerprint: activation.fingerprint,
    active: activation.active,
    converted_from_license_id: activation.converted_from_license_id,
    lastValidatedMs: activation.last_validated_at?.getTime() ?? null,
  },
  license,
  tokenDigest,
});

export interface ActivationStateStats {
  /** The first full load has finished. */
  loaded: boolean;
  /** What is held is used now (a catch-up began less than `maxStaleMs` ago). */
  current: boolean;
  activations: number;
  licenses: number;
  /** Bytes of the typed arrays (the licenses' records and the map are on top). */
  arrayBytes: number;
  /** Milliseconds since the last catch-up (or load) that worked began; null: none yet. */
  ageMs: number | null;
}

export interface ActivationState {
  /** The activation with its license from memory, while what is held is current; null: not held, ask `read`. */
  held(activationId: number): HeldActivation | null;
  /** Reads MariaDB now (batched with the other reads of this turn of the event loop) and keeps the answer. */
  read(activationId: number): Promise<HeldActivation | null>;
  /** `held`, or else `read`. */
  get(activationId: number): Promise<HeldActivation | null>;
  /** This process noted a validation (its last-seen time goes out in a batch): held until the row is read again. */
  noteValidated(activationId: number, atMs: number): void;
  /** Drops what is held of a license (its activations are not used until it is back). */
  forgetLicense(licenseId: number): void;
  forgetActivation(activationId: number): void;
  /** A change message: dropped now, read again in the background. */
  licenseChanged(licenseId: number): void;
  activationChanged(activationId: number): void;
  /** Looks for changes now (after Redis was away, say); resolves when done. */
  catchUp(): Promise<void>;
  /** Starts the load and the periodic catch-ups; resolves when the first load is done (or failed: it is tried again). */
  start(): Promise<void>;
  close(): void;
  stats(): ActivationStateStats;
}

export interface ActivationStateOptions {
  catchUpEveryMs: number;
  /** How far back each catch-up looks before the previous one: longer than any write transaction on these tables. */
  overlapMs: number;
  maxStaleMs: number;
  /** Rows per page of the load at start. */
  pageRows?: number;
  onError: (err: Error, what: string) => void;
  /** A monotonic clock in ms. */
  clock?: () => number;
}

/** One read of MariaDB in flight: what was forgotten since it began is not kept from its answer. */
interface Read {
  generation: number;
  licenses: Set<number>;
  activations: Set<number>;
}

/** A license as held: its facts, with when its row changed and which read brought it. */
interface HeldLicense extends LicenseFacts {
  changedUs: number;
  generation: number;
}

/**
 * The same few strings for every row (mysql2 makes a new string for each value it reads): a kind
 * and a status cost nothing each then.
 */
const INTERNED: Record<string, string> = Object.fromEntries(
  ['trial', 'permanent', 'active', 'suspended', 'revoked', 'cancelled'].map((word) => [word, word]),
);
const interned = <T extends string>(word: T): T => (INTERNED[word] as T | undefined) ?? word;
/** Ids beyond this do not fit the state's 32-bit arrays: such an activation is read from MariaDB each time. */
const MAX_ID = 0xffff_ffff;

const HEX_FINGERPRINT = /^[0-9a-f]{64}$/;
const FLAG_ACTIVE = 1;
const FLAG_DIGEST = 2;
/** Ids per query when many rows are read again. */
const CHUNK = 5_000;

export function createActivationState(db: Pool, options: ActivationStateOptions): ActivationState {
  const { catchUpEveryMs, overlapMs, maxStaleMs, pageRows = 10_000, onError, clock = () => performance.now() } = options;
  const overlapUs = overlapMs * 1000;

  // --- The activations, one slot each: typed arrays, sized at the load, grown by half when full,
  // freed slots reused.
  let capacity = 0;
  let highWater = 0;
  const freeSlots: number[] = [];
  let idOf = new Uint32Array(0); // the activation in the slot; 0: a free slot
  let licenseOf = new Uint32Array(0);
  let convertedFrom = new Uint32Array(0); // 0: none
  let lastValidated = new Uint32Array(0); // seconds since the epoch (a last-seen time needs no more); 0: never
  let changedUs = new Float64Array(0);
  let readGeneration = new Float64Array(0);
  let flags = new Uint8Array(0);
  let fingerprints = Buffer.alloc(0); // 32 bytes a slot
  let digests = Buffer.alloc(0); // 32 bytes a slot
  const slotOf = new Map<number, number>();
  const licenses = new Map<number, HeldLicense>();

  const grow = (atLeast = 0) => {
    const next = Math.max(1024, Math.ceil(capacity * 1.5), atLeast);
    const f64 = (old: Float64Array) => {
      const a = new Float64Array(next);
      a.set(old);
      return a;
    };
    const u32 = (old: Uint32Array) => {
      const a = new Uint32Array(next);
      a.set(old);
      return a;
    };
    const bytes = (old: Buffer, width: number) => {
      const a = Buffer.alloc(next * width);
      old.copy(a);
      return a;
    };
    idOf = u32(idOf);
    licenseOf = u32(licenseOf);
    convertedFrom = u32(convertedFrom);
    lastValidated = u32(lastValidated);
    changedUs = f64(changedUs);
    readGeneration = f64(readGeneration);
    const oldFlags = flags;
    flags = new Uint8Array(next);
    flags.set(oldFlags);
    fingerprints = bytes(fingerprints, 32);
    digests = bytes(digests, 32);
    capacity = next;
  };

  const release = (activationId: number) => {
    const slot = slotOf.get(activationId);
    if (slot === undefined) return;
    slotOf.delete(activationId);
    idOf[slot] = 0;
    flags[slot] = 0;
    freeSlots.push(slot);
  };

  // --- Reads in flight, and what was forgotten while each ran.
  let generation = 0;
  const reads = new Set<Read>();

  async function reading<T>(work: (read: Read) => Promise<T>): Promise<T> {
    const read: Read = { generation: ++generation, licenses: new Set(), activations: new Set() };
    reads.add(read);
    try {
      return await work(read);
    } finally {
      reads.delete(read);
    }
  }

  const keepLicense = (read: Read, { license, changedUs: changed }: LicenseVersion) => {
    if (read.licenses.has(license.id)) return;
    const held = licenses.get(license.id);
    // A read that began after this one already brought a newer row.
    if (held && held.generation > read.generation) return;
    // One literal of one shape for all (a spread would make objects V8 lays out less compactly).
    licenses.set(license.id, {
      id: license.id,
      kind: interned(license.kind),
      status: interned(license.status),
      seats: license.seats,
      expires_at: license.expires_at,
      created_at: license.created_at,
      claim_code: license.claim_code,
      key_hint: license.key_hint,
      changedUs: changed,
      generation: read.generation,
    });
  };

  const keepActivation = (read: Read, { activation, tokenDigest, changedUs: changed }: ActivationVersion) => {
    const { id } = activation;
    let slot = slotOf.get(id);
    if (read.activations.has(id) || read.licenses.has(activation.license_id)) return;
    if (slot !== undefined && (readGeneration[slot]! > read.generation || read.licenses.has(licenseOf[slot]!))) return;
    // Fingerprints are held as their 32 bytes; one that is not lowercase hex (never written by the
    // API) would not survive that: not held, so read from MariaDB at each validation.
    if (
      !HEX_FINGERPRINT.test(activation.fingerprint) || (tokenDigest !== null && tokenDigest.length !== 32)
      || id > MAX_ID || activation.license_id > MAX_ID || (activation.converted_from_license_id ?? 0) > MAX_ID
    ) {
      release(id);
      return;
    }
    if (slot === undefined) {
      slot = freeSlots.pop() ?? highWater++;
      if (slot >= capacity) grow();
      slotOf.set(id, slot);
    }
    idOf[slot] = id;
    licenseOf[slot] = activation.license_id;
    convertedFrom[slot] = activation.converted_from_license_id ?? 0;
    lastValidated[slot] = activation.last_validated_at ? Math.floor(activation.last_validated_at.getTime() / 1000) : 0;
    changedUs[slot] = changed;
    readGeneration[slot] = read.generation;
    flags[slot] = (activation.active === 1 ? FLAG_ACTIVE : 0) | (tokenDigest !== null ? FLAG_DIGEST : 0);
    fingerprints.write(activation.fingerprint, slot * 32, 32, 'hex');
    if (tokenDigest !== null) tokenDigest.copy(digests, slot * 32);
  };

  const materialise = (activationId: number, slot: number, license: LicenseFacts): HeldActivation => {
    const validated = lastValidated[slot]!;
    const from = convertedFrom[slot]!;
    return {
      activation: {
        id: activationId,
        license_id: licenseOf[slot]!,
        fingerprint: fingerprints.toString('hex', slot * 32, slot * 32 + 32),
        active: flags[slot]! & FLAG_ACTIVE ? 1 : 0,
        converted_from_license_id: from === 0 ? null : from,
        lastValidatedMs: validated === 0 ? null : validated * 1000,
      },
      license,
      // A view, not a copy: valid until the arrays grow, which no caller waits for (see HeldActivation).
      tokenDigest: flags[slot]! & FLAG_DIGEST ? digests.subarray(slot * 32, slot * 32 + 32) : null,
    };
  };

  // --- Freshness.
  let loaded = false;
  let lastGoodStart: number | null = null;
  let sinceUs = 0;
  const isCurrent = () => lastGoodStart !== null && clock() - lastGoodStart < maxStaleMs;

  // --- Reads of single activations (validations of one not held), batched per turn of the event loop.
  let batch: Map<number, ((value: HeldActivation | null) => void)[]> | null = null;
  let batchRejects: ((err: unknown) => void)[] = [];

  const runBatch = async () => {
    const waiting = batch!;
    const rejects = batchRejects;
    batch = null;
    batchRejects = [];
    try {
      const rows = await reading(async (read) => {
        const found = await stateRows.activationsWithLicense(db, [...waiting.keys()]);
        for (const row of found) {
          keepLicense(read, row.license);
          keepActivation(read, row.activation);
        }
        return found;
      });
      const byId = new Map(rows.map((row) => [row.activation.activation.id, row]));
      for (const [id, resolves] of waiting) {
        const row = byId.get(id);
        const value = row ? factsOf(row.activation, row.license.license) : null;
        for (const resolve of resolves) resolve(value);
      }
    } catch (err) {
      for (const reject of rejects) reject(err);
    }
  };

  const read = (activationId: number) => new Promise<HeldActivation | null>((resolve, reject) => {
    if (!batch) {
      batch = new Map();
      setImmediate(() => void runBatch());
    }
    const resolves = batch.get(activationId) ?? [];
    resolves.push(resolve);
    batch.set(activationId, resolves);
    batchRejects.push(reject);
  });

  const held = (activationId: number): HeldActivation | null => {
    if (!isCurrent()) return null;
    const slot = slotOf.get(activationId);
    if (slot === undefined) return null;
    const license = licenses.get(licenseOf[slot]!);
    return license ? materialise(activationId, slot, license) : null;
  };

  const forgetLicense = (licenseId: number) => {
    for (const r of reads) r.licenses.add(licenseId);
    licenses.delete(licenseId);
    // Its activations too: one may have moved to another license (a trial upgraded in place), and
    // must not be found under this one when it is read again. A scan of one array: license changes
    // are rare, and an index by license would cost memory for every license.
    for (let slot = 0; slot < highWater; slot++) {
      if (licenseOf[slot] === licenseId && idOf[slot] !== 0) release(idOf[slot]!);
    }
  };

  const forgetActivation = (activationId: number) => {
    for (const r of reads) r.activations.add(activationId);
    release(activationId);
  };

  // --- The load at start and the catch-ups.
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let chain: Promise<void> = Promise.resolve();

  const load = async () => {
    const startedAt = clock();
    const nowUs = await stateRows.nowUs(db);
    // Arrays of the right size at once (and a little room): no doubling, and no copies while loading.
    const rows = await stateRows.activationCount(db);
    if (rows > capacity) grow(Math.ceil(rows * 1.05));
    for (let after = 0; !closed;) {
      const page = await reading(async (r) => {
        const rows = await stateRows.licensesAfter(db, after, pageRows);
        for (const row of rows) keepLicense(r, row);
        return rows;
      });
      if (page.length < pageRows) break;
      after = page.at(-1)!.license.id;
    }
    for (let after = 0; !closed;) {
      const page = await reading(async (r) => {
        const rows = await stateRows.activationsAfter(db, after, pageRows);
        for (const row of rows) keepActivation(r, row);
        return rows;
      });
      if (page.length < pageRows) break;
      after = page.at(-1)!.activation.id;
    }
    sinceUs = nowUs - overlapUs;
    lastGoodStart = startedAt;
    loaded = true;
  };

  const catchUpOnce = async () => {
    const startedAt = clock();
    await reading(async (r) => {
      const nowUs = await stateRows.nowUs(db);
      const changed = await stateRows.changedSince(db, sinceUs);
      // Only rows that changed since they were read (the overlap brings many twice) are read in full.
      const licenseIds = changed.licenses.filter(([id, us]) => licenses.get(id)?.changedUs !== us).map(([id]) => id);
      const activationIds = changed.activations.filter(([id, us]) => {
        const slot = slotOf.get(id);
        return slot === undefined || changedUs[slot] !== us;
      }).map(([id]) => id);
      for (let i = 0; i < licenseIds.length; i += CHUNK) {
        for (const row of await stateRows.licensesByIds(db, licenseIds.slice(i, i + CHUNK))) keepLicense(r, row);
      }
      for (let i = 0; i < activationIds.length; i += CHUNK) {
        for (const row of await stateRows.activationsWithLicense(db, activationIds.slice(i, i + CHUNK))) {
          keepLicense(r, row.license);
          keepActivation(r, row.activation);
        }
      }
      sinceUs = nowUs - overlapUs;
    });
    lastGoodStart = startedAt;
  };

  /** One load or catch-up at a time; a call while one runs waits for it, then runs another. */
  const step = (): Promise<void> => {
    const next = chain.then(() => (loaded ? catchUpOnce() : load()));
    chain = next.catch(() => {});
    return next;
  };

  const schedule = () => {
    if (closed) return;
    timer = setTimeout(() => {
      step()
        .catch((err: Error) => onError(err, loaded ? 'catch up with license changes' : 'load the activations'))
        .finally(schedule);
    }, catchUpEveryMs);
    timer.unref();
  };

  const reloadLicense = (licenseId: number) => reading(async (r) => {
    for (const row of await stateRows.licensesByIds(db, [licenseId])) keepLicense(r, row);
    for (const row of await stateRows.activationsOfLicense(db, licenseId)) keepActivation(r, row);
  });

  return {
    held,
    read,
    get: (activationId) => {
      const value = held(activationId);
      return value ? Promise.resolve(value) : read(activationId);
    },
    noteValidated(activationId, atMs) {
      const slot = slotOf.get(activationId);
      if (slot !== undefined) lastValidated[slot] = Math.floor(atMs / 1000);
    },
    forgetLicense,
    forgetActivation,
    licenseChanged(licenseId) {
      forgetLicense(licenseId);
      reloadLicense(licenseId).catch((err: Error) => onError(err, 'read a changed license again'));
    },
    activationChanged(activationId) {
      forgetActivation(activationId);
      read(activationId).catch((err: Error) => onError(err, 'read a changed activation again'));
    },
    catchUp: step,
    async start() {
      try {
        await step();
      } catch (err) {
        onError(err as Error, 'load the activations');
      }
      schedule();
    },
    close() {
      closed = true;
      clearTimeout(timer);
    },
    stats: () => ({
      loaded,
      current: isCurrent(),
      activations: slotOf.size,
      licenses: licenses.size,
      arrayBytes: capacity * (4 * 4 + 2 * 8 + 1 + 32 + 32),
      ageMs: lastGoodStart === null ? null : Math.round(clock() - lastGoodStart),
    }),
  };
}
