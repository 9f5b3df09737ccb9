import type { Pool, ResultSetHeader } from 'mysql2/promise';

export interface UsageEventRow {
  activationId: number;
  licenseId: number;
  fingerprint: string;
  occurredAt: Date;
  kind: string;
  locale: string | null;
  ip: string;
}

export const usageEvents = {
  /**
   * Stores a batch in one statement. The unique key (activation, time, kind) makes a retried batch
   * a no-op: IGNORE skips exactly those rows (the input is schema-checked, so nothing else is ignored).
   */
  async insertBatch(db: Pool, events: UsageEventRow[], receivedAt: Date): Promise<number> {
    if (events.length === 0) return 0;
    const [result] = await db.query<ResultSetHeader>(
      'INSERT IGNORE INTO usage_events (activation_id, license_id, fingerprint, occurred_at, kind, locale, ip, received_at) VALUES ?',
      [events.map((e) => [e.activationId, e.licenseId, e.fingerprint, e.occurredAt, e.kind, e.locale, e.ip, receivedAt])],
    );
    return result.affectedRows;
  },
};
