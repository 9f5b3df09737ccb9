import { signTime, type SignedStatement, type SigningKey } from '../../licensing/index.js';

/**
 * The time beacon: this server's time, signed with its signing key, that every `POST /v1/validate`
 * answer carries (`time`), so that an agent learns a time it can trust from a check-in that renews
 * nothing (a renewed token has its own signed `iat`).
 *
 * Signing each answer would cost what check-ins were made cheap to avoid, so one statement is
 * signed at most once per `reuseMs` and handed to every answer until then: one ECDSA signature a
 * second per process, whatever the traffic. Reusing it is safe because a signed time only claims
 * "the server's clock had passed t" (see licensing/trusted-time.ts): an answer's time is at most
 * `reuseMs` behind the server's clock, which only ever makes the agent's trusted time lower, never
 * later than it really is.
 */
export interface TimeBeacon {
  current(): SignedStatement;
}

export function createTimeBeacon(
  key: Pick<SigningKey, 'kid' | 'privateKey'>,
  options: { reuseMs?: number; now?: () => number } = {},
): TimeBeacon {
  const reuseMs = options.reuseMs ?? 1_000;
  const now = options.now ?? Date.now;
  let signedAt = Number.NEGATIVE_INFINITY;
  let statement: SignedStatement | null = null;
  return {
    current() {
      const t = now();
      // A clock stepped back (NTP) signs afresh rather than keep a time from ahead of it.
      if (statement === null || t - signedAt >= reuseMs || t < signedAt) {
        statement = signTime(key, t);
        signedAt = t;
      }
      return statement;
    },
  };
}
