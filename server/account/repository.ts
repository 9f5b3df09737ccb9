import { createHash, randomBytes } from 'node:crypto';
import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';

/** Anything that runs a query: the pool, or a connection holding a transaction. */
export type Queryable = Pool | PoolConnection;
type Param = string | number | boolean | Date | Buffer | null;

async function all<T>(db: Queryable, sql: string, params: Param[]): Promise<T[]> {
  const [rows] = await db.execute<RowDataPacket[]>(sql, params);
  return rows as T[];
}

async function one<T>(db: Queryable, sql: string, params: Param[]): Promise<T | null> {
  return (await all<T>(db, sql, params))[0] ?? null;
}

export type CustomerType = 'business' | 'individual';
export type AccountStatus = 'active' | 'cancelled' | 'deleted';

export interface AccountRow {
  id: number;
  type: CustomerType;
  name: string | null;
  organization: string | null;
  address: string | null;
  country: string | null;
  email: string | null;
  password_hash: string | null;
  email_verified_at: Date | null;
  marketing_opt_in: number;
  age_confirmed_at: Date | null;
  status: AccountStatus;
  created_at: Date;
  updated_at: Date | null;
  cancelled_at: Date | null;
  deleted_at: Date | null;
}

const ACCOUNT_COLUMNS = `id, type, name, organization, address, country, email, password_hash, email_verified_at, marketing_opt_in,
  age_confirmed_at, status, created_at, updated_at, cancelled_at, deleted_at`;

export interface NewAccount {
  type: CustomerType;
  name: string;
  organization: string | null;
  address: string;
  country: string;
  email: string;
  passwordHash: string;
  marketingOptIn: boolean;
}

export interface Profile {
  type: CustomerType;
  name: string;
  organization: string | null;
  address: string;
  country: string;
}

export const accounts = {
  /** Accounts only (customers with a password), deleted ones never. */
  byId: (db: Queryable, id: number) =>
    one<AccountRow>(db, `SELECT ${ACCOUNT_COLUMNS} FROM customers WHERE id = ? AND password_hash IS NOT NULL AND status <> 'deleted'`, [id]),

  byIdForUpdate: (db: PoolConnection, id: number) =>
    one<AccountRow>(db, `SELECT ${ACCOUNT_COLUMNS} FROM customers WHERE id = ? FOR UPDATE`, [id]),

  byEmail: (db: Queryable, email: string) =>
    one<AccountRow>(db, `SELECT ${ACCOUNT_COLUMNS} FROM customers WHERE account_email = ? AND status <> 'deleted'`, [email]),

  async insert(db: Queryable, account: NewAccount, now: Date): Promise<number> {
    const [result] = await db.execute<ResultSetHeader>(
      `INSERT INTO customers (type, name, organization, address, country, email, password_hash, marketing_opt_in, age_confirmed_at, status, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?)`,
      [account.type, account.name, account.organization, account.address, account.country, account.email, account.passwordHash, account.marketingOptIn, now, now],
    );
    return result.insertId;
  },

  async updateProfile(db: Queryable, id: number, profile: Profile, now: Date): Promise<void> {
    await db.execute('UPDATE customers SET type = ?, name = ?, organization = ?, address = ?, country = ?, updated_at = ? WHERE id = ?', [
      profile.type, profile.name, profile.organization, profile.address, profile.country, now, id,
    ]);
  },

  async markVerified(db: Queryable, id: number, now: Date): Promise<void> {
    await db.execute('UPDATE customers SET email_verified_at = COALESCE(email_verified_at, ?) WHERE id = ?', [now, id]);
  },

  async changeEmail(db: Queryable, id: number, email: string, now: Date): Promise<void> {
    await db.execute('UPDATE customers SET email = ?, email_verified_at = ?, updated_at = ? WHERE id = ?', [email, now, now, id]);
  },

  async setPassword(db: Queryable, id: number, passwordHash: string, now: Date): Promise<void> {
    await db.execute('UPDATE customers SET password_hash = ?, updated_at = ? WHERE id = ?', [passwordHash, now, id]);
  },

  async setNews(db: Queryable, id: number, optIn: boolean): Promise<void> {
    await db.execute('UPDATE customers SET marketing_opt_in = ? WHERE id = ?', [optIn, id]);
  },

  async setStatus(db: Queryable, id: number, status: 'active' | 'cancelled', now: Date): Promise<void> {
    await db.execute('UPDATE customers SET status = ?, cancelled_at = ?, updated_at = ? WHERE id = ?', [status, status === 'cancelled' ? now : null, now, id]);
  },
};

export type TokenPurpose = 'verify_email' | 'reset_password';

export interface TokenRow {
  id: number;
  customer_id: number;
  purpose: TokenPurpose;
  new_email: string | null;
  expires_at: Date;
  used_at: Date | null;
}

const tokenDigest = (token: string) => createHash('sha256').update(token).digest();

/** Mailed links: the token travels in the link, only its digest is stored; one use, then it is spent. */
export const tokens = {
  async issue(db: Queryable, customerId: number, purpose: TokenPurpose, lifetimeMs: number, now: Date, newEmail: string | null = null): Promise<{ id: number; token: string }> {
    const token = randomBytes(32).toString('base64url');
    const [result] = await db.execute<ResultSetHeader>(
      'INSERT INTO account_tokens (customer_id, purpose, token_hash, new_email, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)',
      [customerId, purpose, tokenDigest(token), newEmail, now, new Date(now.getTime() + lifetimeMs)],
    );
    return { id: result.insertId, token };
  },

  /** The token's row if it is unused and unexpired (without spending it). */
  async find(db: Queryable, token: string, purpose: TokenPurpose, now: Date): Promise<TokenRow | null> {
    if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return null;
    return one<TokenRow>(
      db,
      `SELECT id, customer_id, purpose, new_email, expires_at, used_at FROM account_tokens
        WHERE token_hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?`,
      [tokenDigest(token), purpose, now],
    );
  },

  /** Spends the token; of two requests racing with it, one gets the row. */
  async spend(db: Queryable, token: string, purpose: TokenPurpose, now: Date): Promise<TokenRow | null> {
    const row = await this.find(db, token, purpose, now);
    if (!row) return null;
    const [result] = await db.execute<ResultSetHeader>('UPDATE account_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL', [now, row.id]);
    return result.affectedRows === 1 ? row : null;
  },

  /** A new link makes the older ones of the same purpose useless. */
  async spendAll(db: Queryable, customerId: number, purpose: TokenPurpose, now: Date): Promise<void> {
    await db.execute('UPDATE account_tokens SET used_at = ? WHERE customer_id = ? AND purpose = ? AND used_at IS NULL', [now, customerId, purpose]);
  },
};

export type ConsentPurpose = 'news' | 'marketing_mail';

export const consent = {
  async record(db: Queryable, customerId: number, purpose: ConsentPurpose, granted: boolean, source: 'registration' | 'account', now: Date): Promise<void> {
    await db.execute('INSERT INTO consent_history (customer_id, purpose, granted, source, at) VALUES (?, ?, ?, ?, ?)', [customerId, purpose, granted, source, now]);
  },
};

export const optOuts = {
  async of(db: Queryable, email: string): Promise<{ source: string; opted_out_at: Date } | null> {
    return one(db, 'SELECT source, opted_out_at FROM mail_opt_outs WHERE email = ?', [email.toLowerCase()]);
  },
  async add(db: Queryable, email: string, now: Date): Promise<void> {
    await db.execute(
      "INSERT INTO mail_opt_outs (email, source, opted_out_at) VALUES (?, 'account', ?) ON DUPLICATE KEY UPDATE email = email",
      [email.toLowerCase(), now],
    );
  },
  async remove(db: Queryable, email: string): Promise<void> {
    await db.execute('DELETE FROM mail_opt_outs WHERE email = ?', [email.toLowerCase()]);
  },
};

/**
 * What the audit log records: an action name and the time, by customer id. Never personal data, so
 * the log may outlive the account (the id then names a tombstone).
 */
export type AuditAction =
  | 'account.registered' | 'account.email_verified' | 'account.login' | 'account.logout'
  | 'data.viewed' | 'data.exported'
  | 'profile.corrected' | 'email.change_requested' | 'email.changed' | 'password.changed' | 'password.reset'
  | 'mail_choices.changed' | 'trial.claimed' | 'machine.deactivated'
  | 'order.created' | 'order.checkout' | 'order.completed' | 'license.seats_removed' | 'account.cancelled'
  | 'account.deletion_requested' | 'account.erased';

export const audit = {
  async record(db: Queryable, customerId: number | null, action: AuditAction, now = new Date()): Promise<void> {
    await db.execute('INSERT INTO audit_log (customer_id, action, at) VALUES (?, ?, ?)', [customerId, action, now]);
  },
};

export { all, one };
