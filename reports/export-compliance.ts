import { createHash } from 'node:crypto';
import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import { csvLine } from './csv.js';

/**
 * The export-compliance report: for a period, the names and addresses of all non-U.S. businesses
 * and organizations (never individual consumers) that purchased the software (a permanent license
 * sold to them, by staff or through the portal) or registered it (claimed a trial in MyAccount),
 * with what they got and the product's encryption classification.
 *
 * Filing streams the rows from MySQL into `export_report_rows` in a fixed order, hashing the CSV as
 * it would be written; downloads stream those rows back through the same formatter. Memory stays
 * flat whatever the number of rows, and every download is byte-identical to the filed one.
 */

/**
 * Ferry uses standard cryptography (SSH) and is sold as mass-market software: ECCN 5D992.c under
 * the U.S. Export Administration Regulations, License Exception ENC 740.17(b)(1).
 */
export const ENCRYPTION_CLASSIFICATION = 'ECCN 5D992.c (mass market, ENC 740.17(b)(1))';

/** The United States and its territories: customers here are not "non-U.S.". */
export const US_COUNTRY_CODES = ['US', 'PR', 'GU', 'VI', 'AS', 'MP', 'UM'] as const;

export const CSV_COLUMNS = [
  'event', 'date', 'organization', 'contact_name', 'address', 'country', 'license_id', 'license_kind', 'seats', 'encryption_classification',
] as const;

export interface ReportRow {
  event: 'purchase' | 'registration';
  date: string;
  organization: string;
  contactName: string;
  address: string;
  country: string;
  licenseId: number;
  licenseKind: string;
  seats: number;
}

/**
 * How a report's CSV is written, stored with the report at filing: a filed report is a record, so
 * it keeps rendering as filed (byte for byte, matching its checksum) whatever a later version does.
 * 1: cells as stored (reports filed before formulas were neutralised); 2: formula cells quoted.
 */
export const CSV_FORMAT = { asStored: 1, formulasNeutralised: 2 } as const;
export type CsvFormat = (typeof CSV_FORMAT)[keyof typeof CSV_FORMAT];
/** What new filings use. */
export const CURRENT_CSV_FORMAT: CsvFormat = CSV_FORMAT.formulasNeutralised;

export interface FiledReport {
  id: number;
  from: string;
  to: string;
  rows: number;
  checksum: string;
  csvFormat: CsvFormat;
  filedAt: string;
  encryptionClassification: string;
  /** Where the filing stands in the chain; null for reports filed before the chain existed. */
  chainPosition: number | null;
  prevHash: string | null;
  chainHash: string | null;
}

export function csvHeader(): string {
  return csvLine([...CSV_COLUMNS]);
}

export function csvRow(row: ReportRow, classification: string, format: CsvFormat): string {
  return csvLine(
    [row.event, row.date, row.organization, row.contactName, row.address, row.country, row.licenseId, row.licenseKind, row.seats, classification],
    { neutraliseFormulas: format >= CSV_FORMAT.formulasNeutralised },
  );
}

/**
 * One query for both kinds of event, in the order the report keeps: date, then license, then event.
 * An erased customer (status 'deleted') is an empty tombstone: it has nothing left to report.
 */
const SOURCE_SQL = `
  SELECT 'purchase' AS event, DATE_FORMAT(l.created_at, '%Y-%m-%d') AS date, c.id AS customer_id,
         COALESCE(c.organization, c.name) AS organization, c.name AS contact_name, c.address, c.country,
         l.id AS license_id, l.kind AS license_kind, l.seats
    FROM licenses l JOIN customers c ON c.id = l.customer_id
   WHERE l.kind = 'permanent' AND c.type = 'business' AND c.status <> 'deleted' AND c.country NOT IN (?)
     AND l.created_at >= ? AND l.created_at < ?
  UNION ALL
  SELECT 'registration', DATE_FORMAT(l.claimed_at, '%Y-%m-%d'), c.id,
         COALESCE(c.organization, c.name), c.name, c.address, c.country,
         l.id, l.kind, l.seats
    FROM licenses l JOIN customers c ON c.id = l.customer_id
   WHERE l.kind = 'trial' AND l.claimed_at IS NOT NULL AND c.type = 'business' AND c.status <> 'deleted' AND c.country NOT IN (?)
     AND l.claimed_at >= ? AND l.claimed_at < ?
  ORDER BY date, license_id, event`;

const INSERT_BATCH = 1_000;

/** A connection left mid-stream (a download cut short) still has rows coming: it cannot be reused. */
function releaseOrDrop(connection: PoolConnection, complete: boolean): void {
  if (complete) connection.release();
  else connection.destroy();
}

/** mysql2's streaming lives on the callback connection under the promise wrapper. */
function streamQuery(connection: PoolConnection, sql: string, params: unknown[]): AsyncIterable<Record<string, string | number>> {
  const core = (connection as unknown as { connection: import('mysql2').Connection }).connection;
  return core.query(sql, params).stream({ highWaterMark: 500 }) as unknown as AsyncIterable<Record<string, string | number>>;
}

/** `2026-06-30` → the instant after that day ends, UTC. */
function dayAfter(date: string): Date {
  return new Date(Date.parse(`${date}T00:00:00Z`) + 86_400_000);
}

/**
 * Files the report of [from, to] (whole days, UTC): streams the source rows into the report's rows
 * and records the CSV's SHA-256. The report is visible as filed only when complete.
 */
export async function fileExportReport(db: Pool, from: string, to: string, filedBy: string, now = new Date()): Promise<FiledReport> {
  const [created] = await db.execute<import('mysql2').ResultSetHeader>(
    `INSERT INTO export_reports (period_from, period_to, status, row_count, csv_sha256, csv_format, encryption_classification, filed_at, filed_by)
     VALUES (?, ?, 'filing', 0, '', ?, ?, ?, ?)`,
    [from, to, CURRENT_CSV_FORMAT, ENCRYPTION_CLASSIFICATION, now, filedBy],
  );
  const reportId = created.insertId;
  const hash = createHash('sha256').update(csvHeader());
  let seq = 0;
  let batch: unknown[][] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const rows = batch;
    batch = [];
    await db.query(
      `INSERT INTO export_report_rows (report_id, seq, event, event_date, customer_id, organization, contact_name, address, country, license_id, license_kind, seats) VALUES ?`,
      [rows],
    );
  };

  const reader: PoolConnection = await db.getConnection();
  let complete = false;
  try {
    const us = [...US_COUNTRY_CODES];
    const start = new Date(`${from}T00:00:00Z`);
    const end = dayAfter(to);
    for await (const source of streamQuery(reader, SOURCE_SQL, [us, start, end, us, start, end])) {
      const row: ReportRow = {
        event: source.event as ReportRow['event'],
        date: String(source.date),
        organization: String(source.organization),
        contactName: String(source.contact_name),
        address: String(source.address),
        country: String(source.country),
        licenseId: Number(source.license_id),
        licenseKind: String(source.license_kind),
        seats: Number(source.seats),
      };
      hash.update(csvRow(row, ENCRYPTION_CLASSIFICATION, CURRENT_CSV_FORMAT));
      seq++;
      batch.push([reportId, seq, row.event, row.date, source.customer_id, row.organization, row.contactName, row.address, row.country, row.licenseId, row.licenseKind, row.seats]);
      if (batch.length >= INSERT_BATCH) await flush();
    }
    await flush();
    complete = true;
  } catch (err) {
    await db.execute('DELETE FROM export_report_rows WHERE report_id = ?', [reportId]).catch(() => {});
    await db.execute('DELETE FROM export_reports WHERE id = ?', [reportId]).catch(() => {});
    throw err;
  } finally {
    releaseOrDrop(reader, complete);
  }
  const checksum = hash.digest('hex');
  await markFiledInChain(db, { id: reportId, from, to, checksum }, seq);
  return {
    id: reportId, from, to, rows: seq, checksum, csvFormat: CURRENT_CSV_FORMAT, filedAt: now.toISOString(), encryptionClassification: ENCRYPTION_CLASSIFICATION,
    ...(await chainLink(db, reportId)),
  };
}

export async function findFiledReport(db: Pool, id: number): Promise<FiledReport | null> {
  const [rows] = await db.execute<RowDataPacket[]>(
    `SELECT id, DATE_FORMAT(period_from, '%Y-%m-%d') AS f, DATE_FORMAT(period_to, '%Y-%m-%d') AS t, row_count, csv_sha256, csv_format, filed_at, encryption_classification,
            chain_position, prev_hash, chain_hash
       FROM export_reports WHERE id = ? AND status = 'filed'`,
    [id],
  );
  const r = rows[0];
  if (!r) return null;
  return {
    id: r.id, from: r.f, to: r.t, rows: r.row_count, checksum: r.csv_sha256, csvFormat: r.csv_format as CsvFormat,
    filedAt: (r.filed_at as Date).toISOString(), encryptionClassification: r.encryption_classification,
    chainPosition: r.chain_position, prevHash: r.prev_hash, chainHash: r.chain_hash,
  };
}

export async function listFiledReports(db: Pool, limit = 50): Promise<FiledReport[]> {
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT id FROM export_reports WHERE status = 'filed' ORDER BY id DESC LIMIT ?`, [limit],
  );
  const reports: FiledReport[] = [];
  for (const { id } of rows) reports.push((await findFiledReport(db, id))!);
  return reports;
}

/** The filed rows, in filing order, streamed from MySQL. */
async function* filedRows(db: Pool, reportId: number): AsyncGenerator<ReportRow> {
  const reader = await db.getConnection();
  let complete = false;
  try {
    const rows = streamQuery(
      reader,
      `SELECT event, DATE_FORMAT(event_date, '%Y-%m-%d') AS date, organization, contact_name, address, country, license_id, license_kind, seats
         FROM export_report_rows WHERE report_id = ? ORDER BY seq`,
      [reportId],
    );
    for await (const r of rows) {
      yield {
        event: r.event as ReportRow['event'], date: String(r.date), organization: String(r.organization), contactName: String(r.contact_name),
        address: String(r.address), country: String(r.country), licenseId: Number(r.license_id), licenseKind: String(r.license_kind), seats: Number(r.seats),
      };
    }
    complete = true;
  } finally {
    releaseOrDrop(reader, complete);
  }
}

/** The filed CSV, chunk by chunk (a few hundred rows a chunk). */
export async function* reportCsv(db: Pool, report: FiledReport): AsyncGenerator<string> {
  let chunk = csvHeader();
  for await (const row of filedRows(db, report.id)) {
    chunk += csvRow(row, report.encryptionClassification, report.csvFormat);
    if (chunk.length > 64 * 1024) {
      yield chunk;
      chunk = '';
    }
  }
  yield chunk;
}

/** The filed report as JSON: the report's facts, then its rows, written as they stream. */
export async function* reportJson(db: Pool, report: FiledReport): AsyncGenerator<string> {
  const head = {
    id: report.id, from: report.from, to: report.to, filedAt: report.filedAt, rows: report.rows,
    csvSha256: report.checksum, encryptionClassification: report.encryptionClassification,
  };
  let chunk = `{"report":${JSON.stringify(head)},"rows":[`;
  let first = true;
  for await (const row of filedRows(db, report.id)) {
    chunk += (first ? '' : ',') + JSON.stringify(row);
    first = false;
    if (chunk.length > 64 * 1024) {
      yield chunk;
      chunk = '';
    }
  }
  yield `${chunk}]}\n`;
}

/** The first filing's predecessor. */
export const CHAIN_START = '0'.repeat(64);

/** What a filing's link in the chain commits to: its predecessor, its place, its period and its CSV. */
export function chainHash(prevHash: string, position: number, report: { id: number; from: string; to: string; checksum: string }): string {
  return createHash('sha256').update(`ferry-export-report\n${prevHash}\n${position}\n${report.id}\n${report.from}\n${report.to}\n${report.checksum}`).digest('hex');
}

/** One filing at a time joins the chain: two filings finishing together must not share a predecessor. */
const CHAIN_LOCK = 'ferry_export_report_chain';

async function markFiledInChain(db: Pool, report: { id: number; from: string; to: string; checksum: string }, rows: number): Promise<void> {
  const connection = await db.getConnection();
  try {
    const [[lock]] = (await connection.query('SELECT GET_LOCK(?, 60) AS got', [CHAIN_LOCK])) as unknown as [[{ got: number }]];
    if (lock?.got !== 1) throw new Error('timed out waiting for another filing to join the report chain');
    try {
      const [last] = await connection.query<RowDataPacket[]>(
        "SELECT chain_position, chain_hash FROM export_reports WHERE status = 'filed' AND chain_position IS NOT NULL ORDER BY chain_position DESC LIMIT 1",
      );
      const position = last[0] ? Number(last[0].chain_position) + 1 : 1;
      const prevHash = last[0] ? String(last[0].chain_hash) : CHAIN_START;
      await connection.execute(
        "UPDATE export_reports SET status = 'filed', row_count = ?, csv_sha256 = ?, chain_position = ?, prev_hash = ?, chain_hash = ? WHERE id = ?",
        [rows, report.checksum, position, prevHash, chainHash(prevHash, position, report), report.id],
      );
    } finally {
      await connection.query('SELECT RELEASE_LOCK(?)', [CHAIN_LOCK]);
    }
  } finally {
    connection.release();
  }
}

async function chainLink(db: Pool, id: number): Promise<Pick<FiledReport, 'chainPosition' | 'prevHash' | 'chainHash'>> {
  const [rows] = await db.execute<RowDataPacket[]>('SELECT chain_position, prev_hash, chain_hash FROM export_reports WHERE id = ?', [id]);
  return { chainPosition: rows[0]!.chain_position, prevHash: rows[0]!.prev_hash, chainHash: rows[0]!.chain_hash };
}

export interface ChainBreak {
  reportId: number;
  problem: string;
}

/**
 * Walks the chain of filings in order: each must name its predecessor's hash, stand right after it,
 * and hash to what it stores. A filing deleted (with the triggers out of the way) leaves the next
 * one naming a predecessor that is not there; a filing whose checksum or period was rewritten no
 * longer hashes to its link.
 */
export async function verifyChain(db: Pool): Promise<ChainBreak[]> {
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT id, DATE_FORMAT(period_from, '%Y-%m-%d') AS f, DATE_FORMAT(period_to, '%Y-%m-%d') AS t, csv_sha256, chain_position, prev_hash, chain_hash
       FROM export_reports WHERE status = 'filed' AND chain_position IS NOT NULL ORDER BY chain_position`,
  );
  const breaks: ChainBreak[] = [];
  let expectedPrev = CHAIN_START;
  let expectedPosition = 1;
  for (const r of rows) {
    const position = Number(r.chain_position);
    if (position !== expectedPosition || r.prev_hash !== expectedPrev) {
      breaks.push({ reportId: r.id, problem: `the filing before report ${r.id} (chain position ${expectedPosition}) is missing or was changed` });
    }
    if (chainHash(String(r.prev_hash), position, { id: r.id, from: r.f, to: r.t, checksum: r.csv_sha256 }) !== r.chain_hash) {
      breaks.push({ reportId: r.id, problem: `report ${r.id} no longer matches its link in the chain: its period or checksum was changed` });
    }
    expectedPrev = String(r.chain_hash);
    expectedPosition = position + 1;
  }
  return breaks;
}

/** The SHA-256 of the CSV the stored rows make now: the filed checksum, unless they were changed. */
export async function currentChecksum(db: Pool, report: FiledReport): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of reportCsv(db, report)) hash.update(chunk);
  return hash.digest('hex');
}

export class ReportTamperedError extends Error {
  constructor(readonly reportId: number, message: string) {
    super(message);
  }
}

/** Records what was found, for /admin/reports; once per report and problem. */
export async function recordReportAlert(db: Pool, reportId: number, problem: string, now = new Date()): Promise<void> {
  const [known] = await db.execute<RowDataPacket[]>('SELECT id FROM export_report_alerts WHERE report_id = ? AND problem = ?', [reportId, problem]);
  if (known.length === 0) {
    await db.execute('INSERT INTO export_report_alerts (report_id, problem, detected_at) VALUES (?, ?, ?)', [reportId, problem, now]);
  }
}

export async function reportAlerts(db: Pool): Promise<Map<number, string[]>> {
  const [rows] = await db.query<RowDataPacket[]>('SELECT report_id, problem FROM export_report_alerts ORDER BY id');
  const alerts = new Map<number, string[]>();
  for (const r of rows) alerts.set(Number(r.report_id), [...(alerts.get(Number(r.report_id)) ?? []), String(r.problem)]);
  return alerts;
}

/**
 * A filed report, checked before its first byte is sent: its rows must still make the filed
 * checksum, and its own link in the chain must hold. Refused otherwise (ReportTamperedError, after
 * recording the alert). The body hashes the CSV again as it streams, and fails (cutting the download
 * short) should the rows change between the check and the end. `chainIntact` says whether the
 * whole chain holds (a filing deleted elsewhere does not make this one's rows wrong).
 */
export async function openVerifiedReport(
  db: Pool, report: FiledReport, format: 'csv' | 'json', onProblem: (problem: string) => void,
): Promise<{ body: AsyncGenerator<string>; chainIntact: boolean }> {
  const breaks = await verifyChain(db);
  for (const b of breaks) {
    await recordReportAlert(db, b.reportId, b.problem);
    onProblem(b.problem);
  }
  const ownLink = breaks.find((b) => b.reportId === report.id && /no longer matches/.test(b.problem));
  const problem = ownLink?.problem
    ?? ((await currentChecksum(db, report)) !== report.checksum ? `the rows of report ${report.id} no longer make its filed checksum: they were changed after filing` : null);
  if (problem) {
    await recordReportAlert(db, report.id, problem);
    onProblem(problem);
    throw new ReportTamperedError(report.id, problem);
  }
  return { body: (format === 'csv' ? checkedCsv : reportJson)(db, report), chainIntact: breaks.length === 0 };
}

/** The CSV, hashed again as it goes: a mismatch at the end fails the stream instead of ending it cleanly. */
async function* checkedCsv(db: Pool, report: FiledReport): AsyncGenerator<string> {
  const hash = createHash('sha256');
  for await (const chunk of reportCsv(db, report)) {
    hash.update(chunk);
    yield chunk;
  }
  if (hash.digest('hex') !== report.checksum) {
    throw new ReportTamperedError(report.id, `the rows of report ${report.id} changed while it was downloaded`);
  }
}
