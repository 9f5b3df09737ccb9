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
  await db.execute("UPDATE export_reports SET status = 'filed', row_count = ?, csv_sha256 = ? WHERE id = ?", [seq, checksum, reportId]);
  return {
    id: reportId, from, to, rows: seq, checksum, csvFormat: CURRENT_CSV_FORMAT, filedAt: now.toISOString(), encryptionClassification: ENCRYPTION_CLASSIFICATION,
  };
}

export async function findFiledReport(db: Pool, id: number): Promise<FiledReport | null> {
  const [rows] = await db.execute<RowDataPacket[]>(
    `SELECT id, DATE_FORMAT(period_from, '%Y-%m-%d') AS f, DATE_FORMAT(period_to, '%Y-%m-%d') AS t, row_count, csv_sha256, csv_format, filed_at, encryption_classification
       FROM export_reports WHERE id = ? AND status = 'filed'`,
    [id],
  );
  const r = rows[0];
  if (!r) return null;
  return {
    id: r.id, from: r.f, to: r.t, rows: r.row_count, checksum: r.csv_sha256, csvFormat: r.csv_format as CsvFormat,
    filedAt: (r.filed_at as Date).toISOString(), encryptionClassification: r.encryption_classification,
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
