import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, type TestServer } from './server.js';
import { startSshd, type Sshd, type SshdOptions } from './sshd.js';
import { tempDir } from './temp.js';
import { TEST_ROOT } from './trust-root.js';

/**
 * What the transfer tests share: a license server, a real sshd on a loopback port, and users of
 * `ferry` (the built binary, as a child process) with their own HOME (so the real ~/.ssh is never
 * touched), FERRY_HOME and machine id, their trial activated.
 */

export const CLI = fileURLToPath(new URL('../../agent/cli.js', import.meta.url));

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout as bytes (a file's content with `-`). */
  stdoutBytes?: Buffer;
}

export interface World {
  license: TestServer;
  sshd: Sshd;
  close(): Promise<void>;
}

export function startWorld(sshdOptions: Partial<SshdOptions> = {}): Promise<World> {
  return startWorldOn({ start: () => startSshd({ dir: tempDir('ferry-sshd-'), ...sshdOptions }) });
}

/** A world whose SFTP server is one of the servers ferry is tested against (sftp-servers.ts). */
export async function startWorldOn(server: { start: () => Promise<Sshd> }): Promise<World> {
  const license = await startServer();
  let sshd: Sshd;
  try {
    sshd = await server.start();
  } catch (err) {
    await license.close();
    throw err;
  }
  return {
    license,
    sshd,
    async close() {
      await sshd.stop();
      await license.close();
    },
  };
}

/**
 * Another sshd beside the world's, for the same license server (host keys of other types, other
 * settings): a World whose `close` stops only that sshd.
 */
export async function startSshdBeside(world: World, sshdOptions: Partial<SshdOptions>): Promise<World> {
  const sshd = await startSshd({ dir: tempDir('ferry-sshd-'), ...sshdOptions });
  return { license: world.license, sshd, close: () => sshd.stop() };
}

export interface UserOptions {
  /** Write the sshd's host keys into ~/.ssh/known_hosts (default true). */
  knownHosts?: boolean;
  /** Put the client key at ~/.ssh/id_ed25519, where ferry looks by default (default true). */
  defaultKey?: boolean;
  /** Activate a trial (default true). */
  licensed?: boolean;
}

/** A person with ferry installed: their own HOME and FERRY_HOME. */
export class FerryUser {
  readonly home = tempDir('ferry-user-home-');
  readonly ferryHome = join(this.home, '.config', 'ferry');
  readonly machineId = `transfer-${randomBytes(8).toString('hex')}`;

  constructor(readonly world: World) {}

  static async create(world: World, options: UserOptions = {}): Promise<FerryUser> {
    const user = new FerryUser(world);
    mkdirSync(join(user.home, '.ssh'), { recursive: true, mode: 0o700 });
    if (options.knownHosts !== false) writeFileSync(join(user.home, '.ssh', 'known_hosts'), `${world.sshd.knownHostsLines().join('\n')}\n`);
    if (options.defaultKey !== false) {
      copyFileSync(world.sshd.clientKey, join(user.home, '.ssh', 'id_ed25519'));
      chmodSync(join(user.home, '.ssh', 'id_ed25519'), 0o600);
    }
    if (options.licensed !== false) {
      const run = await user.run(['activate', '--trial', '--server', world.license.url]);
      expectExitCode(run, 0, 'activate --trial');
    }
    return user;
  }

  /** `sftp://root@127.0.0.1:PORT` + path. */
  url(path: string): string {
    const { sshd } = this.world;
    return `sftp://${sshd.user}@${sshd.host}:${sshd.port}${path}`;
  }

  private environment(extra: Record<string, string | undefined> = {}): Record<string, string> {
    const env: Record<string, string | undefined> = {
      PATH: process.env.PATH,
      HOME: this.home,
      USER: this.world.sshd.user,
      FERRY_HOME: this.ferryHome,
      FERRY_MACHINE_ID: this.machineId,
      FERRY_TRUST_ROOT: TEST_ROOT.publicFile,
      LANG: 'en_US.UTF-8',
      ...extra,
    };
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
    return env as Record<string, string>;
  }

  /**
   * Runs ferry on a terminal: a pseudo-terminal from util-linux `script`, as a person at a shell
   * would. `answers` are typed when their prompt has appeared on the screen (not before: a
   * terminal echoes what is typed before a program turns echo off). `screen` is everything the
   * terminal showed, stdout and stderr together.
   */
  runOnTerminal(
    args: string[],
    options: {
      env?: Record<string, string | undefined>;
      answers?: { prompt: RegExp; type: string }[];
      /** The terminal's width (`stty cols`), and a width it is resized to after `afterMs` (SIGWINCH). */
      columns?: number;
      resize?: { afterMs: number; columns: number };
    } = {},
  ): Promise<{ code: number | null; screen: string }> {
    const quote = (arg: string) => `'${arg.replace(/'/g, `'\\''`)}'`;
    let command = [process.execPath, CLI, ...args].map(quote).join(' ');
    if (options.resize) command = `(sleep ${options.resize.afterMs / 1000}; stty cols ${options.resize.columns} </dev/tty) & ${command}; code=$?; wait; exit $code`;
    if (options.columns !== undefined) command = `stty cols ${options.columns} rows 24; ${command}`;
    const answers = [...(options.answers ?? [])];
    return new Promise((resolve, reject) => {
      // -q quiet, -e the command's exit code, -f flush at once, -c the command; no typescript file.
      const child = spawn('script', ['-qefc', command, '/dev/null'], { env: { ...this.environment(options.env), TERM: 'xterm' }, stdio: ['pipe', 'pipe', 'pipe'] });
      let screen = '';
      const onOutput = (d: Buffer) => {
        screen += d;
        while (answers.length > 0 && answers[0]!.prompt.test(screen)) child.stdin.write(answers.shift()!.type);
      };
      child.stdout.on('data', onOutput);
      child.stderr.on('data', onOutput);
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, screen }));
    });
  }

  /**
   * Runs ferry as a child process. `killAfterMs`: a run that may hang (the bug a test looks for)
   * is killed then, and ends with code null, so that the test fails instead of waiting forever.
   * `onStdoutLine` gets the child too (to send it a signal when a line has appeared).
   */
  run(
    args: string[],
    options: {
      env?: Record<string, string | undefined>; onStdoutLine?: (line: string, child: ChildProcess) => void; killAfterMs?: number; input?: Buffer;
      /** Standard input left open, for the test to write to (and the child, to signal). */
      feed?: (child: ChildProcess & { stdin: NodeJS.WritableStream }) => void;
    } = {},
  ): Promise<Run> {
    const env = this.environment(options.env);
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      // Standard input is `input` (for `-`), written whole, or nothing at all: closed at once; or `feed`'s.
      child.stdin.on('error', () => undefined);
      if (options.feed) options.feed(child);
      else child.stdin.end(options.input);
      if (options.killAfterMs !== undefined) {
        const killer = setTimeout(() => child.kill('SIGKILL'), options.killAfterMs);
        child.once('close', () => clearTimeout(killer));
      }
      let stdout = '';
      let stderr = '';
      let pending = '';
      const chunks: Buffer[] = [];
      child.stdout.on('data', (d: Buffer) => {
        chunks.push(d);
        stdout += d;
        if (!options.onStdoutLine) return;
        pending += d;
        const lines = pending.split('\n');
        pending = lines.pop()!;
        for (const line of lines) options.onStdoutLine(line, child);
      });
      child.stderr.on('data', (d) => (stderr += d));
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stdout, stderr, stdoutBytes: Buffer.concat(chunks) }));
    });
  }

  /** The kinds in the usage spool (events not yet sent). */
  spooledKinds(): string[] {
    const file = join(this.ferryHome, 'usage-spool.jsonl');
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { kind: string }).kind);
  }
}

export function expectExitCode(run: Run, code: number, what: string): void {
  assert.equal(run.code, code, `${what}: exit ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
}

/** The last stderr line is one `ferry: …` line matching `pattern`; no stack trace anywhere. */
export function assertOneLineError(run: Run, pattern: RegExp): void {
  const lines = run.stderr.trimEnd().split('\n');
  assert.match(lines.at(-1)!, /^ferry: /, run.stderr);
  assert.match(lines.at(-1)!, pattern);
  assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
}

export function jsonLines(run: Run): Record<string, any>[] {
  return run.stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, any>);
}

/** A fresh folder; the sshd runs on this machine, so the same folder is a remote folder too. */
export function folder(prefix = 'ferry-xfer-'): string {
  return tempDir(prefix);
}

export function randomFile(path: string, size: number): Buffer {
  const data = randomBytes(size);
  writeFileSync(path, data);
  return data;
}

export function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Every file under `root` with its size and hash (part files included, so leftovers show). */
export function tree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const st = statSync(path);
      if (st.isDirectory()) {
        out[`${relative(root, path)}/`] = 'dir';
        visit(path);
      } else {
        out[relative(root, path)] = `${st.size}:${sha256(path).slice(0, 16)}`;
      }
    }
  };
  visit(root);
  return out;
}
