import type { Pool, RowDataPacket } from 'mysql2/promise';
import type { DayStatistics } from '../../../reports/usage-statistics.js';
import { FREQUENCY_BUCKETS } from '../../../reports/usage-statistics.js';

/**
 * What the admin area's pages read from MySQL: counts for the overview, the license list, and the
 * daily statistics the usage roll-up wrote. Read-only; changes go through the same repositories
 * as the API's.
 */

const DAY_MS = 86_400_000;

async function firstRow(db: Pool, sql: string, params: unknown[] = []): Promise<RowDataPacket | undefined> {
  const [rows] = await db.query<RowDataPacket[]>(sql, params);
  return rows[0];
}

export interface Overview {
  /** Licenses by kind and state; a trial past its end counts as `ended`. */
  licenses: { kind: string; state: string; count: number }[];
  activations: { active: number; total: number };
  trialsLast7Days: number;
  filedReports: number;
  latestStatistics: { day: string; installations: number; activeMachinesDay: number; activeMachinesWeek: number } | null;
}

export async function overview(db: Pool, now: Date): Promise<Overview> {
  const [byState] = await db.query<RowDataPacket[]>(
    `SELECT kind, CASE WHEN status = 'active' AND expires_at IS NOT NULL AND expires_at <= ? THEN 'ended' ELSE status END AS state, COUNT(*) AS n
       FROM licenses GROUP BY kind, state ORDER BY kind, state`,
    [now],
  );
  const activations = await firstRow(db, 'SELECT COALESCE(SUM(active), 0) AS active, COUNT(*) AS total FROM activations');
  const trials = await firstRow(db, "SELECT COUNT(*) AS n FROM licenses WHERE kind = 'trial' AND created_at >= ?", [new Date(now.getTime() - 7 * DAY_MS)]);
  const reports = await firstRow(db, "SELECT COUNT(*) AS n FROM export_reports WHERE status = 'filed'");
  const day = await firstRow(
    db,
    "SELECT DATE_FORMAT(day, '%Y-%m-%d') AS day, installations, active_machines_day, active_machines_week FROM usage_daily ORDER BY day DESC LIMIT 1",
  );
  return {
    licenses: byState.map((r) => ({ kind: r.kind, state: r.state, count: Number(r.n) })),
    activations: { active: Number(activations?.active ?? 0), total: Number(activations?.total ?? 0) },
    trialsLast7Days: Number(trials?.n ?? 0),
    filedReports: Number(reports?.n ?? 0),
    latestStatistics: day
      ? { day: day.day, installations: day.installations, activeMachinesDay: day.active_machines_day, activeMachinesWeek: day.active_machines_week }
      : null,
  };
}

export interface LicenseListing {
  id: number;
  kind: string;
  status: string;
  /** A trial past its end. */
  ended: boolean;
  seats: number;
  seatsUsed: number;
  keyHint: string | null;
  email: string | null;
  customer: { type: string; name: string | null; organization: string | null; country: string } | null;
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
}

export interface LicenseFilter {
  kind?: 'trial' | 'permanent';
  /** Only this license. */
  id?: number;
  /** Older than this id (the next page). */
  before?: number;
  /** Search: an id, a key hint (the key's last characters), or part of an email address, organisation or name. */
  q?: string;
  limit: number;
}

/** `%` and `_` typed into the search box are characters, not wildcards. */
function likeContaining(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** Recent licenses, newest first, with the seats their active activations take. */
export async function listLicenses(db: Pool, filter: LicenseFilter, now: Date): Promise<LicenseListing[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (condition: string, value: unknown) => {
    where.push(condition);
    params.push(value);
  };
  if (filter.kind) add('l.kind = ?', filter.kind);
  if (filter.id !== undefined) add('l.id = ?', filter.id);
  if (filter.before !== undefined) add('l.id < ?', filter.before);
  if (filter.q) {
    const like = likeContaining(filter.q);
    const hint = filter.q.replace(/^[.…]+/, '').replace(/-/g, '').toUpperCase().slice(-5);
    where.push(`(l.id = ? OR l.key_hint = ? OR l.email LIKE ? OR c.email LIKE ? OR c.organization LIKE ? OR c.name LIKE ?)`);
    params.push(/^\d{1,15}$/.test(filter.q) ? Number(filter.q) : -1, hint, like, like, like, like);
  }
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT l.id, l.kind, l.status, l.seats, l.key_hint, l.email, l.created_at, l.expires_at, l.revoked_at,
            c.type AS customer_type, c.name AS customer_name, c.organization, c.country,
            (SELECT COUNT(*) FROM activations a WHERE a.license_id = l.id AND a.active) AS seats_used
       FROM licenses l LEFT JOIN customers c ON c.id = l.customer_id
      ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY l.id DESC LIMIT ?`,
    [...params, filter.limit],
  );
  return rows.map((r) => ({
    id: r.id,
    kind: r.kind,
    status: r.status,
    ended: r.status === 'active' && r.expires_at !== null && (r.expires_at as Date).getTime() <= now.getTime(),
    seats: r.seats,
    seatsUsed: Number(r.seats_used),
    keyHint: r.key_hint,
    email: r.email,
    customer: r.customer_type ? { type: r.customer_type, name: r.customer_name, organization: r.organization, country: r.country } : null,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
  }));
}

export async function findLicense(db: Pool, id: number, now: Date): Promise<LicenseListing | null> {
  return (await listLicenses(db, { id, limit: 1 }, now))[0] ?? null;
}

/** One day's row of `usage_daily`: the counts of the roll-up, without its breakdowns. */
export type DailyUsage = Pick<DayStatistics, 'day' | 'installations' | 'newInstallations' | 'activeMachinesDay' | 'activeMachinesWeek' | 'uses'>;

export interface Statistics {
  from: string;
  to: string;
  daily: DailyUsage[];
  /** Trials started in the period, by country; active machines on the period's last day with figures. */
  countries: { country: string; trials: number; activeMachines: number }[];
  /** The use-frequency histogram of the period's last day with figures. */
  frequency: { day: string; buckets: { bucket: string; machines: number }[] } | null;
  signals: { day: string; kind: string; subject: string; count: number; detail: string }[];
  /** The latest day the roll-up has figures for, whatever the period; null before its first run. */
  lastRolledUp: string | null;
}

const BUCKET_ORDER: string[] = FREQUENCY_BUCKETS.map((b) => b.name);

/** The roll-up's figures of the days from `from` to `to` (inclusive, `YYYY-MM-DD`). */
export async function statistics(db: Pool, from: string, to: string): Promise<Statistics> {
  const [daily] = await db.query<RowDataPacket[]>(
    `SELECT DATE_FORMAT(day, '%Y-%m-%d') AS day, installations, new_installations, active_machines_day, active_machines_week, uses
       FROM usage_daily WHERE day BETWEEN ? AND ? ORDER BY day`,
    [from, to],
  );
  const [countries] = await db.query<RowDataPacket[]>(
    `SELECT c.country, SUM(c.trials) AS trials, SUM(IF(c.day = last.day, c.active_machines, 0)) AS active_machines
       FROM usage_daily_countries c
       JOIN (SELECT MAX(day) AS day FROM usage_daily_countries WHERE day BETWEEN ? AND ?) last
      WHERE c.day BETWEEN ? AND ?
      GROUP BY c.country ORDER BY trials DESC, active_machines DESC, c.country`,
    [from, to, from, to],
  );
  const [frequency] = await db.query<RowDataPacket[]>(
    `SELECT DATE_FORMAT(f.day, '%Y-%m-%d') AS day, f.uses_bucket, f.machines FROM usage_daily_frequency f
      WHERE f.day = (SELECT MAX(day) FROM usage_daily_frequency WHERE day BETWEEN ? AND ?)`,
    [from, to],
  );
  const [signals] = await db.query<RowDataPacket[]>(
    `SELECT DATE_FORMAT(day, '%Y-%m-%d') AS day, kind, subject, count, detail FROM piracy_signals
      WHERE day BETWEEN ? AND ? ORDER BY day DESC, count DESC, id LIMIT 200`,
    [from, to],
  );
  const [[latest]] = await db.query<RowDataPacket[]>("SELECT DATE_FORMAT(MAX(day), '%Y-%m-%d') AS day FROM usage_daily");
  const rank = (bucket: string) => (BUCKET_ORDER.includes(bucket) ? BUCKET_ORDER.indexOf(bucket) : BUCKET_ORDER.length);
  return {
    from,
    to,
    lastRolledUp: latest?.day ?? null,
    daily: daily.map((r) => ({
      day: r.day, installations: r.installations, newInstallations: r.new_installations,
      activeMachinesDay: r.active_machines_day, activeMachinesWeek: r.active_machines_week, uses: r.uses,
    })),
    countries: countries.map((r) => ({ country: r.country, trials: Number(r.trials), activeMachines: Number(r.active_machines) })),
    frequency: frequency.length
      ? {
          day: frequency[0]!.day,
          buckets: frequency
            .map((r) => ({ bucket: String(r.uses_bucket), machines: Number(r.machines) }))
            .sort((a, b) => rank(a.bucket) - rank(b.bucket) || a.bucket.localeCompare(b.bucket)),
        }
      : null,
    signals: signals.map((r) => ({ day: r.day, kind: r.kind, subject: r.subject, count: r.count, detail: r.detail })),
  };
}
