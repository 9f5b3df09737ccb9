import { randomBytes } from 'node:crypto';
import { fingerprint } from '../../licensing/index.js';

/** A machine fingerprint no other test uses. */
export function newMachine(): string {
  return fingerprint(randomBytes(16).toString('hex'));
}
