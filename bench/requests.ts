import type { RequestSpec } from './load.js';
import { randomFingerprints } from './seed.js';
import type { TokenCase } from './tokens.js';

/** What each scenario sends: one request at a time, each different from the one before. */

/** Check-ins (validations as agents with check-ins send them) of seeded activations, round-robin over the token pool. */
export function validateRequests(tokens: readonly TokenCase[]): { next: () => RequestSpec; sent: () => number } {
  const specs: RequestSpec[] = tokens.map((t) => ({
    headers: { authorization: `Bearer ${t.token}` },
    body: JSON.stringify({ fingerprint: t.fingerprint, checkIn: true }),
  }));
  let i = 0;
  return {
    next: () => specs[i++ % specs.length]!,
    sent: () => i,
  };
}

/** Fresh machine fingerprints, never the same twice. */
function fingerprintStream(): () => string {
  let batch: string[] = [];
  let i = 0;
  return () => {
    if (i === batch.length) {
      batch = randomFingerprints(10_000);
      i = 0;
    }
    return batch[i++]!;
  };
}

const AGENT = { platform: 'linux-x64', agentVersion: '0.1.0', locale: 'en-US' };

/** New machines activating the pool's permanent licenses, round-robin over the licenses. */
export function activationRequests(keys: readonly string[]): () => RequestSpec {
  const fingerprint = fingerprintStream();
  let i = 0;
  return () => ({
    headers: {},
    body: JSON.stringify({ key: keys[i++ % keys.length], fingerprint: fingerprint(), ...AGENT }),
  });
}

/** New machines starting a trial. */
export function trialRequests(): () => RequestSpec {
  const fingerprint = fingerprintStream();
  return () => ({ headers: {}, body: JSON.stringify({ fingerprint: fingerprint(), ...AGENT }) });
}
