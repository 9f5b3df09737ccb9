import { createHmac } from 'node:crypto';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import { CHAIN_SIGNALS } from '../server/usage/chain.js';
import { countryOf } from './country.js';

/**
 * The daily roll-up of the software reports: installations, active machines per day and week, uses
 * per machine, trials and active machines per country, and the piracy signals. What it writes holds
 * counts only; a signal names a license by id or an address by a keyed hash, never a person.
 */

/** Trials from one address in one day at which it is a signal: an office behind one NAT has a few. */
export const TRIALS_FROM_ONE_ADDRESS = 5;

export const FREQUENCY_BUCKETS = [
  { name: '1', max: 1 },
  { name: '2-5', max: 5 },
  { name: '6-20', max: 20 },
  { name: '21+', max: Infinity },
] as const;

export interface DayStatistics {
  day: string;
  installations: number;
  newInstallations: number;
  activeMachinesDay: number;
  activeMachinesWeek: number;
  uses: number;
  countries: { country: string; trials: number; activeMachines: number }[];
  frequency: { bucket: string; machines: number }[];
  signals: { kind: string; subject: string; count: number; detail: string }[];
}

const DAY_MS = 86_400_000;

function bounds(day: string): { start: Date; end: Date; weekStart: Date } {
  const start = new Date(`${day}T00:00:00Z`);
  return { start, end: new Date(start.getTime() + DAY_MS), weekStart: new Date(start.getTime() - 6 * DAY_MS) };
}

async function count(db: Pool, sql: string, params: unknown[]): Promise<number> {
  const [rows] = await db.query<RowDataPacket[]>(sql, params);
  return Number(rows[0]?.n ?? 0);
}

/** A keyed hash of an address: the same address gives the same subject, and it cannot be reversed. */
export function addressSubject(secret: string, ip: string): string {
  return `address:${createHmac('sha256', secret).update(`address:${ip}`).digest('hex').slice(0, 16)}`;
}

/**
 * Computes one day (UTC) from usage events, activations and license events. Usage events count on
 * the day the server received them, not the day the agent claims: an agent's clock may be set
 * back, and a spool may be sent days later, and either would otherwise fall on a day already
 * rolled up and never count. The claimed time stays stored with each event (`occurred_at`).
 * License events are the server's own, timed by its clock.
 */
export async function computeDay(db: Pool, day: string, secret: string): Promise<DayStatistics> {
  const { start, end, weekStart } = bounds(day);

  const installations = await count(db, 'SELECT COUNT(DISTINCT fingerprint) AS n FROM activations WHERE created_at < ?', [end]);
  const newInstallations = await count(
    db,
    'SELECT COUNT(*) AS n FROM (SELECT fingerprint, MIN(created_at) AS first FROM activations GROUP BY fingerprint HAVING first >= ? AND first < ?) f',
    [start, end],
  );
  // Active: a trial machine that reported use, or any machine that checked its license in.
  const activeIn = (from: Date) =>
    count(
      db,
      `SELECT COUNT(*) AS n FROM (
         SELECT fingerprint FROM usage_events WHERE received_at >= ? AND received_at < ?
         UNION SELECT fingerprint FROM activations WHERE last_validated_at >= ? AND last_validated_at < ?) m`,
      [from, end, from, end],
    );
  const activeMachinesDay = await activeIn(start);
  const activeMachinesWeek = await activeIn(weekStart);
  const uses = await count(db, "SELECT COUNT(*) AS n FROM usage_events WHERE received_at >= ? AND received_at < ? AND kind <> 'clock_set_back'", [start, end]);

  // Uses per machine that day, as a histogram.
  const [perMachine] = await db.query<RowDataPacket[]>(
    "SELECT COUNT(*) AS uses FROM usage_events WHERE received_at >= ? AND received_at < ? AND kind <> 'clock_set_back' GROUP BY fingerprint",
    [start, end],
  );
  const frequency = FREQUENCY_BUCKETS.map((b) => ({ bucket: b.name, machines: 0 }));
  for (const { uses: n } of perMachine as { uses: number }[]) {
    frequency[FREQUENCY_BUCKETS.findIndex((b) => n <= b.max)]!.machines++;
  }

  // Countries: trials started that day (the address and locale of the activation), and active
  // machines (the first report of each machine that day).
  const countries = new Map<string, { trials: number; activeMachines: number }>();
  const bump = (country: string, field: 'trials' | 'activeMachines') => {
    const entry = countries.get(country) ?? { trials: 0, activeMachines: 0 };
    entry[field]++;
    countries.set(country, entry);
  };
  const [trialsStarted] = await db.query<RowDataPacket[]>(
    `SELECT a.ip, a.locale FROM licenses l JOIN activations a ON a.license_id = l.id
      WHERE l.kind = 'trial' AND l.created_at >= ? AND l.created_at < ?`,
    [start, end],
  );
  for (const r of trialsStarted as { ip: string | null; locale: string | null }[]) bump(countryOf(r.ip, r.locale), 'trials');
  const [firstReports] = await db.query<RowDataPacket[]>(
    `SELECT e.ip, e.locale FROM usage_events e
       JOIN (SELECT fingerprint, MIN(id) AS id FROM usage_events WHERE received_at >= ? AND received_at < ? GROUP BY fingerprint) f ON f.id = e.id`,
    [start, end],
  );
  for (const r of firstReports as { ip: string | null; locale: string | null }[]) bump(countryOf(r.ip, r.locale), 'activeMachines');

  const signals: DayStatistics['signals'] = [];
  // A key tried on more machines than its seats: machines refused a seat that day.
  const [overSeats] = await db.query<RowDataPacket[]>(
    `SELECT e.license_id, l.seats, COUNT(DISTINCT e.fingerprint) AS refused
       FROM license_events e JOIN licenses l ON l.id = e.license_id
      WHERE e.kind = 'seat_refused' AND e.occurred_at >= ? AND e.occurred_at < ?
      GROUP BY e.license_id, l.seats`,
    [start, end],
  );
  for (const r of overSeats as { license_id: number; seats: number; refused: number }[]) {
    signals.push({ kind: 'key_over_seats', subject: `license:${r.license_id}`, count: r.refused, detail: `${r.refused} more machine(s) than its ${r.seats} seat(s) tried the key` });
  }
  // Many trials from one address.
  const [byAddress] = await db.query<RowDataPacket[]>(
    `SELECT a.ip, COUNT(*) AS trials FROM licenses l JOIN activations a ON a.license_id = l.id
      WHERE l.kind = 'trial' AND l.created_at >= ? AND l.created_at < ? AND a.ip IS NOT NULL
      GROUP BY a.ip HAVING COUNT(*) >= ?`,
    [start, end, TRIALS_FROM_ONE_ADDRESS],
  );
  for (const r of byAddress as { ip: string; trials: number }[]) {
    signals.push({ kind: 'trials_from_one_address', subject: addressSubject(secret, r.ip), count: r.trials, detail: `${r.trials} trials started from one address` });
  }
  // Clocks set back, as the agents reported them.
  const [clocks] = await db.query<RowDataPacket[]>(
    `SELECT license_id, COUNT(DISTINCT fingerprint) AS machines FROM usage_events
      WHERE kind = 'clock_set_back' AND received_at >= ? AND received_at < ? GROUP BY license_id`,
    [start, end],
  );
  for (const r of clocks as { license_id: number; machines: number }[]) {
    signals.push({ kind: 'clock_set_back', subject: `license:${r.license_id}`, count: r.machines, detail: `clock set back on ${r.machines} machine(s)` });
  }
  // Tokens presented from another machine than the one they were issued to.
  const [foreign] = await db.query<RowDataPacket[]>(
    `SELECT license_id, COUNT(*) AS times FROM license_events
      WHERE kind = 'wrong_machine' AND occurred_at >= ? AND occurred_at < ? GROUP BY license_id`,
    [start, end],
  );
  for (const r of foreign as { license_id: number; times: number }[]) {
    signals.push({ kind: 'token_from_other_machine', subject: `license:${r.license_id}`, count: r.times, detail: `a token presented ${r.times} time(s) from another machine` });
  }

  // What the checks of signed usage events found (server/usage/chain.ts), per license: how many
  // events, and the first reason of the day as an example.
  const [chains] = await db.query<RowDataPacket[]>(
    `SELECT license_id, kind, COUNT(*) AS events, MIN(id) AS first FROM license_events
      WHERE kind IN (?) AND occurred_at >= ? AND occurred_at < ? GROUP BY license_id, kind ORDER BY license_id, kind`,
    [[...CHAIN_SIGNALS], start, end],
  );
  const firstIds = (chains as { first: number }[]).map((r) => r.first);
  const [firstRows] = firstIds.length
    ? await db.query<RowDataPacket[]>('SELECT id, detail FROM license_events WHERE id IN (?)', [firstIds])
    : [[]];
  const detailOf = new Map((firstRows as { id: number; detail: string | null }[]).map((r) => [Number(r.id), r.detail ?? '']));
  for (const r of chains as { license_id: number; kind: string; events: number; first: number }[]) {
    const example = detailOf.get(Number(r.first)) ?? '';
    signals.push({ kind: r.kind, subject: `license:${r.license_id}`, count: Number(r.events), detail: `${r.events} event(s), e.g. ${example}`.slice(0, 255) });
  }

  return {
    day, installations, newInstallations, activeMachinesDay, activeMachinesWeek, uses,
    countries: [...countries].sort(([a], [b]) => a.localeCompare(b)).map(([country, c]) => ({ country, ...c })),
    frequency,
    signals,
  };
}

/** Replaces the stored statistics of a day: recomputing a day is idempotent. */
export async function storeDay(db: Pool, stats: DayStatistics, now = new Date()): Promise<void> {
  const connection = await db.getConnection();
  try {
    await connection.beginTransaction();
    await connection.query(
      `REPLACE INTO usage_daily (day, installations, new_installations, active_machines_day, active_machines_week, uses, computed_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      [stats.day, stats.installations, stats.newInstallations, stats.activeMachinesDay, stats.activeMachinesWeek, stats.uses, now],
    );
    for (const table of ['usage_daily_countries', 'usage_daily_frequency', 'piracy_signals']) {
      await connection.query(`DELETE FROM ${table} WHERE day = ?`, [stats.day]);
    }
    if (stats.countries.length) {
      await connection.query('INSERT INTO usage_daily_countries (day, country, trials, active_machines) VALUES ?', [
        stats.countries.map((c) => [stats.day, c.country, c.trials, c.activeMachines]),
      ]);
    }
    await connection.query('INSERT INTO usage_daily_frequency (day, uses_bucket, machines) VALUES ?', [
      stats.frequency.map((f) => [stats.day, f.bucket, f.machines]),
    ]);
    if (stats.signals.length) {
      await connection.query('INSERT INTO piracy_signals (day, kind, subject, count, detail) VALUES ?', [
        stats.signals.map((s) => [stats.day, s.kind, s.subject, s.count, s.detail]),
      ]);
    }
    await connection.commit();
  } catch (err) {
    await connection.rollback().catch(() => {});
    throw err;
  } finally {
    connection.release();
  }
}
