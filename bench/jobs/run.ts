import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Bull from 'bull';
import mysql from 'mysql2/promise';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import type { AddressInfo } from 'node:net';
import { migrate } from '../../server/db/migrate.js';
import { formatTable, count, rate } from '../table.js';
import { seedRegistrations } from './seed.js';
import { startChild, freePort, stopAll, installCleanup } from '../children.js';

/**
 * The jobs bench: reminders per second through ferry-server's worker to a local SMTP server (beside
 * nodemailer sending straight to it), and the export-compliance report over a million registrations
 * (time and peak memory, beside a plain SELECT of the same rows).
 */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DATABASE = 'ferry_bench_jobs';
const DATABASE_URL = `mysql://root@127.0.0.1:3306/${DATABASE}`;
const REMINDERS = Number(process.env.BENCH_REMINDERS ?? 2_000);
const REGISTRATIONS = Number(process.env.BENCH_REGISTRATIONS ?? 1_000_000);
const PERIOD = { from: '2026-01-01', to: '2026-06-30' };

const progress = (message: string) => process.stderr.write(`bench: ${message}\n`);

async function localSmtp() {
  let received = 0;
  const waiters: (() => void)[] = [];
  const server = new SMTPServer({
    authOptional: true, disabledCommands: ['STARTTLS'],
    // No reverse DNS of each client: this machine has no resolver to ask.
    disableReverseLookup: true, logger: false,
    onData(stream, _session, callback) {
      stream.on('data', () => {});
      stream.on('end', () => {
        received++;
        waiters.splice(0).forEach((w) => w());
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  return {
    url: `smtp://127.0.0.1:${port}`,
    received: () => received,
    async waitFor(n: number, timeoutMs: number) {
      const deadline = Date.now() + timeoutMs;
      while (received < n) {
        if (Date.now() > deadline) throw new Error(`only ${received} of ${n} messages arrived`);
        await new Promise<void>((resolve) => { waiters.push(resolve); setTimeout(resolve, 200); });
      }
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function runChild(args: string[]): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'dist/bench/jobs/export-child.js'), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!)) : reject(new Error(`export child exited ${code}`))));
  });
}

export async function runJobsBench(): Promise<string> {
  const admin = await mysql.createConnection({ host: '127.0.0.1', user: 'root' });
  await admin.query(`DROP DATABASE IF EXISTS ${DATABASE}`);
  await admin.end();
  await migrate(DATABASE_URL);
  const db = mysql.createPool({ uri: DATABASE_URL, connectionLimit: 3, timezone: 'Z' });
  const rows: string[][] = [];
  const smtp = await localSmtp();
  const dataDir = mkdtempSync(join(tmpdir(), 'ferry-bench-jobs-'));
  const prefix = `ferry-bench-jobs-${process.pid}`;
  try {
    // 1. Reference: nodemailer straight to the SMTP server, 4 connections.
    const direct = nodemailer.createTransport({ url: smtp.url, pool: true, maxConnections: 4 } as never);
    const directStarted = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (next < REMINDERS) {
        const i = next++;
        await direct.sendMail({ from: 'bench@ferry.example', to: `r${i}@example.org`, subject: 'reference', text: 'x'.repeat(1500) });
      }
    }));
    const directSeconds = (performance.now() - directStarted) / 1000;
    direct.close();
    rows.push([`nodemailer direct to SMTP (${count(REMINDERS)} messages)`, rate(REMINDERS / directSeconds), `${directSeconds.toFixed(2)} s`, '', '1.00x']);

    // 2. Reminders through the queues: ferry-server worker as its own process.
    progress(`seeding ${count(REMINDERS)} trials with an email`);
    const ends = new Date(Date.now() + 3_600_000);
    const trials = Array.from({ length: REMINDERS }, (_, i) => [i + 1, 'trial', 'active', 1, `${(i + 1).toString(16).padStart(64, '0')}`, `r${i}@example.org`, ends, `C${String(i).padStart(9, '0')}`]);
    await db.query('INSERT INTO licenses (id, kind, status, seats, trial_fingerprint, email, expires_at, claim_code) VALUES ?', [trials]);
    const port = await freePort();
    const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const worker = startChild('ferry-worker', [...nodeArgs, join(ROOT, 'dist/server/main.js'), 'worker'], {
      cwd: ROOT,
      env: {
        ...process.env, DATABASE_URL, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_PREFIX: prefix, FERRY_DATA_DIR: dataDir,
        SMTP_URL: smtp.url, MAIL_PER_MINUTE: '1000000', MARKETING_MAIL_PER_MINUTE: '1000000', LOG_LEVEL: 'warn', PORT: String(port), ADMIN_TOKEN: 'bench-admin-token-0123456789',
      },
    });
    const reminders = new Bull('reminders', { prefix: `${prefix}:bull`, redis: { host: '127.0.0.1', port: 6379 } });
    const before = smtp.received();
    const started = performance.now();
    await reminders.addBulk(Array.from({ length: REMINDERS }, (_, i) => ({
      data: { licenseId: i + 1, slot: '1d', expiresAt: ends.getTime() }, opts: { jobId: `bench:${i}`, removeOnComplete: true },
    })));
    await smtp.waitFor(before + REMINDERS, 300_000);
    const seconds = (performance.now() - started) / 1000;
    const reminderRate = REMINDERS / seconds;
    rows.push([`reminders: queue → worker → sent_mail → SMTP (${count(REMINDERS)})`, rate(reminderRate), `${seconds.toFixed(2)} s`, '', `${(reminderRate / (REMINDERS / directSeconds)).toFixed(2)}x`]);
    await reminders.obliterate({ force: true }).catch(() => {});
    await reminders.close();
    await worker.stop();

    // 3. The export report over a million registrations, beside a plain SELECT of the same rows.
    progress(`seeding ${count(REGISTRATIONS)} registrations`);
    const seedStarted = performance.now();
    await db.query('DELETE FROM licenses');
    await seedRegistrations(db, REGISTRATIONS, PERIOD.from);
    await db.query('ANALYZE TABLE licenses, customers');
    progress(`seeded in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s; plain SELECT, then filing the report`);
    const select = await runChild(['select', DATABASE_URL, PERIOD.from, PERIOD.to]);
    const filed = await runChild(['file', DATABASE_URL, PERIOD.from, PERIOD.to]);
    rows.push([`plain SELECT of the rows (${count(select.rows!)})`, rate(select.rows! / (select.ms! / 1000)), `${(select.ms! / 1000).toFixed(2)} s`, `${select.peakRssMiB!.toFixed(0)} MiB`, '1.00x']);
    rows.push([`export report filed (${count(filed.rows!)} rows)`, rate(filed.rows! / (filed.ms! / 1000)), `${(filed.ms! / 1000).toFixed(2)} s`, `${filed.peakRssMiB!.toFixed(0)} MiB`, `${(select.ms! / filed.ms!).toFixed(2)}x`]);
    rows.push([`export report CSV download (${(filed.csvBytes! / 1048576).toFixed(0)} MiB)`, rate(filed.rows! / (filed.downloadMs! / 1000)), `${(filed.downloadMs! / 1000).toFixed(2)} s`, '(same process)', `${(select.ms! / filed.downloadMs!).toFixed(2)}x`]);
  } finally {
    await smtp.close();
    await db.end();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return formatTable(
    [{ title: 'jobs scenario' }, { title: 'per second', align: 'right' }, { title: 'time', align: 'right' }, { title: 'peak RSS', align: 'right' }, { title: 'x reference', align: 'right' }],
    rows,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  installCleanup();
  runJobsBench()
    .then((table) => {
      process.stdout.write(`\nFerry jobs bench\n${table}\n`);
      return stopAll();
    })
    .then(() => process.exit(0))
    .catch(async (err: Error) => {
      process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
      await stopAll();
      process.exit(2);
    });
}
