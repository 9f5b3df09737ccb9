import { createPrivateKey } from 'node:crypto';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSigningKey, signingKeyFromPrivate, type SigningKey } from '../../licensing/index.js';

/**
 * Signing keys live as PKCS#8 PEM files, mode 0600, in `FERRY_DATA_DIR/signing-keys/`, named
 * `<created, ms since epoch>-<kid>.pem`: the newest is the one that signs; the others still verify
 * the tokens they signed. `ferry-server keys retire KID` moves a key to `retired/`, after which
 * tokens it signed are refused.
 */
export interface KeySet {
  /** The key new tokens are signed with. */
  active: SigningKey;
  /** Every key that still verifies, the active one included, newest first. */
  verifying: SigningKey[];
}

const KEY_FILE = /^(\d+)-([A-Za-z0-9_-]+)\.pem$/;

export function keysDir(dataDir: string): string {
  return join(dataDir, 'signing-keys');
}

async function listKeyFiles(dir: string): Promise<{ file: string; created: number; kid: string }[]> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw err;
  });
  return names
    .map((file) => ({ file, match: KEY_FILE.exec(file) }))
    .filter((entry): entry is { file: string; match: RegExpExecArray } => entry.match !== null)
    .map(({ file, match }) => ({ file, created: Number(match[1]), kid: match[2]! }))
    .sort((a, b) => b.created - a.created || b.kid.localeCompare(a.kid));
}

async function writeNewKey(dir: string, now: number): Promise<SigningKey> {
  const key = generateSigningKey();
  const pem = key.privateKey.export({ format: 'pem', type: 'pkcs8' });
  // 'wx': never overwrite; two servers starting at once each write their own file, and both
  // then agree on the newest.
  await writeFile(join(dir, `${now}-${key.kid}.pem`), pem, { mode: 0o600, flag: 'wx' });
  return key;
}

/** Loads the key set, generating the first key when there is none. */
export async function loadKeySet(dataDir: string, now = Date.now()): Promise<{ keys: KeySet; generated: boolean }> {
  const dir = keysDir(dataDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  let files = await listKeyFiles(dir);
  let generated = false;
  if (files.length === 0) {
    await writeNewKey(dir, now);
    generated = true;
    files = await listKeyFiles(dir);
  }
  const verifying: SigningKey[] = [];
  for (const { file, kid } of files) {
    const key = signingKeyFromPrivate(createPrivateKey(await readFile(join(dir, file), 'utf8')));
    if (key.kid !== kid) throw new Error(`signing key file ${file} does not hold the key its name says (${key.kid})`);
    verifying.push(key);
  }
  return { keys: { active: verifying[0]!, verifying }, generated };
}

/** Adds a new signing key; it signs from the next start on, and the old ones keep verifying. */
export async function rotateKey(dataDir: string, now = Date.now()): Promise<SigningKey> {
  const dir = keysDir(dataDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return writeNewKey(dir, now);
}

/** Retires a key: tokens it signed stop verifying at the next start. The active key cannot be retired. */
export async function retireKey(dataDir: string, kid: string): Promise<void> {
  const dir = keysDir(dataDir);
  const files = await listKeyFiles(dir);
  const index = files.findIndex((f) => f.kid === kid);
  if (index < 0) throw new Error(`no signing key with kid ${kid}`);
  if (index === 0) throw new Error(`key ${kid} is the active signing key: rotate first, then retire it`);
  await mkdir(join(dir, 'retired'), { recursive: true, mode: 0o700 });
  await rename(join(dir, files[index]!.file), join(dir, 'retired', files[index]!.file));
}
