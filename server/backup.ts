import { createCipheriv, createDecipheriv, randomBytes, scrypt as scryptCallback, type ScryptOptions } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join, posix, sep } from 'node:path';

/**
 * `ferry-server backup FILE` and `restore FILE`: what in FERRY_DATA_DIR cannot be made again, in one
 * file encrypted with a passphrase. That is everything there (the signing keys, old and retired
 * ones included, the root key pair and any certificates, the generated admin token, the secret of
 * unsubscribe links and cookies) but the outbox and the release files, which are copies of what
 * is elsewhere. Losing the signing keys means every agent's token stops verifying; losing the root
 * means every agent must be rebuilt.
 *
 * The file: "FERRYBK1", scrypt's log2(N), r, p (one byte each), a 16-byte salt, a 12-byte IV, then
 * AES-256-GCM of a JSON list of the files, then GCM's 16-byte tag. The header is authenticated too.
 */
const MAGIC = Buffer.from('FERRYBK1');
const HEADER_BYTES = MAGIC.length + 3 + 16 + 12;
const TAG_BYTES = 16;
/** scrypt at N=2^17, r=8: 128 MiB and about half a second, once per backup or restore. */
const KDF = { log2N: 17, r: 8, p: 1 };
/** Folders of the data folder that are not kept: mail written without SMTP, published release files. */
const NOT_KEPT = new Set(['outbox', 'releases']);
export const MIN_PASSPHRASE_LENGTH = 12;

export class BackupError extends Error {
  override readonly name = 'BackupError';
  constructor(readonly kind: 'usage' | 'unreadable' | 'would-overwrite', message: string) {
    super(message);
  }
}

interface KeptFile {
  path: string;
  mode: number;
  data: string;
}

interface Contents {
  format: 1;
  createdAt: string;
  files: KeptFile[];
}

function deriveKey(passphrase: string, salt: Buffer, kdf: typeof KDF): Promise<Buffer> {
  const options: ScryptOptions = { N: 2 ** kdf.log2N, r: kdf.r, p: kdf.p, maxmem: 256 * 1024 * 1024 };
  return new Promise((resolve, reject) =>
    scryptCallback(passphrase.normalize('NFC'), salt, 32, options, (err, key) => (err ? reject(err) : resolve(key))));
}

/** Every file of the data folder that is kept, with paths relative to it ('/'-separated). */
async function keptFiles(dataDir: string, relative = ''): Promise<KeptFile[]> {
  const files: KeptFile[] = [];
  for (const entry of await readdir(join(dataDir, relative), { withFileTypes: true })) {
    const path = relative ? `${relative}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      if (relative === '' && NOT_KEPT.has(entry.name)) continue;
      files.push(...(await keptFiles(dataDir, path)));
    } else if (entry.isFile()) {
      const full = join(dataDir, path);
      files.push({ path, mode: (await stat(full)).mode & 0o777, data: (await readFile(full)).toString('base64') });
    }
  }
  return files;
}

/** Writes the encrypted backup of `dataDir` to `file` (0600; an existing file only with `force`). */
export async function backupDataDir(dataDir: string, file: string, passphrase: string, force = false): Promise<{ files: string[] }> {
  if (passphrase.length < MIN_PASSPHRASE_LENGTH) {
    throw new BackupError('usage', `the passphrase must be at least ${MIN_PASSPHRASE_LENGTH} characters long`);
  }
  const files = await keptFiles(dataDir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new BackupError('usage', `there is no data folder ${dataDir} (FERRY_DATA_DIR)`);
    throw err;
  });
  if (!files.some((f) => f.path.startsWith('signing-keys/'))) {
    throw new BackupError('usage', `${dataDir} holds no signing key: is FERRY_DATA_DIR the server's data folder?`);
  }
  if (!force && (await exists(file))) throw new BackupError('would-overwrite', `${file} exists already (--force replaces it)`);
  const contents: Contents = { format: 1, createdAt: new Date().toISOString(), files };
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const header = Buffer.concat([MAGIC, Buffer.from([KDF.log2N, KDF.r, KDF.p]), salt, iv]);
  const cipher = createCipheriv('aes-256-gcm', await deriveKey(passphrase, salt, KDF), iv);
  cipher.setAAD(header);
  const body = Buffer.concat([cipher.update(JSON.stringify(contents), 'utf8'), cipher.final()]);
  const temporary = `${file}.${process.pid}.part`;
  await writeFile(temporary, Buffer.concat([header, body, cipher.getAuthTag()]), { mode: 0o600 });
  await rename(temporary, file);
  return { files: files.map((f) => f.path) };
}

/** Decrypts a backup; a wrong passphrase and a damaged file are told apart only as far as GCM can. */
async function openBackup(file: string, passphrase: string): Promise<Contents> {
  const bytes = await readFile(file).catch((err: NodeJS.ErrnoException) => {
    throw new BackupError('usage', `cannot read ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  });
  if (bytes.length < HEADER_BYTES + TAG_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new BackupError('unreadable', `${file} is not a ferry-server backup`);
  }
  const header = bytes.subarray(0, HEADER_BYTES);
  const [log2N, r, p] = [header[8]!, header[9]!, header[10]!];
  if (log2N < 10 || log2N > 20 || r < 1 || r > 32 || p < 1 || p > 16) throw new BackupError('unreadable', `${file} has unknown key-derivation settings`);
  const salt = header.subarray(11, 27);
  const iv = header.subarray(27, 39);
  const decipher = createDecipheriv('aes-256-gcm', await deriveKey(passphrase, salt, { log2N, r, p }), iv);
  decipher.setAAD(header);
  decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
  let plain: Buffer;
  try {
    plain = Buffer.concat([decipher.update(bytes.subarray(HEADER_BYTES, bytes.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new BackupError('unreadable', `wrong passphrase, or ${file} is damaged`);
  }
  const contents = JSON.parse(plain.toString('utf8')) as Contents;
  if (contents.format !== 1 || !Array.isArray(contents.files)) throw new BackupError('unreadable', `${file} is a backup of a format this version does not know`);
  return contents;
}

/** A path from the backup, refused unless it stays inside the data folder. */
function safePath(path: unknown): string {
  if (typeof path !== 'string' || path === '' || path.startsWith('/') || path.includes('\\') || path.includes('\0')) {
    throw new BackupError('unreadable', `the backup names a file outside the data folder: ${JSON.stringify(path)}`);
  }
  const normal = posix.normalize(path);
  if (normal !== path || normal.split('/').includes('..')) {
    throw new BackupError('unreadable', `the backup names a file outside the data folder: ${JSON.stringify(path)}`);
  }
  return path.split('/').join(sep);
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(() => true, (err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return false;
    throw err;
  });
}

/**
 * Restores a backup into `dataDir`. A file that is there already (a signing key, the root, a
 * secret) is never replaced without `force`: the restore then changes nothing at all.
 */
export async function restoreDataDir(dataDir: string, file: string, passphrase: string, force = false): Promise<{ files: string[] }> {
  const contents = await openBackup(file, passphrase);
  const files = contents.files.map((f) => ({ ...f, local: safePath(f.path) }));
  if (!force) {
    const present: string[] = [];
    for (const f of files) if (await exists(join(dataDir, f.local))) present.push(f.path);
    if (present.length > 0) {
      throw new BackupError('would-overwrite',
        `${dataDir} already has ${present.slice(0, 3).join(', ')}${present.length > 3 ? ` and ${present.length - 3} more` : ''}: restore into a fresh data folder, or add --force to replace them`);
    }
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  for (const f of files) {
    const target = join(dataDir, f.local);
    await mkdir(dirname(target), { recursive: true, mode: 0o700 });
    const mode = (f.mode & 0o777) || 0o600;
    await writeFile(target, Buffer.from(f.data, 'base64'), { mode });
    await chmod(target, mode); // a replaced file (--force) keeps its old mode otherwise
  }
  return { files: files.map((f) => f.path) };
}
