import { createPublicKey, type KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { generateRootKey, rootPrivateFromPem, rootPublicFromPem, rootPublicPem } from '../../licensing/trust.js';

/**
 * The deployment's root key pair on disk. The public half, `FERRY_DATA_DIR/root/root-public.pem`,
 * is what the server serves and `npm run package` builds into agents. The private half lives in
 * its own file (`FERRY_DATA_DIR/root/root-key.pem` unless `FERRY_ROOT_KEY` names another), mode
 * 0600, and is needed only to certify a new signing key or sign a release: an operator moves it
 * offline and brings it back for those two commands. The server itself never needs it to run.
 */
export interface RootPaths {
  publicFile: string;
  privateFile: string;
}

export function rootPaths(dataDir: string, rootKeyFile?: string): RootPaths {
  return {
    publicFile: join(dataDir, 'root', 'root-public.pem'),
    privateFile: rootKeyFile ?? join(dataDir, 'root', 'root-key.pem'),
  };
}

async function readIfPresent(file: string): Promise<string | null> {
  return readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
}

/**
 * The root public key; on a deployment's very first start (no root at all) a root pair is made.
 * A data folder that has the public half but not the private half is normal (kept offline).
 */
export async function loadOrCreateRoot(paths: RootPaths): Promise<{ publicKey: KeyObject; pem: string; generated: boolean }> {
  const existing = await readIfPresent(paths.publicFile);
  if (existing !== null) return { publicKey: rootPublicFromPem(existing), pem: existing, generated: false };
  const { privateKey, publicKey } = generateRootKey();
  await mkdir(dirname(paths.privateFile), { recursive: true, mode: 0o700 });
  await mkdir(dirname(paths.publicFile), { recursive: true, mode: 0o700 });
  // 'wx': two servers starting together never overwrite each other's root; the one that loses
  // the race takes the winner's, which the winner writes right after its private half.
  try {
    await writeFile(paths.privateFile, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return { ...(await theWinnersRoot(paths)), generated: false };
  }
  const pem = rootPublicPem(publicKey);
  await writeFile(paths.publicFile, pem, { mode: 0o644, flag: 'wx' });
  return { publicKey, pem, generated: true };
}

/**
 * The root public key another process is writing this moment; or, when none comes, the public half
 * of the private key that is there (FERRY_ROOT_KEY naming the root on a new server's first start).
 */
async function theWinnersRoot(paths: RootPaths): Promise<{ publicKey: KeyObject; pem: string }> {
  for (let attempt = 0; attempt < 40; attempt++) {
    const pem = await readIfPresent(paths.publicFile);
    if (pem !== null) return { publicKey: rootPublicFromPem(pem), pem };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const publicKey = createPublicKey(rootPrivateFromPem(await readFile(paths.privateFile, 'utf8')));
  const pem = rootPublicPem(publicKey);
  await writeFile(paths.publicFile, pem, { mode: 0o644, flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  return { publicKey, pem };
}

/** The root private key, for the commands that certify or sign; a clear error when it is offline. */
export async function loadRootPrivateKey(paths: RootPaths): Promise<KeyObject> {
  const pem = await readIfPresent(paths.privateFile);
  if (pem === null) {
    throw new Error(`the root private key ${paths.privateFile} is not here: bring it back from where it is kept offline (or set FERRY_ROOT_KEY to its file)`);
  }
  const privateKey = rootPrivateFromPem(pem);
  const publicPem = await readIfPresent(paths.publicFile);
  if (publicPem !== null && rootPublicPem(createPublicKey(privateKey)) !== rootPublicPem(rootPublicFromPem(publicPem))) {
    throw new Error(`the root private key ${paths.privateFile} does not belong to the root public key ${paths.publicFile}`);
  }
  return privateKey;
}
