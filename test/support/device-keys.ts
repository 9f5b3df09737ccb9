import { createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { rebindStatement } from '../../licensing/index.js';

/** A device key as the agent makes one (agent/device-key.ts), for tests that speak the API themselves. */
export interface TestDeviceKey {
  privateKey: KeyObject;
  /** Raw Ed25519, base64url: what `devicePublicKey` carries. */
  publicKey: string;
}

export function newDeviceKey(): TestDeviceKey {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey: createPublicKey(privateKey).export({ format: 'jwk' }).x! };
}

/** The body of `POST /v1/activations/:id/rebind`: the move from `from` to `to`, signed by `by`. */
export function rebindBody(activationId: number, from: string, to: string, challenge: string, by: TestDeviceKey) {
  const statement = rebindStatement({ activationId, fromFingerprint: from, toFingerprint: to, challenge });
  return { fingerprint: to, challenge, signature: sign(null, Buffer.from(statement, 'utf8'), by.privateKey).toString('base64url') };
}
