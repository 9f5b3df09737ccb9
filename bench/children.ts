import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/**
 * Child processes of the bench (the servers under test): started with their output kept (the last
 * few kilobytes, to show when something fails), and all stopped when the bench exits, fails or is
 * interrupted.
 */

const TAIL_BYTES = 16 * 1024;

class Tail {
  private text = '';
  push(chunk: Buffer): void {
    this.text += chunk.toString('utf8');
    if (this.text.length > 2 * TAIL_BYTES) this.text = this.text.slice(-TAIL_BYTES);
  }
  toString(): string {
    return this.text.slice(-TAIL_BYTES);
  }
}

export interface Child {
  name: string;
  proc: ChildProcess;
  /** Resolves with the exit code (or signal name) once the process has ended. */
  exited: Promise<number | string>;
  /** True once the process has ended. */
  hasExited(): boolean;
  stdout(): string;
  stderr(): string;
  stop(): Promise<void>;
}

const running = new Set<Child>();

/** Calls `onLine` with each complete line of a stream. */
function splitLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let rest = '';
  stream.on('data', (chunk: Buffer) => {
    const lines = (rest + chunk.toString('utf8')).split('\n');
    rest = lines.pop()!;
    for (const line of lines) onLine(line);
  });
  stream.on('end', () => {
    if (rest !== '') onLine(rest);
  });
}

export interface ChildOptions {
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Every line the child writes to stdout (its log), besides the kept tail. */
  onStdoutLine?: (line: string) => void;
}

export function startChild(name: string, args: string[], options: ChildOptions): Child {
  const proc = spawn(process.execPath, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = new Tail();
  const err = new Tail();
  proc.stdout!.on('data', (chunk: Buffer) => out.push(chunk));
  if (options.onStdoutLine) splitLines(proc.stdout!, options.onStdoutLine);
  proc.stderr!.on('data', (chunk: Buffer) => err.push(chunk));
  let ended = false;
  const exited = new Promise<number | string>((resolve) => {
    proc.on('exit', (code, signal) => {
      ended = true;
      resolve(code ?? signal ?? 'unknown');
    });
    proc.on('error', (error) => {
      ended = true;
      err.push(Buffer.from(`\n[bench] could not start ${name}: ${error.message}\n`));
      resolve('spawn-error');
    });
  });
  const child: Child = {
    name,
    proc,
    exited,
    hasExited: () => ended,
    stdout: () => out.toString(),
    stderr: () => err.toString(),
    async stop() {
      if (!ended) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      running.delete(child);
    },
  };
  running.add(child);
  void exited.then(() => running.delete(child));
  return child;
}

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((c) => c.stop()));
}

let cleanupInstalled = false;

/** Kills every child still running when this process ends, however it ends. */
export function installCleanup(extra: () => void = () => {}): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  const killNow = () => {
    for (const child of running) {
      if (!child.hasExited()) child.proc.kill('SIGKILL');
    }
    running.clear();
    extra();
  };
  process.on('exit', killNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      process.stderr.write(`\n[bench] ${signal}: stopping children\n`);
      killNow();
      process.exit(130);
    });
  }
}

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export class ChildStartError extends Error {
  override readonly name = 'ChildStartError';
}

/**
 * Polls `url` until it answers 200, the child exits, or the deadline passes. Fails with the
 * child's output in the message so the cause is on screen.
 */
export async function waitReady(
  child: Child,
  url: string,
  options: { method?: string; body?: string; deadlineMs: number },
): Promise<void> {
  const deadline = Date.now() + options.deadlineMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (child.hasExited()) {
      throw new ChildStartError(`${child.name} exited (${await child.exited}) before it was ready\n${describeOutput(child)}`);
    }
    try {
      const response = await fetch(url, {
        method: options.method ?? 'GET',
        body: options.body,
        headers: options.body === undefined ? {} : { 'content-type': 'application/json' },
        signal: AbortSignal.timeout(2000),
      });
      const text = await response.text();
      if (response.status === 200) return;
      last = `${response.status} ${text.slice(0, 300)}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new ChildStartError(
    `${child.name} was not ready within ${options.deadlineMs / 1000} s (${url}: ${last})\n${describeOutput(child)}`,
  );
}

export function describeOutput(child: Child): string {
  const parts: string[] = [];
  const err = child.stderr().trim();
  const out = child.stdout().trim();
  parts.push(`--- ${child.name} stderr (last ${TAIL_BYTES / 1024} KiB) ---\n${err === '' ? '(empty)' : err}`);
  if (out !== '') parts.push(`--- ${child.name} stdout (last ${TAIL_BYTES / 1024} KiB) ---\n${out}`);
  return parts.join('\n');
}
