import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The part of OpenSSH's `~/.ssh/config` a file-transfer client needs: `Host` blocks (patterns with
 * `*`, `?` and `!negation`), `HostName`, `Port`, `User`, `IdentityFile`, `IdentitiesOnly`. As in
 * OpenSSH the first value obtained for a setting wins, and every matching `IdentityFile` is tried
 * in order. `Match` blocks are not evaluated: their settings are skipped, never misapplied.
 */

export interface SshHostConfig {
  hostName?: string;
  port?: number;
  user?: string;
  identityFiles: string[];
  identitiesOnly?: boolean;
}

interface Block {
  patterns: string[] | null; // null: a Match block, never applied
  settings: [keyword: string, value: string][];
}

function splitArgs(rest: string): string[] {
  const args: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(rest)) !== null) args.push(m[1] ?? m[2]!);
  return args;
}

export function parseSshConfig(text: string): Block[] {
  const blocks: Block[] = [{ patterns: ['*'], settings: [] }];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+?)(?:\s*=\s*|\s+)(.*)$/.exec(line);
    if (!m) continue;
    const keyword = m[1]!.toLowerCase();
    const args = splitArgs(m[2]!);
    if (keyword === 'host') blocks.push({ patterns: args, settings: [] });
    else if (keyword === 'match') blocks.push({ patterns: null, settings: [] });
    else if (args.length > 0) blocks.at(-1)!.settings.push([keyword, args.join(' ')]);
  }
  return blocks;
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

/** The settings for `host` (as the user typed it: an alias or a name). */
export function resolveSshHost(blocks: Block[], host: string, env: { home: string; localUser: string }): SshHostConfig {
  const found: SshHostConfig = { identityFiles: [] };
  const rawIdentities: string[] = [];
  for (const block of blocks) {
    if (block.patterns === null || !hostMatches(block.patterns, host)) continue;
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
        default:
          break;
      }
    }
  }
  const hostName = found.hostName ? found.hostName.replace(/%h/g, host) : host;
  if (found.hostName) found.hostName = hostName;
  const tokens = { home: env.home, host: hostName, user: found.user ?? env.localUser, localUser: env.localUser };
  found.identityFiles = rawIdentities.map((file) => expandTokens(file, tokens));
  return found;
}

/** `~/.ssh/config` for `host`; no file means no settings. */
export async function lookupSshConfig(home: string, host: string, localUser: string): Promise<SshHostConfig> {
  let text: string;
  try {
    text = await readFile(join(home, '.ssh', 'config'), 'utf8');
  } catch {
    return { identityFiles: [] };
  }
  return resolveSshHost(parseSshConfig(text), host, { home, localUser });
}
