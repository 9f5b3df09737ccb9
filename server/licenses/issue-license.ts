import type { Pool, PoolConnection } from 'mysql2/promise';
import { generateKey, keyDigest, keyHint } from '../../licensing/index.js';
import { isDuplicateKey, licenses } from './repository.js';

export interface PermanentLicenseRequest {
  seats: number;
  email: string | null;
  customerId: number | null;
  now: Date;
}

/**
 * Issues a permanent license: a new random key, of which only the digest and a hint are stored.
 * The key is in the answer only. Used by staff (`POST /v1/admin/licenses`) and by a completed order
 * in MyAccount, inside the caller's transaction.
 */
export async function issuePermanentLicense(db: Pool | PoolConnection, request: PermanentLicenseRequest): Promise<{ id: number; key: string }> {
  for (;;) {
    const key = generateKey();
    try {
      const id = await licenses.insertPermanent(db, { ...request, keyDigest: keyDigest(key), keyHint: keyHint(key) });
      return { id, key };
    } catch (err) {
      // 120 random bits: never, but never say never. A failed INSERT leaves the transaction usable.
      if (!isDuplicateKey(err, 'licenses_key')) throw err;
    }
  }
}
