import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { AgentError } from './errors.js';
import { createFileOnce, readTextFile, removeFile, UnreadableFileError } from './home.js';

/**
 * `$FERRY_HOME/device-key.pem`: an Ed25519 key pair made on this machine, the private half never
 * leaving it (0600). Its public half goes to the server with each activation, which keeps it with
 * the activation; from then on a signature by this key proves that a request comes from the
 * installation holding that activation, which a fingerprint (anyone who knows the machine id can
 * compute it) or a copied token cannot prove. Usage events are signed with it.
 *
 * One key per activation: it is made before the first activation request (so that a retry after a
 * lost answer and two commands at once send the same one) and removed when the machine is
 * deactivated, so the next activation gets a new one.
 */
export interface DeviceKey {
  /** The raw 32-byte Ed25519 public key, base64url: what the server stores. */
  publicKey: string;
  /** An Ed25519 signature of `data`, base64url. */
  sign(data: Buffer | string): string;
}

/** The server's pattern for a device public key: 32 bytes, base64url without padding. */
export const DEVICE_PUBLIC_KEY_PATTERN = /^[A-Za-z0-9_-]{43}$/;

function rawPublicKey(key: KeyObject): string {
  // An Ed25519 JWK's `x` is the raw public key, base64url.
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  if (typeof jwk.x !== 'string' || !DEVICE_PUBLIC_KEY_PATTERN.test(jwk.x)) throw new Error('not an Ed25519 key');
  return jwk.x;
}

function fromPem(file: string, pem: string): DeviceKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
    if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`a ${privateKey.asymmetricKeyType ?? 'unknown'} key`);
  } catch (err) {
    throw new AgentError('USAGE', `${file} is damaged (${(err as Error).message}): restore it from a backup of this ferry home, or run "ferry deactivate" and activate again`);
  }
  const publicKey = rawPublicKey(privateKey);
  return {
    publicKey,
    sign: (data) => sign(null, typeof data === 'string' ? Buffer.from(data, 'utf8') : data, privateKey).toString('base64url'),
  };
}

async function readKey(file: string): Promise<DeviceKey | undefined> {
  let text: string | undefined;
  try {
    text = await readTextFile(file);
  } catch (err) {
    if (err instanceof UnreadableFileError) throw new AgentError('USAGE', err.message);
    throw err;
  }
  return text === undefined ? undefined : fromPem(file, text);
}

/** This machine's device key if one was made, without making one. */
export async function existingDeviceKey(file: string): Promise<DeviceKey | undefined> {
  return readKey(file);
}

/** This machine's device key, made (0600) the first time it is needed. */
export async function deviceKey(file: string): Promise<DeviceKey> {
  const kept = await readKey(file);
  if (kept) return kept;
  const { privateKey } = generateKeyPairSync('ed25519');
  // Of two commands making one at once, one file wins and both use what it holds.
  await createFileOnce(file, privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
  const made = await readKey(file);
  if (!made) throw new Error(`${file} vanished right after it was made`);
  return made;
}

/** After deactivation: the next activation gets a key of its own. */
export async function removeDeviceKey(file: string): Promise<void> {
  await removeFile(file);
}
