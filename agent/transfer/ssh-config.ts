import { readdirSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';

/**
 * The part of OpenSSH's client configuration a file-transfer client needs, read the way `ssh`
 * reads it: `~/.ssh/config`, then `/etc/ssh/ssh_config`, the first value obtained for a setting
 * winning, every matching `IdentityFile` tried in order.
 *
 * Understood: `Host` blocks (patterns with `*`, `?` and `!negation`), `Match` blocks on `all`,
 * `final`, `host`, `originalhost`, `user` and `localuser` (each may be negated with `!`; as in
 * OpenSSH, a config with `Match final` is read a second time, where those blocks apply), `Include`
 * (globs, relative to `~/.ssh` or `/etc/ssh`, conditional when inside a block, 16 levels deep at
 * most), `HostName`, `Port`, `User`, `IdentityFile`, `IdentitiesOnly`, `ProxyJump`. A `Match` on
 * anything else (`exec`, `canonical`, `localnetwork`, `tagged`) never applies: its settings are
 * skipped rather than misapplied, and ferry never runs a command named in a config file.
 */

export interface SshHostConfig {
  hostName?: string;
  port?: number;
  user?: string;
  identityFiles: string[];
  identitiesOnly?: boolean;
  /** `ProxyJump` as written (`none` included: it switches jumping off). */
  proxyJump?: string;
  /** `ProxyCommand` as written: ferry does not run it, and says so rather than go around it. */
  proxyCommand?: string;
}

type MatchCriterion = { negate: boolean; name: 'all' | 'final' } | { negate: boolean; name: 'host' | 'originalhost' | 'user' | 'localuser'; patterns: string[] };

/** When a block applies: a Host line, a Match line, or never (a Match on something not understood). */
type Condition = { kind: 'host'; patterns: string[] } | { kind: 'match'; criteria: MatchCriterion[] } | { kind: 'never' };

export interface ConfigBlock {
  /** All must hold: the block's own line and those of the blocks that included its file. */
  when: Condition[];
  settings: [keyword: string, value: string][];
}

/** Reads the files an `Include` argument names (already made absolute), in lexical order. */
export type IncludeReader = (pattern: string) => Promise<string[]>;

const MAX_INCLUDE_DEPTH = 16;

function splitArgs(rest: string): string[] {
  const args: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(rest)) !== null) args.push(m[1] ?? m[2]!);
  return args;
}

function parseMatch(args: string[]): Condition {
  const criteria: MatchCriterion[] = [];
  for (let i = 0; i < args.length; i++) {
    const word = args[i]!.toLowerCase();
    const negate = word.startsWith('!');
    const name = negate ? word.slice(1) : word;
    if (name === 'all' || name === 'final') {
      criteria.push({ negate, name });
      continue;
    }
    if (name === 'host' || name === 'originalhost' || name === 'user' || name === 'localuser') {
      const list = args[++i];
      if (list === undefined) return { kind: 'never' };
      criteria.push({ negate, name, patterns: list.split(',') });
      continue;
    }
    return { kind: 'never' };
  }
  return criteria.length === 0 ? { kind: 'never' } : { kind: 'match', criteria };
}

/**
 * The blocks of one configuration text, in order, with its `Include`s read in place. `base` is the
 * folder relative include paths start from (`~/.ssh` for a user's file, `/etc/ssh` for the system's).
 */
export async function parseSshConfig(
  text: string,
  options: { home?: string; base?: string; read?: IncludeReader } = {},
): Promise<ConfigBlock[]> {
  const blocks: ConfigBlock[] = [];
  await collect(text, [], blocks, options, 0);
  return blocks;
}

async function collect(
  text: string, outer: Condition[], blocks: ConfigBlock[], options: { home?: string; base?: string; read?: IncludeReader }, depth: number,
): Promise<void> {
  let current: ConfigBlock = { when: outer, settings: [] };
  blocks.push(current);
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+?)(?:\s*=\s*|\s+)(.*)$/.exec(line);
    if (!m) continue;
    const keyword = m[1]!.toLowerCase();
    const args = splitArgs(m[2]!);
    if (keyword === 'host') {
      current = { when: [...outer, { kind: 'host', patterns: args }], settings: [] };
      blocks.push(current);
    } else if (keyword === 'match') {
      current = { when: [...outer, parseMatch(args)], settings: [] };
      blocks.push(current);
    } else if (keyword === 'include') {
      if (!options.read || depth >= MAX_INCLUDE_DEPTH) continue;
      for (const arg of args) {
        const pattern = arg.startsWith('~/') && options.home ? join(options.home, arg.slice(2)) : isAbsolute(arg) ? arg : join(options.base ?? '.', arg);
        for (const file of await options.read(pattern)) {
          const included = readTextSync(file);
          if (included !== null) await collect(included, current.when, blocks, options, depth + 1);
        }
      }
      // What follows the Include still belongs to the block it was in, after the included blocks.
      current = { when: current.when, settings: [] };
      blocks.push(current);
    } else if (args.length > 0) {
      current.settings.push([keyword, args.join(' ')]);
    }
  }
}

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`, 'i');
}

/** OpenSSH's rule: a negated pattern that matches rules the block out; otherwise any plain match. */
export function hostMatches(patterns: string[], host: string): boolean {
  let matched = false;
  for (const pattern of patterns) {
    if (pattern.startsWith('!')) {
      if (globToRegExp(pattern.slice(1)).test(host)) return false;
    } else if (globToRegExp(pattern).test(host)) {
      matched = true;
    }
  }
  return matched;
}

/**
 * The files a glob names, in lexical order (as glob(3) gives them to OpenSSH). Wildcards may stand
 * in any part of the path; names starting with a dot match only a pattern that starts with one.
 */
export async function expandGlob(pattern: string): Promise<string[]> {
  const parts = pattern.split('/');
  let paths = [parts[0] === '' ? '/' : parts[0]!];
  for (const part of parts.slice(1)) {
    if (part === '') continue;
    if (!/[*?]/.test(part)) {
      paths = paths.map((p) => join(p, part));
      continue;
    }
    const re = globToRegExp(part);
    const next: string[] = [];
    for (const dir of paths) {
      const names = readNamesSync(dir);
      for (const name of names.sort()) {
        if (name.startsWith('.') && !part.startsWith('.')) continue;
        if (re.test(name)) next.push(join(dir, name));
      }
    }
    paths = next;
  }
  return paths;
}

function expandTokens(value: string, tokens: { home: string; host: string; user: string; localUser: string }): string {
  let out = value.startsWith('~/') ? join(tokens.home, value.slice(2)) : value;
  out = out.replace(/%(.)/g, (whole, token: string) => {
    switch (token) {
      case '%': return '%';
      case 'd': return tokens.home;
      case 'h': return tokens.host;
      case 'r': return tokens.user;
      case 'u': return tokens.localUser;
      default: return whole;
    }
  });
  return out;
}

interface LookupEnv {
  home: string;
  localUser: string;
  /** The remote user given on the command line or by a site, which `Match user` sees. */
  user?: string;
}

/** The settings for `host` (as the user typed it: an alias or a name). */
export function resolveSshHost(blocks: ConfigBlock[], host: string, env: LookupEnv): SshHostConfig {
  const found: SshHostConfig = { identityFiles: [] };
  const rawIdentities: string[] = [];
  let finalPass = false;
  const holds = (condition: Condition): boolean => {
    if (condition.kind === 'never') return false;
    if (condition.kind === 'host') return hostMatches(condition.patterns, host);
    return condition.criteria.every((criterion) => {
      let result: boolean;
      if (criterion.name === 'all') result = true;
      else if (criterion.name === 'final') result = finalPass;
      else if ('patterns' in criterion) {
        const subject = {
          host: found.hostName?.replace(/%h/g, host) ?? host,
          originalhost: host,
          user: env.user ?? found.user ?? env.localUser,
          localuser: env.localUser,
        }[criterion.name];
        result = hostMatches(criterion.patterns, subject);
      } else {
        result = false;
      }
      return criterion.negate ? !result : result;
    });
  };
  const apply = (block: ConfigBlock) => {
    for (const [keyword, value] of block.settings) {
      switch (keyword) {
        case 'hostname':
          found.hostName ??= value;
          break;
        case 'port': {
          const port = Number(value);
          if (found.port === undefined && Number.isInteger(port) && port > 0 && port < 65536) found.port = port;
          break;
        }
        case 'user':
          found.user ??= value;
          break;
        case 'identityfile':
          if (value.toLowerCase() !== 'none') rawIdentities.push(value);
          break;
        case 'identitiesonly':
          found.identitiesOnly ??= value.toLowerCase() === 'yes';
          break;
        case 'proxyjump':
          found.proxyJump ??= value;
          break;
        case 'proxycommand':
          found.proxyCommand ??= value;
          break;
        default:
          break;
      }
    }
  };
  const applied = new Set<ConfigBlock>();
  for (const block of blocks) {
    if (!block.when.every(holds)) continue;
    apply(block);
    applied.add(block);
  }
  // OpenSSH reads the config again when a block asks for the final pass: first values stay, and
  // the blocks that match now (`Match final`, a `Match host` on a HostName set late) add theirs.
  const wantsFinal = blocks.some((b) => b.when.some((c) => c.kind === 'match' && c.criteria.some((k) => k.name === 'final')));
  if (wantsFinal) {
    finalPass = true;
    for (const block of blocks) if (!applied.has(block) && block.when.every(holds)) apply(block);
  }
  const hostName = found.hostName ? found.hostName.replace(/%h/g, host) : host;
  if (found.hostName) found.hostName = hostName;
  const tokens = { home: env.home, host: hostName, user: env.user ?? found.user ?? env.localUser, localUser: env.localUser };
  found.identityFiles = rawIdentities.map((file) => expandTokens(file, tokens));
  return found;
}

/** The names of `Host` lines without wildcards or negation: aliases a person may type (and mistype). */
export function hostAliases(blocks: ConfigBlock[]): string[] {
  const names = new Set<string>();
  for (const block of blocks) {
    for (const condition of block.when) {
      if (condition.kind !== 'host') continue;
      for (const pattern of condition.patterns) if (!/[*?!%]/.test(pattern)) names.add(pattern);
    }
  }
  return [...names];
}

/** Where `ssh` reads its configuration: the user's file, then the system's. */
export interface SshConfigFiles {
  user: string;
  system: string;
}

/**
 * The config files are read synchronously: a few small files, read before the connection starts.
 * Read asynchronously, each step waited for a turn of the event loop behind the license check
 * that runs meanwhile, and the connection started about 10 ms later.
 */
function readTextSync(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function readNamesSync(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export function defaultSshConfigFiles(home: string): SshConfigFiles {
  return { user: join(home, '.ssh', 'config'), system: '/etc/ssh/ssh_config' };
}

/**
 * The user's and then the system's configuration, includes read in place; a missing file has no
 * settings. Read once per command: the destination and its jump hosts are each looked up in it.
 */
export async function readSshConfig(files: SshConfigFiles, home: string): Promise<ConfigBlock[]> {
  const blocks: ConfigBlock[] = [];
  for (const [file, base] of [[files.user, join(home, '.ssh')], [files.system, '/etc/ssh']] as const) {
    const text = readTextSync(file);
    if (text !== null) blocks.push(...(await parseSshConfig(text, { home, base, read: expandGlob })));
  }
  return blocks;
}
