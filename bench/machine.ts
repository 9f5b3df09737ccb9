import { cpus, totalmem } from 'node:os';
import type { Connection } from 'mysql2/promise';

/** The machine the numbers were measured on, printed above them. */
export interface Machine {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  mariadb: string;
  bufferPoolMiB: number;
  flushLogAtTrxCommit: number;
  /** Where MariaDB keeps its pid, to measure its CPU use. */
  mariadbPidFile: string | null;
}

export async function describeMachine(db: Connection): Promise<Machine> {
  const list = cpus();
  const [rows] = await db.query(
    'SELECT VERSION() AS version, @@innodb_buffer_pool_size AS pool, @@innodb_flush_log_at_trx_commit AS flush, @@pid_file AS pidFile',
  );
  const row = (rows as { version: string; pool: number | string; flush: number | string; pidFile: string | null }[])[0];
  return {
    cores: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    mariadb: String(row?.version ?? 'unknown'),
    bufferPoolMiB: Math.round(Number(row?.pool ?? 0) / 2 ** 20),
    flushLogAtTrxCommit: Number(row?.flush ?? -1),
    mariadbPidFile: row?.pidFile ?? null,
  };
}
