import { createHmac } from 'node:crypto';

/**
 * The product constant keyed into the fingerprint. Changing it changes every machine's
 * fingerprint, and with it every trial's identity: never change it.
 */
const FINGERPRINT_KEY = 'ferry/machine-fingerprint/v1';

export const FINGERPRINT_PATTERN = '^[0-9a-f]{64}$';
const FINGERPRINT_RE = new RegExp(FINGERPRINT_PATTERN);

/** HMAC-SHA256 of the OS machine id: 64 hex characters. The raw id never leaves the machine. */
export function fingerprint(machineId: string): string {
  if (machineId.trim() === '') throw new Error('machine id is empty');
  return createHmac('sha256', FINGERPRINT_KEY).update(machineId.trim()).digest('hex');
}

export function isFingerprint(text: string): boolean {
  return FINGERPRINT_RE.test(text);
}
