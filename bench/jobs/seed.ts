import type { Pool } from 'mysql2/promise';
import { randomBytes } from 'node:crypto';

const COUNTRIES = ['DE', 'FR', 'JP', 'GB', 'BR', 'IN', 'CA', 'NO', 'AU', 'US'] as const;
const BATCH = 5_000;

/**
 * Registrations for the export-report bench: `count` trials claimed in the period by customers, most
 * of them non-U.S. businesses, some U.S. businesses and individuals (which the report leaves out).
 */
export async function seedRegistrations(db: Pool, count: number, from: string): Promise<void> {
  const start = Date.parse(`${from}T00:00:00Z`);
  for (let done = 0; done < count; done += BATCH) {
    const n = Math.min(BATCH, count - done);
    const customers: unknown[][] = [];
    const licenses: unknown[][] = [];
    for (let i = 0; i < n; i++) {
      const id = done + i + 1;
      const country = COUNTRIES[id % COUNTRIES.length]!;
      const type = id % 20 === 0 ? 'individual' : 'business';
      customers.push([id, type, `Contact ${id}`, type === 'business' ? `Company ${id} Ltd` : null, `${id} Harbour Road, Town ${id % 997}`, country]);
      const claimed = new Date(start + (id % 180) * 86_400_000 + (id % 86_400) * 1000);
      licenses.push([id, 'trial', 'active', 1, randomBytes(32).toString('hex'), id, claimed, claimed, claimed]);
    }
    await db.query('INSERT INTO customers (id, type, name, organization, address, country) VALUES ?', [customers]);
    await db.query(
      'INSERT INTO licenses (id, kind, status, seats, trial_fingerprint, customer_id, claimed_at, created_at, expires_at) VALUES ?',
      [licenses],
    );
  }
}
