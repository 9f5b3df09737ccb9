import { issueToken, leaseEnd, type SigningKey } from '../licensing/index.js';
import { activationOf, type Seeded } from './seed.js';

/**
 * License tokens for seeded activations, signed with the server's own active key: exactly what the
 * server would have answered those machines at their last activation or validation.
 */

export interface TokenCase {
  token: string;
  fingerprint: string;
  kind: 'trial' | 'permanent';
}

/** `n` distinct activations chosen at random, in random order, each with its token. */
export function signTokens(seeded: Seeded, key: SigningKey, n: number, now = Date.now()): TokenCase[] {
  const total = seeded.activationLicense.length - 1;
  if (n > total) throw new Error(`asked for ${n} tokens, only ${total} activations are seeded`);
  // Partial Fisher-Yates over activation ids 1..total.
  const ids = new Uint32Array(total);
  for (let i = 0; i < total; i++) ids[i] = i + 1;
  const cases: TokenCase[] = [];
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(Math.random() * (total - i));
    const id = ids[j]!;
    ids[j] = ids[i]!;
    ids[i] = id;
    const a = activationOf(seeded, id);
    const token = issueToken(
      {
        licenseId: a.licenseId,
        activationId: a.activationId,
        fingerprint: a.fingerprint,
        kind: a.kind,
        leaseEndsAt: leaseEnd(a.kind, now, a.licenseExpiresAt),
        licenseExpiresAt: a.licenseExpiresAt,
        now,
      },
      key,
    );
    cases.push({ token, fingerprint: a.fingerprint, kind: a.kind });
  }
  return cases;
}
