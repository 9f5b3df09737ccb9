import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { until } from './processes.js';

/**
 * What sshd and ProFTPD have in common as test peers: a server that runs in the foreground as a
 * child of this process, forks a process per connection, and is ready once its port greets with
 * an SSH banner. One piece of code starts it, waits for it (saying what it printed when it
 * exits instead), and stops it, its session processes first.
 */

export interface SshDaemon {
  child: ChildProcess;
  /** What it printed on stdout and stderr so far. */
  output(): string;
  /** Kills every session process (the per-connection children): connections drop, the listener stays. */
  killSessions(): number;
  /** The number of live session processes. */
  sessionCount(): number;
  stop(): Promise<void>;
}

/** Parent pid of each live process, from /proc. */
function processTree(): Map<number, number> {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The name may hold spaces and parentheses: fields start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parents.set(Number(entry), Number(fields[1]));
    } catch {
      // gone meanwhile
    }
  }
  return parents;
}

export function descendantsOf(pid: number): number[] {
  const parents = processTree();
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const [child, ppid] of parents) {
      if (ppid === parent) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

function killAll(pids: number[]): number {
  for (const pid of pids) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  return pids.length;
}

/** Whether the port answers with an SSH identification line. */
function greets(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('data', (banner) => {
      socket.destroy();
      resolve(banner.toString().startsWith('SSH-2.0-'));
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Starts `command args` and resolves once 127.0.0.1:`port` greets; `name` says which server in
 * errors, `log` adds a log file of its own to what `output()` shows. A server that exits or never
 * greets within 20 s is an error that carries what it printed (and the server is stopped).
 */
export async function startSshDaemon(name: string, command: string, args: string[], port: number, log?: () => string): Promise<SshDaemon> {
  const child: ChildProcess = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let printed = '';
  child.stdout!.on('data', (d) => (printed += d));
  child.stderr!.on('data', (d) => (printed += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const output = () => `${printed}${log?.() ?? ''}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    killAll(descendantsOf(child.pid!));
    child.kill('SIGTERM');
    await exited;
  };
  // A server that exits (a bad config line, a port taken) says so at once, not at the deadline.
  let waiting = true;
  const died = exited.then(() => {
    if (waiting) throw new Error(`${name} exited with ${child.exitCode ?? child.signalCode}: ${output()}`);
  });
  try {
    await Promise.race([until(`${name} on 127.0.0.1:${port}`, () => greets(port), 20_000, 50), died]);
    waiting = false;
  } catch (err) {
    waiting = false;
    await stop();
    throw err;
  }
  return {
    child,
    output,
    killSessions: () => killAll(descendantsOf(child.pid!)),
    sessionCount: () => descendantsOf(child.pid!).length,
    stop,
  };
}
