import { readFileSync } from 'node:fs';

/**
 * Where the CPU went during a measurement, from /proc (Linux): the server under test, MariaDB, the
 * load generator (this process) and everything else on the machine. In percent of one core, so a
 * 2-core machine has 200 % in all. Elsewhere than Linux the figures are simply absent.
 */

/** USER_HZ: 100 on every Linux the bench will meet (x86-64, arm64). */
const TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) of a process, or null when it cannot be read. */
function processSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

/** Busy CPU seconds of the whole machine, all cores. */
function machineSeconds(): number | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
    return (user! + nice! + system! + irq! + softirq! + (steal ?? 0)) / TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

export interface CpuShare {
  server: number | null;
  db: number | null;
  loadGenerator: number | null;
  other: number | null;
}

export interface CpuPids {
  server: number | undefined;
  db: number | null;
}

/** Starts counting; the returned function stops and gives the shares over the elapsed time. */
export function startCpuSample(pids: CpuPids): () => CpuShare {
  const started = process.hrtime.bigint();
  const read = () => ({
    server: pids.server === undefined ? null : processSeconds(pids.server),
    db: pids.db === null ? null : processSeconds(pids.db),
    loadGenerator: processSeconds(process.pid),
    machine: machineSeconds(),
  });
  const before = read();
  return () => {
    const after = read();
    const wall = Number(process.hrtime.bigint() - started) / 1e9;
    const pct = (a: number | null, b: number | null) => (a === null || b === null ? null : ((a - b) / wall) * 100);
    const server = pct(after.server, before.server);
    const db = pct(after.db, before.db);
    const loadGenerator = pct(after.loadGenerator, before.loadGenerator);
    const machine = pct(after.machine, before.machine);
    const other = machine === null ? null : Math.max(0, machine - (server ?? 0) - (db ?? 0) - (loadGenerator ?? 0));
    return { server, db, loadGenerator, other };
  };
}

/** MariaDB's process id, from its pid file, when this machine runs it and the file is readable. */
export function pidFromFile(path: string | null | undefined): number | null {
  if (!path) return null;
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 0 && processSeconds(pid) !== null ? pid : null;
  } catch {
    return null;
  }
}
