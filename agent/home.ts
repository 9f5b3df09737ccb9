import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';

/**
 * The agent's home, `$FERRY_HOME`: its license, clock high-water mark, usage spool, trial secret and
 * (development builds) the trust root pinned at the first activation. The folder is 0700 and every
 * file 0600, because license.json holds a license key and a token that are as good as the license
 * itself, and trial-secret the trial.
 */
export interface HomePaths {
  dir: string;
  /** User settings: `server` (later: sites). */
  config: string;
  /** The license state: token and its key's certificate, ids, server URL, key of a permanent license. */
  license: string;
  /** The highest time this machine has shown the agent. */
  clock: string;
  /** Usage events not yet sent, one JSON object a line. */
  spool: string;
  /** The head of this activation's chain of signed usage events (see usage-chain.ts), beside its lock. */
  usageChain: string;
  /** A generated machine id, only where the OS has none readable. */
  machineId: string;
  /** The activation secret of this machine's trial (see trial-secret.ts): kept when the license goes. */
  trialSecret: string;
  /** Development builds only: the root trusted at the first activation, when FERRY_TRUST_ROOT is unset. */
  trustRoot: string;
  /** This activation's Ed25519 device key (see device-key.ts): made before activating, gone at deactivation. */
  deviceKey: string;
  /** The license server that last did not answer a background call, and when (see server-quiet.ts). */
  serverQuiet: string;
}

export function resolveHomeDir(env: Record<string, string | undefined>): string {
  if (env.FERRY_HOME?.trim()) return env.FERRY_HOME.trim();
  // The XDG spec says a relative XDG_CONFIG_HOME is invalid and must be ignored.
  const xdg = env.XDG_CONFIG_HOME?.trim();
  const configRoot = xdg && isAbsolute(xdg) ? xdg : join(env.HOME?.trim() || homedir(), '.config');
  return join(configRoot, 'ferry');
}

export function homePaths(dir: string): HomePaths {
  return {
    dir,
    config: join(dir, 'config.json'),
    license: join(dir, 'license.json'),
    clock: join(dir, 'clock.json'),
    spool: join(dir, 'usage-spool.jsonl'),
    usageChain: join(dir, 'usage-chain.json'),
    machineId: join(dir, 'machine-id'),
    trialSecret: join(dir, 'trial-secret'),
    trustRoot: join(dir, 'trust-root.json'),
    deviceKey: join(dir, 'device-key.pem'),
    serverQuiet: join(dir, 'server-unreachable.json'),
  };
}

const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
}

/** A file that exists but cannot be understood: callers decide what that means for them. */
export class UnreadableFileError extends Error {
  override readonly name = 'UnreadableFileError';
  constructor(readonly file: string, reason: string) {
    super(`${file} cannot be read: ${reason}`);
  }
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}

export async function readTextFile(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw new UnreadableFileError(file, (err as Error).message);
  }
}

/** The parsed JSON of a file, or undefined when there is none. */
export async function readJsonFile(file: string): Promise<unknown> {
  const text = await readTextFile(file);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new UnreadableFileError(file, `not valid JSON (${(err as Error).message})`);
  }
}

function tempNameFor(file: string): string {
  return join(dirname(file), `.${randomBytes(6).toString('hex')}.${process.pid}.tmp`);
}

/** Writes a new file 0600 next to `file` and returns its name; the caller moves it into place. */
async function writePrivateTemp(file: string, text: string): Promise<string> {
  await ensurePrivateDir(dirname(file));
  const temp = tempNameFor(file);
  // 'wx': the temp file is new, so the mode applies and nobody else's file is reused.
  const handle = await open(temp, 'wx', PRIVATE_FILE_MODE);
  try {
    await handle.writeFile(text, 'utf8');
    // On disk before the rename: after a crash the file is either the old one or the whole new one.
    await handle.sync();
  } finally {
    await handle.close();
  }
  return temp;
}

/**
 * Replaces `file` atomically: readers, and a crash at any moment, see the old content or the new
 * one, never half of it.
 */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  const temp = await writePrivateTemp(file, text);
  try {
    await rename(temp, file);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
}

/**
 * Creates `file` with `text` unless it exists, atomically: of two processes racing, one creates it
 * and the other gets false (and should read the winner's). Returns whether this call created it.
 */
export async function createFileOnce(file: string, text: string): Promise<boolean> {
  const temp = await writePrivateTemp(file, text);
  try {
    await link(temp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

/** Removes a file; one that is already gone is fine. */
export async function removeFile(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
}

/**
 * Appends one line with a single O_APPEND write, creating the file 0600. Used by the usage spool:
 * concurrent ferry commands each add their line without reading the file, so none loses another's.
 */
export async function appendPrivateLine(file: string, line: string): Promise<void> {
  await ensurePrivateDir(dirname(file));
  const handle = await open(file, 'a', PRIVATE_FILE_MODE);
  try {
    await handle.write(line.endsWith('\n') ? line : `${line}\n`);
  } finally {
    await handle.close();
  }
}
