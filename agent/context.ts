import { homedir, userInfo } from 'node:os';
import { buildInfo } from './build-info.js';
import { unknownConfigKeys } from './config-keys.js';
import { parseFerryNow, parseFerryUptime, readClock, readMonotonic, type ClockReading, type Monotonic } from './clock.js';
import { AgentError } from './errors.js';
import { ensurePrivateDir, homePaths, readJsonFile, resolveHomeDir, UnreadableFileError, type HomePaths } from './home.js';
import { detectLocale } from './locale.js';
import { identifyMachine, type MachineIdentity } from './machine.js';
import { normalizeServerUrl } from './server-client.js';
import { printable } from './terminal-text.js';
import type { Terminal } from './transfer/prompt.js';
import type { DataStreams } from './transfer/stdio.js';

type Env = Record<string, string | undefined>;

/**
 * Everything a command needs from its surroundings, read once when the command starts: the
 * environment goes no deeper than this file, so commands and the license logic get plain values.
 */
export interface AgentContext {
  paths: HomePaths;
  clock: ClockReading;
  /** The time since boot when the command started (see clock.ts), or null where the system does not tell it. */
  monotonic: Monotonic | null;
  locale: string;
  /** `linux-x64`… sent at activation, so support can tell which build a machine runs. */
  platform: string;
  agentVersion: string;
  /** A line for stdout: the command's result, as given (text from elsewhere is the caller's to escape, JSON is `jsonLine`). */
  out(line: string): void;
  /** A line for stderr, `ferry: …`: warnings and notices that are not the result (escaped with `printable`). */
  notice(message: string): void;
  machine(): Promise<MachineIdentity>;
  /**
   * The license server: `--server`, else the server that issued this machine's license (it holds
   * the license), else FERRY_SERVER, else `server` in config.json.
   */
  resolveServer(licenseServer?: string | null): Promise<string>;
  /** Where this build's trust root comes from (see trust-root.ts). */
  trust: TrustSource;
  /** Servers found unreachable during this command: later calls in the same command skip them. */
  unreachableServers: Set<string>;
  /** The newest published release the license server named during this command (see update-notice.ts). */
  latestVersion: string | null;
  /** What transfer commands take from the environment (see TransferEnvironment). */
  transferEnv: TransferEnvironment;
  /** The terminal, when ferry runs on one: progress bars and prompts need it. */
  terminal: Terminal | null;
  /** Standard input and output as bytes, for `-` (`ferry get host:f -`); null when there are none. */
  data: DataStreams | null;
  /**
   * Work that runs beside the command and must end before ferry exits (reporting usage to the
   * license server while the files move). The task must not throw.
   */
  alongside(task: Promise<void>): void;
  /** Waits for everything started with `alongside`. */
  settle(): Promise<void>;
}

/**
 * A release build trusts the root built into it, whatever the environment says; a development
 * build (a checkout) takes FERRY_TRUST_ROOT, the path of a PEM file, when it is set.
 */
export type TrustSource =
  | { kind: 'built-in'; pem: string | null }
  | { kind: 'file'; file: string }
  | { kind: 'development' };

function trustSource(env: Env): TrustSource {
  const info = buildInfo();
  if (info.release) return { kind: 'built-in', pem: info.trustRoot };
  const file = env.FERRY_TRUST_ROOT?.trim();
  return file ? { kind: 'file', file } : { kind: 'development' };
}

/**
 * The environment of transfer commands, read here so that the transfer code gets plain values.
 * Numbers stay strings: the command validates them and names the variable when one is bad.
 */
export interface TransferEnvironment {
  /** The user's home: ~/.ssh lives there. */
  home: string;
  /** The local login name: the remote user when nothing else names one. */
  localUser: string;
  sshAuthSock: string | undefined;
  /** FERRY_PASSWORD: the SFTP password for scripts (never on the command line). */
  password: string | undefined;
  /** FERRY_KEY_PASSPHRASE: the passphrase of an encrypted private key, for scripts. */
  keyPassphrase: string | undefined;
  retries: string | undefined;
  timeout: string | undefined;
  parallel: string | undefined;
  connections: string | undefined;
}

function readTransferEnv(env: Env): TransferEnvironment {
  const nonEmpty = (value: string | undefined) => (value === undefined || value === '' ? undefined : value);
  let localUser = env.USER ?? env.LOGNAME;
  if (!localUser) {
    try {
      localUser = userInfo().username;
    } catch {
      localUser = 'root';
    }
  }
  return {
    home: env.HOME?.trim() || homedir(),
    localUser,
    sshAuthSock: nonEmpty(env.SSH_AUTH_SOCK),
    password: env.FERRY_PASSWORD,
    keyPassphrase: env.FERRY_KEY_PASSPHRASE,
    retries: nonEmpty(env.FERRY_RETRIES),
    timeout: nonEmpty(env.FERRY_TIMEOUT),
    parallel: nonEmpty(env.FERRY_PARALLEL),
    connections: nonEmpty(env.FERRY_CONNECTIONS),
  };
}

export interface ContextOptions {
  env: Env;
  /** `--server URL`, as given. */
  serverOption: string | undefined;
  agentVersion: string;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  terminal?: Terminal | null;
  data?: DataStreams | null;
}

/** This build's version (see build-info.ts). */
export function readAgentVersion(): string {
  return buildInfo().version;
}

/** The variables that let a test be any machine at any time. */
interface TestOverrides {
  /** FERRY_MACHINE_ID: replaces the OS machine id. */
  machineId: string | undefined;
  /** FERRY_NOW: replaces the clock's time. */
  now: string | undefined;
  /** FERRY_UPTIME: replaces the time since boot. */
  uptime: string | undefined;
}

/**
 * A development build (a checkout) honours FERRY_MACHINE_ID and FERRY_NOW. A release build ignores
 * them, and says so once: a machine id of one's choosing would be a fresh trial per value, and a
 * clock of one's choosing a trial that never ends. Containers without a readable machine id get
 * the id generated into FERRY_HOME (machine.ts), in either build.
 */
function testOverrides(env: Env, release: boolean, notice: (message: string) => void): TestOverrides {
  if (!release) return { machineId: env.FERRY_MACHINE_ID, now: env.FERRY_NOW, uptime: env.FERRY_UPTIME };
  const set = (['FERRY_MACHINE_ID', 'FERRY_NOW', 'FERRY_UPTIME'] as const).filter((name) => env[name]?.trim());
  if (set.length > 0) {
    notice(`${set.join(' and ')} ${set.length === 1 ? 'is' : 'are'} ignored: this is a release build, which uses the machine's own id and clock (they are for tests of a checkout)`);
  }
  return { machineId: undefined, now: undefined, uptime: undefined };
}

async function configuredServer(paths: HomePaths): Promise<string | undefined> {
  let config: unknown;
  try {
    config = await readJsonFile(paths.config);
  } catch (err) {
    if (err instanceof UnreadableFileError) throw new AgentError('USAGE', err.message);
    throw err;
  }
  const server = (config as { server?: unknown } | undefined)?.server;
  if (server === undefined) return undefined;
  if (typeof server !== 'string') throw new AgentError('USAGE', `${paths.config}: "server" must be a URL string`);
  return server;
}

/**
 * Once per command, keys of config.json that ferry does not know (a typo, most often), in one
 * line. Never fatal: a file that cannot be read is for the commands that need it to report.
 */
async function warnOfUnknownConfigKeys(paths: HomePaths, notice: (message: string) => void): Promise<void> {
  const unknown = unknownConfigKeys(await readJsonFile(paths.config).catch(() => undefined));
  if (unknown.length > 0) notice(`${paths.config}: ignoring ${unknown.length === 1 ? 'an unknown key' : 'unknown keys'}: ${unknown.join(', ')}`);
}

export async function createContext(options: ContextOptions): Promise<AgentContext> {
  const { env } = options;
  const paths = homePaths(resolveHomeDir(env));
  try {
    await ensurePrivateDir(paths.dir);
  } catch (err) {
    throw new AgentError('USAGE', `cannot create the ferry home ${paths.dir} (set FERRY_HOME elsewhere?): ${(err as Error).message}`);
  }
  // Notices name files and quote servers: shown through printable, always one line each.
  const notice = (message: string) => options.stderr(`ferry: ${printable(message)}\n`);
  const overrides = testOverrides(env, buildInfo().release, notice);
  await warnOfUnknownConfigKeys(paths, notice);
  const wallNow = overrides.now?.trim() ? parseFerryNow(overrides.now) : Date.now();
  const monotonic = overrides.uptime?.trim() ? parseFerryUptime(overrides.uptime) : await readMonotonic();

  let machine: Promise<MachineIdentity> | undefined;
  const alongside: Promise<void>[] = [];
  return {
    paths,
    clock: await readClock(paths.clock, wallNow, monotonic),
    monotonic,
    locale: detectLocale(env),
    platform: `${process.platform}-${process.arch}`,
    agentVersion: options.agentVersion,
    out: (line) => options.stdout(`${line}\n`),
    notice,
    machine() {
      // Once per command: reading the OS id runs a process, and the fallback notice is said once.
      machine ??= identifyMachine({ override: overrides.machineId, fallbackFile: paths.machineId, notice });
      return machine;
    },
    async resolveServer(licenseServer) {
      if (options.serverOption !== undefined) return normalizeServerUrl(options.serverOption, '--server');
      if (licenseServer) return licenseServer;
      if (env.FERRY_SERVER?.trim()) return normalizeServerUrl(env.FERRY_SERVER, 'FERRY_SERVER');
      const fromConfig = await configuredServer(paths);
      if (fromConfig !== undefined) return normalizeServerUrl(fromConfig, `${paths.config} "server"`);
      throw new AgentError('USAGE', 'no license server set: pass --server URL or set FERRY_SERVER');
    },
    trust: trustSource(env),
    unreachableServers: new Set(),
    latestVersion: null,
    transferEnv: readTransferEnv(env),
    terminal: options.terminal ?? null,
    data: options.data ?? null,
    alongside: (task) => void alongside.push(task),
    settle: async () => {
      while (alongside.length > 0) await alongside.shift();
    },
  };
}
