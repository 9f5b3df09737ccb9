import { join } from 'node:path';
import type { AgentContext } from '../context.js';
import { AgentError } from '../errors.js';
import { readJsonFile, UnreadableFileError } from '../home.js';
import { parseRates, type Rates } from './bwlimit.js';
import { CONCURRENCY, RETRY, SSH } from './constants.js';
import { pathFilter, type FilterRule, type PathFilter } from './filters.js';
import type { ConnectOptions } from './connect.js';
import { KnownHosts } from './known-hosts.js';
import { terminalPrompt } from './prompt.js';
import type { SiteDefinition } from './url.js';
import { traceTo } from './verbose.js';

/**
 * Transfer settings from flags, then the environment, then `$FERRY_HOME/config.json`, in that
 * order. The config file may hold named sites and transfer defaults:
 *
 *   { "sites": { "mysite": { "host": "sftp.example.org", "port": 22, "user": "ada",
 *                            "key": "~/.ssh/id_ed25519", "folder": "/upload" } },
 *     "transfers": { "parallel": 16, "connections": 4, "retries": 5, "timeout": 30 } }
 */

export interface TransferFlags {
  identity?: string;
  port?: string;
  jump?: string;
  acceptNew?: boolean;
  quiet?: boolean;
  json?: boolean;
  progress?: boolean;
  /** `--bwlimit RATE` or `UP:DOWN`, as given. */
  bwlimit?: string;
  /** `--exclude` and `--include`: both are the same list of rules, in the order given. */
  exclude?: FilterRule[];
  include?: FilterRule[];
  parallel?: string;
  connections?: string;
  retries?: string;
  timeout?: string;
  resume?: boolean;
  /** `--resume=size` or `--resume=verify` (the command line turns it into this). */
  resumeBy?: string;
  preserve?: boolean;
  recursive?: boolean;
  /** `-v` given this many times (verbose.ts). */
  verbose?: number;
}

export interface TransferConfig {
  sites: Record<string, SiteDefinition>;
  parallel: number;
  connections: number;
  retries: number;
  /** Seconds: the deadline of each SFTP request and of connecting. */
  timeout: number;
  /** How part files of an earlier run are trusted (resumeCheck), or null: they are replaced. */
  resume: 'verify' | 'size' | null;
  /** `--bwlimit`: bytes per second for the whole run, each way (null: none). */
  bwlimit: Rates;
  /** `--exclude` / `--include`, or null. */
  filter: PathFilter | null;
}

function integer(value: unknown, what: string, min: number, max: number): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new AgentError('USAGE', `${what} must be a whole number from ${min} to ${max}, not "${String(value)}"`);
  return n;
}

function parseSites(raw: unknown, file: string): Record<string, SiteDefinition> {
  if (raw === undefined) return {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new AgentError('USAGE', `${file}: "sites" must be an object of named sites`);
  const sites: Record<string, SiteDefinition> = {};
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    const where = `${file}: site "${name}"`;
    if (typeof value !== 'object' || value === null) throw new AgentError('USAGE', `${where} must be an object`);
    const site = value as Record<string, unknown>;
    if (typeof site.host !== 'string' || site.host === '') throw new AgentError('USAGE', `${where} needs a "host"`);
    const definition: SiteDefinition = { host: site.host };
    if (site.port !== undefined) definition.port = integer(site.port, `${where} "port"`, 1, 65535);
    for (const key of ['user', 'key', 'folder'] as const) {
      if (site[key] === undefined) continue;
      if (typeof site[key] !== 'string') throw new AgentError('USAGE', `${where} "${key}" must be a string`);
      definition[key] = site[key] as string;
    }
    if ('password' in site) throw new AgentError('USAGE', `${where}: passwords do not belong in the config file (use FERRY_PASSWORD or the prompt)`);
    sites[name] = definition;
  }
  return sites;
}

export async function loadTransferConfig(ctx: AgentContext, flags: TransferFlags): Promise<TransferConfig> {
  let config: Record<string, unknown> = {};
  try {
    const raw = await readJsonFile(ctx.paths.config);
    if (raw !== undefined) {
      if (typeof raw !== 'object' || raw === null) throw new AgentError('USAGE', `${ctx.paths.config}: must hold a JSON object`);
      config = raw as Record<string, unknown>;
    }
  } catch (err) {
    if (err instanceof UnreadableFileError) throw new AgentError('USAGE', err.message);
    throw err;
  }
  const transfers = (config.transfers ?? {}) as Record<string, unknown>;
  const env = ctx.transferEnv;
  const pick = (flag: string | undefined, flagName: string, envValue: string | undefined, envName: string, fileValue: unknown, fallback: number, min: number, max: number) => {
    if (flag !== undefined) return integer(flag, flagName, min, max);
    if (envValue !== undefined) return integer(envValue, envName, min, max);
    if (fileValue !== undefined) return integer(fileValue, `${ctx.paths.config} "transfers.${flagName.replace(/^--/, '')}"`, min, max);
    return fallback;
  };
  return {
    sites: parseSites(config.sites, ctx.paths.config),
    parallel: pick(flags.parallel, '--parallel', env.parallel, 'FERRY_PARALLEL', transfers.parallel, CONCURRENCY.defaultParallel, 1, CONCURRENCY.maxParallel),
    connections: pick(flags.connections, '--connections', env.connections, 'FERRY_CONNECTIONS', transfers.connections, CONCURRENCY.defaultConnections, 1, CONCURRENCY.maxConnections),
    retries: pick(flags.retries, '--retries', env.retries, 'FERRY_RETRIES', transfers.retries, RETRY.defaultRetries, 0, 100),
    timeout: pick(flags.timeout, '--timeout', env.timeout, 'FERRY_TIMEOUT', transfers.timeout, SSH.defaultTimeoutSeconds, 1, SSH.maxTimeoutSeconds),
    resume: resumeCheck(flags),
    bwlimit: flags.bwlimit === undefined ? { up: null, down: null } : parseRates(flags.bwlimit),
    filter: pathFilter(flags.exclude ?? flags.include),
  };
}

/**
 * How `--resume` trusts a part file: `verify` (plain `--resume`: every block compared with the
 * source) or `size` (`--resume=size`: its size alone, as cheap as it sounds); null without it.
 */
export function resumeCheck(flags: TransferFlags): 'verify' | 'size' | null {
  if (flags.resumeBy === undefined) return flags.resume ? 'verify' : null;
  if (flags.resumeBy === 'verify' || flags.resumeBy === 'size') return flags.resumeBy;
  throw new AgentError('USAGE', `--resume=${flags.resumeBy}: say --resume (the part file is verified whole) or --resume=size (it is trusted by its size)`);
}

export function ferryKnownHostsFile(ctx: AgentContext): string {
  return join(ctx.paths.dir, 'known_hosts');
}

export function connectOptions(ctx: AgentContext, flags: TransferFlags, config: TransferConfig): ConnectOptions {
  const env = ctx.transferEnv;
  const options: ConnectOptions = {
    acceptNew: flags.acceptNew === true,
    timeoutMs: config.timeout * 1000,
    home: env.home,
    localUser: env.localUser,
    prompt: terminalPrompt(ctx.terminal),
    knownHosts: new KnownHosts(
      [join(env.home, '.ssh', 'known_hosts'), join(env.home, '.ssh', 'known_hosts2'), '/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'],
      ferryKnownHostsFile(ctx),
    ),
    sites: config.sites,
    notice: (message) => {
      if (!flags.quiet) ctx.notice(message);
    },
    trace: traceTo(ctx.notice, flags.verbose),
  };
  if (flags.identity !== undefined) options.identity = flags.identity;
  if (flags.port !== undefined) options.port = integer(flags.port, '-P', 1, 65535);
  if (flags.jump !== undefined) options.jump = flags.jump;
  if (env.sshAuthSock !== undefined) options.sshAuthSock = env.sshAuthSock;
  if (env.password !== undefined) options.password = env.password;
  if (env.keyPassphrase !== undefined) options.keyPassphrase = env.keyPassphrase;
  return options;
}
