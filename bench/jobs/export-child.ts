import { readFileSync } from 'node:fs';
import mysql from 'mysql2/promise';
import { fileExportReport, findFiledReport, reportCsv } from '../../reports/export-compliance.js';

/**
 * Runs in its own process so that its peak memory is its own: `file` files the report of the
 * period and downloads its CSV (discarding it); `select` streams the same source rows with a plain
 * SELECT and discards them, as the reference. Prints one JSON line.
 */
const [mode, databaseUrl, from, to] = process.argv.slice(2) as ['file' | 'select', string, string, string];

function peakRssMiB(): number {
  const status = readFileSync('/proc/self/status', 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

const db = mysql.createPool({ uri: databaseUrl, connectionLimit: 3, timezone: 'Z' });
const started = performance.now();
let rows = 0;
let downloadMs = 0;
let bytes = 0;
if (mode === 'file') {
  const report = await fileExportReport(db, from, to, 'bench');
  rows = report.rows;
  const filedMs = performance.now() - started;
  const downloadStarted = performance.now();
  for await (const chunk of reportCsv(db, (await findFiledReport(db, report.id))!)) bytes += Buffer.byteLength(chunk);
  downloadMs = performance.now() - downloadStarted;
  console.log(JSON.stringify({ mode, rows, ms: filedMs, downloadMs, csvBytes: bytes, peakRssMiB: peakRssMiB() }));
} else {
  const connection = await db.getConnection();
  const core = (connection as unknown as { connection: import('mysql2').Connection }).connection;
  const stream = core
    .query(
      `SELECT l.id, l.claimed_at, c.organization, c.name, c.address, c.country, l.kind, l.seats
         FROM licenses l JOIN customers c ON c.id = l.customer_id
        WHERE l.claimed_at >= ? AND l.claimed_at < ? AND c.type = 'business' AND c.country <> 'US'`,
      [new Date(`${from}T00:00:00Z`), new Date(Date.parse(`${to}T00:00:00Z`) + 86_400_000)],
    )
    .stream({ highWaterMark: 500 });
  for await (const _ of stream) rows++;
  connection.release();
  console.log(JSON.stringify({ mode, rows, ms: performance.now() - started, downloadMs: 0, csvBytes: 0, peakRssMiB: peakRssMiB() }));
}
await db.end();
