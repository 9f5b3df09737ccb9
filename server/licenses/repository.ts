import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import type { LicenseKind, LicenseStatus } from '../../licensing/index.js';
import type { ChainSignal } from '../usage/chain.js';

/** Anything that runs a query: the pool, or a connection holding a transaction. */
type Queryable = Pool | PoolConnection;

export interface LicenseRow {
  id: number;
  kind: LicenseKind;
  status: LicenseStatus;
  seats: number;
  expires_at: Date | null;
  created_at: Date;
  claim_code: string | null;
  key_hint: string | null;
  email: string | null;
  customer_id: number | null;
}

/** A trial as the trial path reads it: with the digest of its activation secret (null: none was sent). */
export type TrialRow = LicenseRow & { trial_secret_hash: Buffer | null };

export interface ActivationRow {
  id: number;
  license_id: number;
  fingerprint: string;
  active: number;
  created_at: Date;
  last_validated_at: Date | null;
  /** The trial this activation belonged to before the trial was upgraded in place; null: none. */
  converted_from_license_id: number | null;
}

export interface MachineFacts {
  locale?: string;
  platform?: string;
  hostname?: string;
  agentVersion?: string;
  /** The activation's device public key, raw Ed25519 in base64url (see migration 014). */
  devicePublicKey?: string;
  ip: string;
}

function deviceKeyBytes(facts: MachineFacts): Buffer | null {
  return facts.devicePublicKey === undefined ? null : Buffer.from(facts.devicePublicKey, 'base64url');
}

const LICENSE_COLUMNS = 'l.id, l.kind, l.status, l.seats, l.expires_at, l.created_at, l.claim_code, l.key_hint, l.email, l.customer_id';
const ACTIVATION_COLUMNS = 'a.id, a.license_id, a.fingerprint, a.active, a.created_at, a.last_validated_at, a.converted_from_license_id';

async function one<T>(db: Queryable, sql: string, params: (string | number | Buffer | Date | null)[]): Promise<T | null> {
  const [rows] = await db.execute<RowDataPacket[]>(sql, params);
  return (rows[0] as T | undefined) ?? null;
}

export const licenses = {
  byId: (db: Queryable, id: number) => one<LicenseRow>(db, `SELECT ${LICENSE_COLUMNS} FROM licenses l WHERE l.id = ?`, [id]),

  /** The trial this machine had: started here, or moved here from another machine id (a rebind, migration 016). */
  trialOfMachine: (db: Queryable, fingerprint: string) =>
    one<TrialRow>(db, `SELECT ${LICENSE_COLUMNS}, l.trial_secret_hash FROM licenses l WHERE l.trial_fingerprint = ?
      UNION ALL SELECT ${LICENSE_COLUMNS}, l.trial_secret_hash FROM trial_rebound_machines m JOIN licenses l ON l.id = m.license_id WHERE m.fingerprint = ?
      LIMIT 1`, [fingerprint, fingerprint]),

  /** Sets the secret of a trial from before secrets; false when another request set one first. */
  async adoptTrialSecret(db: Queryable, id: number, secretHash: Buffer): Promise<boolean> {
    const [result] = await db.execute<ResultSetHeader>(
      'UPDATE licenses SET trial_secret_hash = ? WHERE id = ? AND trial_secret_hash IS NULL',
      [secretHash, id],
    );
    return result.affectedRows === 1;
  },

  /** Locks the license row: activations of one license take turns, which is what keeps seat counts exact. */
  byKeyDigestForUpdate: (db: PoolConnection, digest: Buffer) =>
    one<LicenseRow>(db, `SELECT ${LICENSE_COLUMNS} FROM licenses l WHERE l.key_digest = ? FOR UPDATE`, [digest]),

  async insertTrial(
    db: Queryable,
    trial: {
      fingerprint: string; secretHash: Buffer | null; expiresAt: Date; email: string | null; marketingOptIn: boolean; claimCode: string; now: Date;
    },
  ): Promise<number> {
    const [result] = await db.execute<ResultSetHeader>(
      `INSERT INTO licenses (kind, status, seats, trial_fingerprint, trial_secret_hash, claim_code, email, marketing_opt_in, expires_at, created_at)
       VALUES ('trial', 'active', 1, ?, ?, ?, ?, ?, ?, ?)`,
      [trial.fingerprint, trial.secretHash, trial.claimCode, trial.email, trial.marketingOptIn, trial.expiresAt, trial.now],
    );
    return result.insertId;
  },

  async insertPermanent(
    db: Queryable,
    license: { seats: number; keyDigest: Buffer; keyHint: string; email: string | null; customerId: number | null; now: Date },
  ): Promise<number> {
    const [result] = await db.execute<ResultSetHeader>(
      `INSERT INTO licenses (kind, status, seats, key_digest, key_hint, email, customer_id, created_at)
       VALUES ('permanent', 'active', ?, ?, ?, ?, ?, ?)`,
      [license.seats, license.keyDigest, license.keyHint, license.email, license.customerId, license.now],
    );
    return result.insertId;
  },

  async updateTrialContact(db: Queryable, id: number, email: string, marketingOptIn: boolean): Promise<void> {
    await db.execute('UPDATE licenses SET email = ?, marketing_opt_in = ? WHERE id = ?', [email, marketingOptIn, id]);
  },

  async revoke(db: Queryable, id: number, now: Date): Promise<boolean> {
    const [result] = await db.execute<ResultSetHeader>(
      `UPDATE licenses SET status = 'revoked', revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`,
      [now, id],
    );
    return result.affectedRows === 1;
  },
};

export const activations = {
  ofMachine: (db: Queryable, licenseId: number, fingerprint: string) =>
    one<ActivationRow>(db, `SELECT ${ACTIVATION_COLUMNS} FROM activations a WHERE a.license_id = ? AND a.fingerprint = ?`, [licenseId, fingerprint]),

  byId: (db: Queryable, id: number) => one<ActivationRow>(db, `SELECT ${ACTIVATION_COLUMNS} FROM activations a WHERE a.id = ?`, [id]),

  /** Remembers the digest of the token just issued to an activation (see migration 013). */
  async setTokenDigest(db: Queryable, id: number, digest: Buffer): Promise<void> {
    await db.execute('UPDATE activations SET token_digest = ? WHERE id = ?', [digest, id]);
  },

  /**
   * A plain read, in the READ COMMITTED seat transaction: every other seat-taker of this license holds
   * the license row lock until it commits, so this count sees them all. (A locking read here would
   * also lock the index gap after the license's rows, and two licenses side by side would deadlock.)
   */
  async countActive(db: PoolConnection, licenseId: number): Promise<number> {
    const [rows] = await db.execute<RowDataPacket[]>('SELECT COUNT(*) AS n FROM activations WHERE license_id = ? AND active', [licenseId]);
    return Number(rows[0]!.n);
  },

  async insert(db: Queryable, licenseId: number, fingerprint: string, facts: MachineFacts, now: Date): Promise<number> {
    const [result] = await db.execute<ResultSetHeader>(
      `INSERT INTO activations (license_id, fingerprint, active, platform, hostname, agent_version, locale, ip, device_key, created_at, last_validated_at)
       VALUES (?, ?, TRUE, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [licenseId, fingerprint, facts.platform ?? null, facts.hostname ?? null, facts.agentVersion ?? null, facts.locale ?? null, facts.ip, deviceKeyBytes(facts), now, now],
    );
    return result.insertId;
  },

  async reactivate(db: Queryable, id: number, facts: MachineFacts, now: Date): Promise<void> {
    await db.execute(
      `UPDATE activations SET active = TRUE, deactivated_at = NULL, ip = ?, last_validated_at = ?,
         platform = COALESCE(?, platform), hostname = COALESCE(?, hostname), agent_version = COALESCE(?, agent_version), locale = COALESCE(?, locale)
       WHERE id = ?`,
      [facts.ip, now, facts.platform ?? null, facts.hostname ?? null, facts.agentVersion ?? null, facts.locale ?? null, id],
    );
  },

  /** The activation's device public key (raw Ed25519), or null for an agent from before device keys. */
  async deviceKey(db: Queryable, id: number): Promise<Buffer | null> {
    const row = await one<{ device_key: Buffer | null }>(db, 'SELECT device_key FROM activations WHERE id = ?', [id]);
    return row?.device_key ?? null;
  },

  /**
   * Keeps the device key an activation request presents (the request itself carried the credential:
   * the license key, or the trial's secret). Returns what it replaced when that was another key.
   */
  async presentDeviceKey(db: Queryable, id: number, facts: MachineFacts): Promise<{ replaced: boolean }> {
    const key = deviceKeyBytes(facts);
    if (key === null) return { replaced: false };
    const previous = await this.deviceKey(db, id);
    if (previous !== null && previous.equals(key)) return { replaced: false };
    await db.execute('UPDATE activations SET device_key = ? WHERE id = ?', [key, id]);
    return { replaced: previous !== null };
  },

  async deactivate(db: Queryable, id: number, now: Date): Promise<void> {
    await db.execute('UPDATE activations SET active = FALSE, deactivated_at = ? WHERE id = ? AND active', [now, id]);
  },
};

export type LicenseEventKind =
  | 'seat_refused' | 'wrong_machine' | 'revoked' | 'deactivated' | 'trial_repeat'
  // Changes made by an order, by the customer, or by staff (`detail` says what: seats from and to, a new end).
  | 'issued' | 'seats_changed' | 'trial_converted' | 'suspended' | 'reinstated' | 'extended'
  // An activation of the same machine came with another device key (its ferry home was made anew).
  | 'device_key_replaced'
  // A machine whose id changed moved its activation (`rebound`), or was refused (`detail`: why);
  // a trial asked for where it had moved away from; staff changed the license's rebind budget.
  | 'rebound' | 'rebind_refused' | 'trial_moved' | 'rebind_budget_changed'
  // Too many new machines for a license, or new trials from an address (no license), too fast.
  | 'activation_velocity' | 'trial_velocity'
  // What the checks of signed, chained usage events found (server/usage/chain.ts; `detail`: which event, why).
  | ChainSignal;

export const licenseEvents = {
  async record(
    db: Queryable, licenseId: number | null, kind: LicenseEventKind, fingerprint: string | null, ip: string | null, now: Date, detail: string | null = null,
  ): Promise<void> {
    await db.execute('INSERT INTO license_events (license_id, kind, fingerprint, ip, detail, occurred_at) VALUES (?, ?, ?, ?, ?, ?)', [
      licenseId, kind, fingerprint, ip, detail?.slice(0, 255) ?? null, now,
    ]);
  },
};

/** InnoDB chose this transaction as a deadlock victim, or gave up waiting for a lock: safe to run again. */
function isRetryable(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return code === 'ER_LOCK_DEADLOCK' || code === 'ER_LOCK_WAIT_TIMEOUT';
}

const TRANSACTION_ATTEMPTS = 4;

/**
 * Runs `work` in a READ COMMITTED transaction on one connection; rolls back on any error, and runs
 * it again (a few times, after a short random pause) when InnoDB picked it as a deadlock victim.
 */
export async function inTransaction<T>(pool: Pool, work: (db: PoolConnection) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const connection = await pool.getConnection();
    try {
      await connection.query('SET TRANSACTION ISOLATION LEVEL READ COMMITTED');
      await connection.beginTransaction();
      const result = await work(connection);
      await connection.commit();
      return result;
    } catch (err) {
      await connection.rollback().catch(() => {});
      if (!isRetryable(err) || attempt === TRANSACTION_ATTEMPTS) throw err;
    } finally {
      connection.release();
    }
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * attempt));
  }
}

export function isDuplicateKey(err: unknown, index?: string): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === 'ER_DUP_ENTRY' && (index === undefined || (e.message ?? '').includes(index));
}

/** What a validation reads of a license: what its answer shows and what its rules check. */
export type LicenseFacts = Pick<LicenseRow, 'id' | 'kind' | 'status' | 'seats' | 'expires_at' | 'created_at' | 'claim_code' | 'key_hint'>;

/** A license as the activation state reads it, with when its row last changed (µs, MariaDB's clock). */
export interface LicenseVersion {
  license: LicenseFacts;
  changedUs: number;
}

/** An activation as the activation state reads it: with the digest of its current token and its change time. */
export interface ActivationVersion {
  activation: ActivationRow;
  /** SHA-256 of the token last issued to it (migration 013); null: none recorded. */
  tokenDigest: Buffer | null;
  changedUs: number;
}

/** `updated_at` (migration 017) as microseconds since the epoch: exact, where a Date keeps milliseconds. */
const CHANGED_US = (alias: string) => `TIMESTAMPDIFF(MICROSECOND, '1970-01-01', ${alias}.updated_at)`;
const STATE_LICENSE_COLUMNS = `l.id, l.kind, l.status, l.seats, l.expires_at, l.created_at, l.claim_code, l.key_hint, ${CHANGED_US('l')}`;
const STATE_ACTIVATION_COLUMNS = `${ACTIVATION_COLUMNS}, a.token_digest, ${CHANGED_US('a')}`;
/** Columns of STATE_ACTIVATION_COLUMNS: where the license's begin in a joined row. */
const STATE_ACTIVATION_WIDTH = 9;

/** A row of STATE_LICENSE_COLUMNS (read as an array) from `at`. */
function licenseVersion(row: unknown[], at = 0): LicenseVersion {
  return {
    license: {
      id: Number(row[at]), kind: row[at + 1] as LicenseKind, status: row[at + 2] as LicenseStatus, seats: row[at + 3] as number,
      expires_at: row[at + 4] as Date | null, created_at: row[at + 5] as Date, claim_code: row[at + 6] as string | null,
      key_hint: row[at + 7] as string | null,
    },
    changedUs: Number(row[at + 8]),
  };
}

/** A row of STATE_ACTIVATION_COLUMNS (read as an array). */
function activationVersion(row: unknown[]): ActivationVersion {
  const [id, licenseId, fingerprint, active, createdAt, lastValidated, convertedFrom, digest, changed] = row;
  return {
    activation: {
      id: Number(id), license_id: Number(licenseId), fingerprint: fingerprint as string, active: active as number,
      created_at: createdAt as Date, last_validated_at: lastValidated as Date | null,
      converted_from_license_id: convertedFrom === null ? null : Number(convertedFrom),
    },
    tokenDigest: (digest as Buffer | null) ?? null,
    changedUs: Number(changed),
  };
}

async function arrays(db: Queryable, sql: string, params: unknown[]): Promise<unknown[][]> {
  const [rows] = await db.query<RowDataPacket[]>({ sql, rowsAsArray: true }, params);
  return rows as unknown as unknown[][];
}

/**
 * The reads of the activation state (activation-state.ts): everything at start, page by page in id
 * order; what changed since a time; and single licenses and activations again after a change.
 */
export const stateRows = {
  async licensesAfter(db: Queryable, afterId: number, limit: number): Promise<LicenseVersion[]> {
    const rows = await arrays(db, `SELECT ${STATE_LICENSE_COLUMNS} FROM licenses l WHERE l.id > ? ORDER BY l.id LIMIT ?`, [afterId, limit]);
    return rows.map((row) => licenseVersion(row));
  },

  async activationsAfter(db: Queryable, afterId: number, limit: number): Promise<ActivationVersion[]> {
    const rows = await arrays(db, `SELECT ${STATE_ACTIVATION_COLUMNS} FROM activations a WHERE a.id > ? ORDER BY a.id LIMIT ?`, [afterId, limit]);
    return rows.map(activationVersion);
  },

  async licensesByIds(db: Queryable, ids: number[]): Promise<LicenseVersion[]> {
    if (ids.length === 0) return [];
    const rows = await arrays(db, `SELECT ${STATE_LICENSE_COLUMNS} FROM licenses l WHERE l.id IN (?)`, [ids]);
    return rows.map((row) => licenseVersion(row));
  },

  async activationsOfLicense(db: Queryable, licenseId: number): Promise<ActivationVersion[]> {
    const rows = await arrays(db, `SELECT ${STATE_ACTIVATION_COLUMNS} FROM activations a WHERE a.license_id = ?`, [licenseId]);
    return rows.map(activationVersion);
  },

  /** Activations with their licenses, in one query: what a validation of an activation not held reads. */
  async activationsWithLicense(db: Queryable, ids: number[]): Promise<{ activation: ActivationVersion; license: LicenseVersion }[]> {
    if (ids.length === 0) return [];
    const rows = await arrays(
      db,
      `SELECT ${STATE_ACTIVATION_COLUMNS}, ${STATE_LICENSE_COLUMNS} FROM activations a JOIN licenses l ON l.id = a.license_id WHERE a.id IN (?)`,
      [ids],
    );
    return rows.map((row) => ({ activation: activationVersion(row), license: licenseVersion(row, STATE_ACTIVATION_WIDTH) }));
  },

  async activationCount(db: Queryable): Promise<number> {
    const [row] = await arrays(db, 'SELECT COUNT(*) FROM activations', []);
    return Number(row![0]);
  },

  /** MariaDB's clock now, in µs: the catch-up's times are all MariaDB's, so no two clocks are compared. */
  async nowUs(db: Queryable): Promise<number> {
    const [row] = await arrays(db, "SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01', NOW(6))", []);
    return Number(row![0]);
  },

  /** Ids and change times of the rows changed at or after `sinceUs` (through the updated_at indexes). */
  async changedSince(db: Queryable, sinceUs: number): Promise<{ licenses: [number, number][]; activations: [number, number][] }> {
    const since = "'1970-01-01' + INTERVAL ? MICROSECOND";
    const pairs = (rows: unknown[][]) => rows.map((row) => [Number(row[0]), Number(row[1])] as [number, number]);
    const licensesChanged = await arrays(db, `SELECT l.id, ${CHANGED_US('l')} FROM licenses l WHERE l.updated_at >= ${since}`, [sinceUs]);
    const activationsChanged = await arrays(db, `SELECT a.id, ${CHANGED_US('a')} FROM activations a WHERE a.updated_at >= ${since}`, [sinceUs]);
    return { licenses: pairs(licensesChanged), activations: pairs(activationsChanged) };
  },
};
