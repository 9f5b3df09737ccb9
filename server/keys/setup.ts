import { existsSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { rootFingerprint } from '../../licensing/index.js';
import { loadOrCreateRoot, loadRootPrivateKey, rootPaths } from './root.js';
import { hasSigningKeys, keysWithoutCertificate, certifyKey, loadKeySet, rotateKey, type KeySet } from './store.js';

interface Log {
  info(obj: object, message: string): void;
  warn(obj: object, message: string): void;
}

export interface TrustRoot {
  publicKey: KeyObject;
  pem: string;
  fingerprint: string;
}

/**
 * What the server needs to sign at start: the deployment's root (made on the very first start),
 * a first signing key certified by it, and the key set. The root private key is needed only when
 * there is something to certify; otherwise it may be offline.
 */
export async function prepareSigningKeys(dataDir: string, rootKeyFile: string | null, log: Log): Promise<{ keys: KeySet; root: TrustRoot }> {
  const paths = rootPaths(dataDir, rootKeyFile ?? undefined);
  const keysBefore = await hasSigningKeys(dataDir);
  const rootMissing = !existsSync(paths.publicFile) && !existsSync(paths.privateFile);
  if (rootMissing && keysBefore && (await keysWithoutCertificate(dataDir)).length === 0) {
    // A new root would not be the one agents were built with: never make one over certified keys.
    throw new Error(`the signing keys are certified, but ${paths.publicFile} is missing: copy it (the folder root/) from the deployment's data folder`);
  }
  const root = await loadOrCreateRoot(paths);
  if (root.generated) {
    log.warn({ privateKey: paths.privateFile }, 'generated the deployment root key: agents are built with its public half; move the private half offline (README, Operations)');
  }
  if (!keysBefore) {
    const rootPrivate = await loadRootPrivateKey(paths).catch((err: Error) => {
      throw new Error(`there is no signing key yet, and certifying the first one needs the root private key: ${err.message}`);
    });
    const key = await rotateKey(dataDir, rootPrivate);
    log.info({ kid: key.kid }, 'generated the first license signing key, certified by the root');
  } else if (root.generated) {
    // Keys from a version without a root: they are this deployment's own, certified by its new root.
    const rootPrivate = await loadRootPrivateKey(paths);
    for (const kid of await keysWithoutCertificate(dataDir)) {
      await certifyKey(dataDir, rootPrivate, kid);
      log.info({ kid }, 'certified a signing key from before the root');
    }
  }
  const { keys } = await loadKeySet(dataDir);
  for (const kid of keys.uncertified) {
    log.warn({ kid, signing: keys.active.kid }, `signing key ${kid} is not certified by the root, so it does not sign: run "ferry-server keys certify ${kid}" with the root private key present`);
  }
  return { keys, root: { publicKey: root.publicKey, pem: root.pem, fingerprint: rootFingerprint(root.publicKey) } };
}
