import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';

/** Anything that runs a query: the pool, or a connection holding a transaction. */
type Queryable = Pool | PoolConnection;

/** The rebind budget counts moves within this rolling window. */
export const REBIND_WINDOW_MS = 365 * 86_400_000;

/**
 * Why a rebind was refused, as recorded (`activation_rebinds.reason`) and shown to staff: fixed
 * codes, never words a caller sent.
 */
export type RebindRefusal =
  | 'challenge_unknown' | 'no_device_key' | 'bad_signature' | 'stale_token' | 'budget_exhausted'
  | 'fingerprint_in_use' | 'trial_of_other_machine' | 'license_not_usable' | 'activation_inactive';

export interface RebindRecord {
  licenseId: number;
  activationId: number;
  from: string;
  to: string;
  ip: string | null;
  outcome: 'rebound' | 'refused';
  reason: RebindRefusal | null;
  at: Date;
}

export const rebinds = {
  async record(db: Queryable, r: RebindRecord): Promise<void> {
    await db.execute(
      `INSERT INTO activation_rebinds (license_id, activation_id, from_fingerprint, to_fingerprint, ip, outcome, reason, occurred_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      [r.licenseId, r.activationId, r.from, r.to, r.ip, r.outcome, r.reason, r.at],
    );
  },

  /** Moves of this license's machines within the window before `at`, and when the oldest of them leaves it. */
  async used(db: Queryable, licenseId: number, at: Date): Promise<{ used: number; oldest: Date | null }> {
    const [rows] = await db.execute<RowDataPacket[]>(
      `SELECT COUNT(*) AS n, MIN(occurred_at) AS oldest FROM activation_rebinds
        WHERE license_id = ? AND outcome = 'rebound' AND occurred_at > ?`,
      [licenseId, new Date(at.getTime() - REBIND_WINDOW_MS)],
    );
    return { used: Number(rows[0]!.n), oldest: (rows[0]!.oldest as Date | null) ?? null };
  },

  /** The license's own budget set by staff, or null (the deployment's REBIND_BUDGET). */
  async ownBudget(db: Queryable, licenseId: number): Promise<number | null> {
    const [rows] = await db.execute<RowDataPacket[]>('SELECT rebind_budget FROM licenses WHERE id = ?', [licenseId]);
    const value = rows[0]?.rebind_budget;
    return value === null || value === undefined ? null : Number(value);
  },

  async setOwnBudget(db: Queryable, licenseId: number, budget: number | null): Promise<void> {
    await db.execute('UPDATE licenses SET rebind_budget = ? WHERE id = ?', [budget, licenseId]);
  },

  /** A trial moved to `fingerprint`: from now on that machine has had this trial too. */
  async addTrialMachine(db: Queryable, licenseId: number, fingerprint: string, at: Date): Promise<void> {
    await db.execute('INSERT IGNORE INTO trial_rebound_machines (fingerprint, license_id, created_at) VALUES (?, ?, ?)', [fingerprint, licenseId, at]);
  },

  /** The trial `fingerprint` had (first, or by a move), if it is another license than `licenseId`. */
  async otherTrialOf(db: Queryable, fingerprint: string, licenseId: number): Promise<number | null> {
    const [rows] = await db.execute<RowDataPacket[]>(
      `SELECT id FROM licenses WHERE trial_fingerprint = ? AND id <> ?
       UNION ALL SELECT license_id FROM trial_rebound_machines WHERE fingerprint = ? AND license_id <> ?
       LIMIT 1`,
      [fingerprint, licenseId, fingerprint, licenseId],
    );
    return rows[0] ? Number(rows[0].id) : null;
  },

  /** The active activation of a trial on another fingerprint than `fingerprint` (where a move took it), if any. */
  async activeElsewhere(db: Queryable, licenseId: number, fingerprint: string): Promise<{ id: number } | null> {
    const [rows] = await db.execute<RowDataPacket[]>(
      'SELECT id FROM activations WHERE license_id = ? AND fingerprint <> ? AND active LIMIT 1',
      [licenseId, fingerprint],
    );
    return rows[0] ? { id: Number(rows[0].id) } : null;
  },

  /** What /admin shows: the latest rebinds of a license, newest first. */
  async ofLicense(db: Queryable, licenseId: number, limit: number): Promise<RowDataPacket[]> {
    const [rows] = await db.query<RowDataPacket[]>(
      `SELECT activation_id, from_fingerprint, to_fingerprint, outcome, reason, occurred_at FROM activation_rebinds
        WHERE license_id = ? ORDER BY occurred_at DESC, id DESC LIMIT ?`,
      [licenseId, limit],
    );
    return rows;
  },
};

/** What each refusal reason means, for staff in /admin. */
export const REBIND_REASON_TEXT: Record<RebindRefusal, string> = {
  challenge_unknown: 'the challenge was unknown, used already or expired (a replayed request?)',
  no_device_key: 'the activation has no device key (made by an older ferry)',
  bad_signature: "not signed by the activation's device key",
  stale_token: 'the token was older than the activation’s last move (a copy of the ferry home?)',
  budget_exhausted: "the license's moves for the year were used up",
  fingerprint_in_use: 'the license already had an activation for the new machine id',
  trial_of_other_machine: 'the new machine id already had a trial of its own',
  license_not_usable: 'the license was revoked, suspended, cancelled or ended',
  activation_inactive: 'the activation was deactivated',
};
