import { randomBytes } from 'node:crypto';
import { fingerprint } from '../../licensing/index.js';

/** A machine fingerprint no other test uses. */
export function newMachine(): string {
  return fingerprint(randomBytes(16).toString('hex'));
}

/** An activation secret as the agent makes one (32 random bytes, base64url). */
export function newActivationSecret(): string {
  return randomBytes(32).toString('base64url');
}
