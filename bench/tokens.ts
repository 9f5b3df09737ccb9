import { createHash } from 'node:crypto';
import type { Pool } from 'mysql2/promise';
import { issueToken, leaseEnd, peekClaims, type SigningKey } from '../licensing/index.js';
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

/** Stores each token's SHA-256 on its activation, as the server does when it issues one. */
export async function storeTokenDigests(db: Pool, tokens: readonly TokenCase[]): Promise<void> {
  const BATCH = 5_000;
  const connection = await db.getConnection();
  try {
    await connection.query('CREATE TEMPORARY TABLE bench_token_digests (id INT UNSIGNED PRIMARY KEY, digest BINARY(32) NOT NULL)');
    for (let i = 0; i < tokens.length; i += BATCH) {
      const rows = tokens.slice(i, i + BATCH).map((t) => [peekClaims(t.token)!.aid, createHash('sha256').update(t.token).digest()]);
      await connection.query('INSERT INTO bench_token_digests (id, digest) VALUES ?', [rows]);
    }
    await connection.query('UPDATE activations a JOIN bench_token_digests d ON d.id = a.id SET a.token_digest = d.digest');
    await connection.query('DROP TEMPORARY TABLE bench_token_digests');
  } finally {
    connection.release();
  }
}
