import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { getRawAsset, isSea } from 'node:sea';

/**
 * Native addons inside the single executable. ssh2 encrypts with its OpenSSL binding
 * (`sshcrypto.node`) when it can load it and falls back to JavaScript otherwise; a single
 * executable cannot `require` a file, so the release build carries the binding as a SEA asset
 * (server/releases/package.ts) and its bundle loads it from here. With the binding, 2,000 small
 * files up measured 20-30 % faster than without (it keeps one cipher per direction instead of
 * making one per packet), and Node's warning about `require` in a single executable is gone.
 *
 * The library is written once to the user's cache folder under its own SHA-256, and checked
 * against that digest before every load: a file changed there is written again, never loaded.
 * Where the cache cannot be written, a private copy in the temporary folder serves this run only.
 * Any failure throws; ssh2 catches it and uses its JavaScript ciphers.
 */
export function loadBundledAddon(asset: string): unknown {
  if (!isSea()) throw new Error('native addons are bundled only into the single executable');
  const bytes = Buffer.from(getRawAsset(asset) as ArrayBuffer);
  const digest = createHash('sha256').update(bytes).digest('hex');
  const module = { exports: {} as unknown };
  const cached = cachedCopy(asset, bytes, digest);
  if (cached) {
    process.dlopen(module, cached);
    return module.exports;
  }
  const own = join(tmpdir(), `.ferry-${randomBytes(8).toString('hex')}-${asset}`);
  writeFileSync(own, bytes, { mode: 0o700, flag: 'wx' });
  try {
    process.dlopen(module, own);
  } finally {
    // A loaded library stays mapped after its name is gone.
    unlinkSync(own);
  }
  return module.exports;
}

/** The asset's copy in the cache folder, written when missing or different; null when the folder cannot be used. */
function cachedCopy(asset: string, bytes: Buffer, digest: string): string | null {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  const dir = join(base, 'ferry');
  const file = join(dir, `${digest.slice(0, 16)}-${asset}`);
  try {
    if (createHash('sha256').update(readFileSync(file)).digest('hex') === digest) return file;
  } catch {
    // Not there yet.
  }
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    // Written beside and renamed into place: two runs starting at once never load half a file.
    const temporary = `${file}.${randomBytes(6).toString('hex')}`;
    writeFileSync(temporary, bytes, { mode: 0o700, flag: 'wx' });
    renameSync(temporary, file);
    return file;
  } catch {
    return null;
  }
}
