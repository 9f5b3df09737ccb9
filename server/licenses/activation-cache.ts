import type { Pool } from 'mysql2/promise';
import { activations, type ActivationRow, type LicenseRow } from './repository.js';

/**
 * What validations read, kept in the process: an activation, its license and the digest of the
 * last token issued to it. Agents check in every hour, so validations are the server's most common
 * call; reading MariaDB for each one would cost more than all the rest of the work.
 *
 * Consistency: whatever changes an activation or a license in force (revoke, suspend, deactivate,
 * seats) calls `forgetLicense`/`forgetActivation` here and publishes the change (see
 * license-changes.ts); every server drops the entry when the message arrives, so a revocation is
 * effective on every server at its next request after the publish. An entry lives at most `ttlMs`
 * in any case: the bound on staleness while Redis cannot carry the messages.
 */

export interface CachedActivation {
  activation: ActivationRow;
  license: LicenseRow;
  /** SHA-256 of the token last issued to this activation; null when none was recorded. */
  tokenDigest: Buffer | null;
}

interface Entry {
  value: CachedActivation;
  loadedAt: number;
}

export interface ActivationCache {
  /** The activation with its license, from the cache or (batched with other misses) from MariaDB. */
  get(activationId: number): Promise<CachedActivation | null>;
  /** What the cache holds, if it is still fresh; nothing is read. */
  cached(activationId: number): CachedActivation | null;
  /** Reads MariaDB now, whatever the cache holds, and keeps the answer. */
  reload(activationId: number): Promise<CachedActivation | null>;
  forgetActivation(activationId: number): void;
  forgetLicense(licenseId: number): void;
  /** Everything: after the invalidation channel was down, who knows what was missed. */
  clear(): void;
  readonly size: number;
}

export interface ActivationCacheOptions {
  ttlMs: number;
  maxEntries: number;
  now?: () => number;
}

export function createActivationCache(db: Pool, { ttlMs, maxEntries, now = Date.now }: ActivationCacheOptions): ActivationCache {
  const entries = new Map<number, Entry>();
  /** licenseId → its cached activation ids: a revoke drops them all. */
  const byLicense = new Map<number, Set<number>>();
  /**
   * Counts forgets. A read that started before one may have seen the old row: its answer serves the
   * request that asked, but is not kept.
   */
  let forgets = 0;

  const drop = (activationId: number) => {
    const entry = entries.get(activationId);
    if (!entry) return;
    entries.delete(activationId);
    const siblings = byLicense.get(entry.value.license.id);
    siblings?.delete(activationId);
    if (siblings?.size === 0) byLicense.delete(entry.value.license.id);
  };

  const keep = (value: CachedActivation) => {
    drop(value.activation.id);
    // Oldest first: a Map iterates in insertion order.
    while (entries.size >= maxEntries) drop(entries.keys().next().value!);
    entries.set(value.activation.id, { value, loadedAt: now() });
    let siblings = byLicense.get(value.license.id);
    if (!siblings) byLicense.set(value.license.id, (siblings = new Set()));
    siblings.add(value.activation.id);
  };

  // Misses of one turn of the event loop go to MariaDB as one query: under load, one round trip
  // serves dozens of validations.
  let batch: Map<number, ((value: CachedActivation | null) => void)[]> | null = null;
  let batchRejects: ((err: unknown) => void)[] = [];

  const runBatch = async () => {
    const waiting = batch!;
    const rejects = batchRejects;
    batch = null;
    batchRejects = [];
    const startedAt = forgets;
    try {
      const found = await activations.manyWithLicense(db, [...waiting.keys()]);
      const stillCurrent = forgets === startedAt;
      for (const [id, resolves] of waiting) {
        const value = found.get(id) ?? null;
        if (value && stillCurrent) keep(value);
        for (const resolve of resolves) resolve(value);
      }
    } catch (err) {
      for (const reject of rejects) reject(err);
    }
  };

  const load = (activationId: number) => new Promise<CachedActivation | null>((resolve, reject) => {
    if (!batch) {
      batch = new Map();
      setImmediate(() => void runBatch());
    }
    const resolves = batch.get(activationId) ?? [];
    resolves.push(resolve);
    batch.set(activationId, resolves);
    batchRejects.push(reject);
  });

  const fresh = (activationId: number) => {
    const entry = entries.get(activationId);
    return entry && now() - entry.loadedAt < ttlMs ? entry.value : null;
  };

  return {
    get(activationId) {
      const value = fresh(activationId);
      return value ? Promise.resolve(value) : load(activationId);
    },
    cached: fresh,
    reload: load,
    forgetActivation(activationId) {
      forgets++;
      drop(activationId);
    },
    forgetLicense(licenseId) {
      forgets++;
      for (const id of [...(byLicense.get(licenseId) ?? [])]) drop(id);
    },
    clear() {
      forgets++;
      entries.clear();
      byLicense.clear();
    },
    get size() {
      return entries.size;
    },
  };
}
