import type { Pool, PoolConnection, ResultSetHeader } from 'mysql2/promise';

export interface UsageEventRow {
  activationId: number;
  licenseId: number;
  fingerprint: string;
  occurredAt: Date;
  kind: string;
  locale: string | null;
  ip: string;
}

/** A signed event's place in its chain, as verified (see chain.ts). */
export interface ChainFields {
  chainId: number;
  counter: number;
  prevHash: Buffer;
  hash: Buffer;
  signature: Buffer;
}

export const usageEvents = {
  /**
   * Stores a batch of unsigned events (agents from before device keys) in one statement. The unique
   * key (activation, time, kind, counter 0) makes a retried batch a no-op: IGNORE skips exactly
   * those rows (the input is schema-checked, so nothing else is ignored).
   */
  async insertBatch(db: Pool | PoolConnection, events: UsageEventRow[], receivedAt: Date): Promise<number> {
    if (events.length === 0) return 0;
    const [result] = await db.query<ResultSetHeader>(
      'INSERT IGNORE INTO usage_events (activation_id, license_id, fingerprint, occurred_at, kind, locale, ip, received_at) VALUES ?',
      [events.map((e) => [e.activationId, e.licenseId, e.fingerprint, e.occurredAt, e.kind, e.locale, e.ip, receivedAt])],
    );
    return result.affectedRows;
  },

  /**
   * Stores signed events judged new in their chain, inside the transaction that holds the chain's
   * lock: a duplicate was found before (so a unique key failing here is a fault, not a resend).
   */
  async insertSigned(db: PoolConnection, events: (UsageEventRow & ChainFields)[], receivedAt: Date): Promise<number> {
    if (events.length === 0) return 0;
    const [result] = await db.query<ResultSetHeader>(
      `INSERT INTO usage_events (activation_id, license_id, fingerprint, occurred_at, kind, locale, ip, received_at,
                                 signed, chain_id, counter, prev_hash, hash, signature) VALUES ?`,
      [events.map((e) => [e.activationId, e.licenseId, e.fingerprint, e.occurredAt, e.kind, e.locale, e.ip, receivedAt,
        true, e.chainId, e.counter, e.prevHash, e.hash, e.signature])],
    );
    return result.affectedRows;
  },
};
