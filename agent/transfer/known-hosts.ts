import { createHash, createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../home.js';

/**
 * OpenSSH's known_hosts format: `[marker] hosts keytype base64key [comment]`, where hosts is a
 * comma list of names and patterns (`*`, `?`, `!neg`), `[host]:port` for other ports than 22, or
 * one hashed entry `|1|salt|hmac` (HashKnownHosts). Ferry reads the user's and the system's files
 * and its own, `$FERRY_HOME/known_hosts`, where `--accept-new` records keys. `@revoked` keys are
 * refused; `@cert-authority` lines are skipped (no certificates here).
 */

export interface KnownKey {
  keyType: string;
  /** The key blob, as the server sends it. */
  key: Buffer;
  file: string;
  line: number;
  revoked: boolean;
}

export type HostKeyVerdict =
  | { verdict: 'known'; entry: KnownKey }
  | { verdict: 'changed'; stored: KnownKey[] }
  | { verdict: 'revoked'; entry: KnownKey }
  | { verdict: 'unknown' };

/** The name a host has in known_hosts: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** `SHA256:…` as `ssh-keygen -l` prints it. */
export function fingerprintOf(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside a key blob (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`). */
export function keyTypeOf(key: Buffer): string {
  if (key.length < 4) return 'unknown';
  const length = key.readUInt32BE(0);
  return key.subarray(4, 4 + length).toString('latin1');
}

function patternMatches(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return re.test(name);
}

function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return false;
    const digest = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return digest === hash;
  }
  let matched = false;
  for (const pattern of field.split(',')) {
    if (pattern.startsWith('!')) {
      if (patternMatches(pattern.slice(1), name)) return false;
    } else if (patternMatches(pattern, name)) {
      matched = true;
    }
  }
  return matched;
}

/** The keys `text` (one file) holds for `name`. */
export function keysFor(text: string, name: string, file: string): KnownKey[] {
  const keys: KnownKey[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let revoked = false;
    if (fields[0]!.startsWith('@')) {
      const marker = fields.shift()!;
      if (marker === '@cert-authority') return;
      revoked = marker === '@revoked';
    }
    const [hosts, keyType, base64] = fields;
    if (!hosts || !keyType || !base64) return;
    if (!hostFieldMatches(hosts, name)) return;
    keys.push({ keyType, key: Buffer.from(base64, 'base64'), file, line: index + 1, revoked });
  });
  return keys;
}

/** OpenSSH's key type of a negotiated host key algorithm (the RSA signature algorithms are ssh-rsa keys). */
export function keyTypeOfAlgorithm(algorithm: string): string {
  return algorithm.startsWith('rsa-sha2-') ? 'ssh-rsa' : algorithm;
}

/**
 * Judges the key a server presented. Known: the same key is on file. Changed: the host has keys
 * on file, of whatever type, and none is this one: as with OpenSSH, a host that was known stays
 * known, and a key of a new type is no first use (an attacker would simply show a type the user
 * has not recorded). Unknown: no key is on file for the host. A revoked key is refused wherever
 * it appears; a `@revoked` line alone does not make a host known.
 */
export function judgeHostKey(known: KnownKey[], presented: Buffer): HostKeyVerdict {
  const revoked = known.find((k) => k.revoked && k.key.equals(presented));
  if (revoked) return { verdict: 'revoked', entry: revoked };
  const trusted = known.filter((k) => !k.revoked);
  const match = trusted.find((k) => k.key.equals(presented));
  if (match) return { verdict: 'known', entry: match };
  if (trusted.length > 0) return { verdict: 'changed', stored: trusted };
  return { verdict: 'unknown' };
}

export class KnownHosts {
  constructor(
    /** Read-only files (the user's and the system's), then Ferry's own, which is last. */
    private readonly files: string[],
    private readonly ferryFile: string,
  ) {}

  async keysFor(name: string): Promise<KnownKey[]> {
    const keys: KnownKey[] = [];
    for (const file of [...this.files, this.ferryFile]) {
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch {
        continue;
      }
      keys.push(...keysFor(text, name, file));
    }
    return keys;
  }

  /** Trust on first use: adds the key to Ferry's file (0600, written atomically). */
  async record(name: string, key: Buffer): Promise<void> {
    let text = '';
    try {
      text = await readFile(this.ferryFile, 'utf8');
    } catch {
      // first entry
    }
    if (text !== '' && !text.endsWith('\n')) text += '\n';
    text += `${name} ${keyTypeOf(key)} ${key.toString('base64')}\n`;
    await writeFileAtomic(this.ferryFile, text);
  }

  get ownFile(): string {
    return this.ferryFile;
  }
}
