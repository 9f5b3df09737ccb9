import { cpus, totalmem } from 'node:os';
import type { Connection } from 'mysql2/promise';

/** The machine the numbers were measured on, printed above them. */
export interface Machine {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  mariadb: string;
}

export async function describeMachine(db: Connection): Promise<Machine> {
  const list = cpus();
  const [rows] = await db.query('SELECT VERSION() AS version');
  return {
    cores: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    mariadb: String((rows as { version: string }[])[0]?.version ?? 'unknown'),
  };
}
