import { createPrivateKey, type KeyObject } from 'node:crypto';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  certifiedKey, certifySigningKey, generateSigningKey, rootPublicFromPem, signingKeyFromPrivate, TrustError,
  type SignedStatement, type SigningKey,
} from '../../licensing/index.js';
import { rootPaths } from './root.js';

/**
 * Signing keys live as PKCS#8 PEM files, mode 0600, in `FERRY_DATA_DIR/signing-keys/`, named
 * `<created, ms since epoch>-<kid>.pem`, each with its certificate by the deployment's root beside
 * it (`<same name>.cert.json`, public). The newest CERTIFIED key is the one that signs: agents
 * accept no other. A newer key without a certificate (made while the root was offline, or copied
 * in) is skipped until `ferry-server keys certify KID`. Older keys still verify the tokens they
 * signed; `ferry-server keys retire KID` moves a key to `retired/`, after which its tokens are refused.
 */
export interface KeySet {
  /** The key new tokens are signed with: the newest certified one. */
  active: SigningKey;
  /** Every key that still verifies, the active one included, newest first. */
  verifying: SigningKey[];
  /** The root's certificate of each certified key, by kid. */
  certificates: Map<string, SignedStatement>;
  /** Keys newer than the active one that the root has not certified (they do not sign). */
  uncertified: string[];
}

const KEY_FILE = /^(\d+)-([A-Za-z0-9_-]+)\.pem$/;

interface KeyFile {
  file: string;
  created: number;
  kid: string;
}

export function keysDir(dataDir: string): string {
  return join(dataDir, 'signing-keys');
}

function certificateFile(dir: string, keyFile: KeyFile): string {
  return join(dir, keyFile.file.replace(/\.pem$/, '.cert.json'));
}

async function listKeyFiles(dir: string): Promise<KeyFile[]> {
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

export async function hasSigningKeys(dataDir: string): Promise<boolean> {
  return (await listKeyFiles(keysDir(dataDir))).length > 0;
}

async function readKey(dir: string, keyFile: KeyFile): Promise<SigningKey> {
  const key = signingKeyFromPrivate(createPrivateKey(await readFile(join(dir, keyFile.file), 'utf8')));
  if (key.kid !== keyFile.kid) throw new Error(`signing key file ${keyFile.file} does not hold the key its name says (${key.kid})`);
  return key;
}

/** The key's certificate when there is one and the root made it for this very key; otherwise null. */
async function readCertificate(dir: string, keyFile: KeyFile, key: SigningKey, root: KeyObject): Promise<SignedStatement | null> {
  let certificate: SignedStatement;
  try {
    certificate = JSON.parse(await readFile(certificateFile(dir, keyFile), 'utf8')) as SignedStatement;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`the certificate of signing key ${keyFile.kid} cannot be read: ${(err as Error).message}`);
  }
  try {
    const named = certifiedKey(root, certificate);
    return named.kid === key.kid ? certificate : null;
  } catch (err) {
    if (err instanceof TrustError) return null;
    throw err;
  }
}

async function writeCertificate(dir: string, keyFile: KeyFile, certificate: SignedStatement): Promise<void> {
  await writeFile(certificateFile(dir, keyFile), `${JSON.stringify(certificate, null, 2)}\n`, { mode: 0o644 });
}

/** The root public key of a data folder (the half that is always there). */
async function rootPublicOf(dataDir: string): Promise<KeyObject> {
  const file = rootPaths(dataDir).publicFile;
  const pem = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new Error(`there is no root public key ${file}: start the server once with the root private key present`);
    throw err;
  });
  return rootPublicFromPem(pem);
}

/** Loads the key set: every key verifies; the newest certified one signs. */
export async function loadKeySet(dataDir: string): Promise<{ keys: KeySet }> {
  const dir = keysDir(dataDir);
  const root = await rootPublicOf(dataDir);
  const verifying: SigningKey[] = [];
  const certificates = new Map<string, SignedStatement>();
  const uncertified: string[] = [];
  let active: SigningKey | undefined;
  for (const keyFile of await listKeyFiles(dir)) {
    const key = await readKey(dir, keyFile);
    verifying.push(key);
    const certificate = await readCertificate(dir, keyFile, key, root);
    if (certificate) certificates.set(key.kid, certificate);
    if (certificate && !active) active = key;
    if (!certificate && !active) uncertified.push(key.kid);
  }
  if (!active) {
    throw new Error(
      `no signing key in ${dir} is certified by the root: bring the root private key back (or set FERRY_ROOT_KEY) and run "ferry-server keys certify KID"`,
    );
  }
  return { keys: { active, verifying, certificates, uncertified } };
}

/** Adds a new signing key, certified by the root at once; it signs from the next start on. */
export async function rotateKey(dataDir: string, rootPrivateKey: KeyObject, now = Date.now()): Promise<SigningKey> {
  const dir = keysDir(dataDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const key = generateSigningKey();
  const keyFile: KeyFile = { file: `${now}-${key.kid}.pem`, created: now, kid: key.kid };
  // 'wx': never overwrite; two servers starting at once each write their own file, and both
  // then agree on the newest.
  await writeFile(join(dir, keyFile.file), key.privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
  await writeCertificate(dir, keyFile, certifySigningKey(rootPrivateKey, key, now));
  return key;
}

/** Certifies an existing key (made while the root was offline, or kept from before there was a root). */
export async function certifyKey(dataDir: string, rootPrivateKey: KeyObject, kid: string): Promise<SigningKey> {
  const dir = keysDir(dataDir);
  const keyFile = (await listKeyFiles(dir)).find((f) => f.kid === kid);
  if (!keyFile) throw new Error(`no signing key with kid ${kid} in ${dir}`);
  const key = await readKey(dir, keyFile);
  await writeCertificate(dir, keyFile, certifySigningKey(rootPrivateKey, key, keyFile.created));
  return key;
}

/** The kids of the keys in the data folder that have no certificate file at all. */
export async function keysWithoutCertificate(dataDir: string): Promise<string[]> {
  const dir = keysDir(dataDir);
  const names = new Set(await readdir(dir).catch(() => [] as string[]));
  return (await listKeyFiles(dir)).filter((f) => !names.has(f.file.replace(/\.pem$/, '.cert.json'))).map((f) => f.kid);
}

/** Retires a key: tokens it signed stop verifying at the next start. The active key cannot be retired. */
export async function retireKey(dataDir: string, kid: string): Promise<void> {
  const dir = keysDir(dataDir);
  const { keys } = await loadKeySet(dataDir);
  if (keys.active.kid === kid) throw new Error(`key ${kid} is the active signing key: rotate first, then retire it`);
  const keyFile = (await listKeyFiles(dir)).find((f) => f.kid === kid);
  if (!keyFile) throw new Error(`no signing key with kid ${kid}`);
  await mkdir(join(dir, 'retired'), { recursive: true, mode: 0o700 });
  await rename(join(dir, keyFile.file), join(dir, 'retired', keyFile.file));
  const certificate = certificateFile(dir, keyFile);
  await rename(certificate, join(dir, 'retired', certificate.slice(dir.length + 1))).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}
