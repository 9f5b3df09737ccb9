import { Redis } from 'ioredis';
import type { ActivationState } from './activation-state.js';

/**
 * Changes to licenses and activations, told to every server through Redis pub/sub, so that each
 * drops what its activation state holds of them and reads it again. The server that makes a change
 * drops its own at once, whether or not Redis takes the message; the others drop theirs when it
 * arrives. A message lost (Redis away, a server crashed between its commit and the publish) is made
 * up for by the state's catch-up (activation-state.ts).
 */

export type LicenseChange = { license: number } | { activation: number };

export interface LicenseChanges {
  /** A license changed (revoked, suspended, cancelled, seats, kind): every server forgets its activations. */
  licenseChanged(licenseId: number): Promise<void>;
  /** One activation changed (deactivated, activated again). */
  activationChanged(activationId: number): Promise<void>;
  close(): Promise<void>;
}

export function changesChannel(redisPrefix: string): string {
  return `${redisPrefix}:license-changes`;
}

function parseChange(message: string): LicenseChange | null {
  try {
    const change = JSON.parse(message) as Record<string, unknown>;
    if (Number.isSafeInteger(change.license)) return { license: change.license as number };
    if (Number.isSafeInteger(change.activation)) return { activation: change.activation as number };
  } catch {
    // Not ours: ignored.
  }
  return null;
}

export interface LicenseChangesDeps {
  state: Pick<ActivationState, 'forgetLicense' | 'forgetActivation' | 'licenseChanged' | 'activationChanged' | 'catchUp'>;
  /** The request-path client: publishing fails at once while Redis is away. */
  publisher: Pick<Redis, 'publish'>;
  redisUrl: string;
  redisPrefix: string;
  onError: (err: Error, what: string) => void;
}

export function createLicenseChanges({ state, publisher, redisUrl, redisPrefix, onError }: LicenseChangesDeps): LicenseChanges {
  const channel = changesChannel(redisPrefix);
  // A connection of its own: a subscribed connection can do nothing else. It queues the SUBSCRIBE
  // until Redis is there, and ioredis subscribes again after every reconnect.
  const subscriber = new Redis(redisUrl, {
    connectionName: 'ferry-server-license-changes',
    maxRetriesPerRequest: null,
    retryStrategy: (attempt) => Math.min(attempt * 250, 2_000),
  });
  subscriber.on('error', () => {});
  let readyBefore = false;
  subscriber.on('ready', () => {
    // Back after an outage: whatever was published meanwhile never arrived here. The periodic
    // catch-up would see it within its period; this sees it now.
    if (readyBefore) state.catchUp().catch((err: Error) => onError(err, 'catch up with license changes'));
    readyBefore = true;
  });
  subscriber.subscribe(channel).catch((err: Error) => onError(err, 'subscribe to license changes'));
  subscriber.on('message', (from: string, message: string) => {
    if (from !== channel) return;
    const change = parseChange(message);
    if (change && 'license' in change) state.licenseChanged(change.license);
    else if (change) state.activationChanged(change.activation);
  });

  const publish = async (change: LicenseChange) => {
    try {
      await publisher.publish(channel, JSON.stringify(change));
    } catch (err) {
      // The other servers see the change at their next catch-up.
      onError(err as Error, 'publish a license change');
    }
  };

  return {
    async licenseChanged(licenseId) {
      state.forgetLicense(licenseId);
      await publish({ license: licenseId });
    },
    async activationChanged(activationId) {
      state.forgetActivation(activationId);
      await publish({ activation: activationId });
    },
    async close() {
      subscriber.disconnect();
    },
  };
}
