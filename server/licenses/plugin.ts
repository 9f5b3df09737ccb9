import fp from 'fastify-plugin';
import { createActivationCache } from './activation-cache.js';
import { createLastSeenRecorder, type LastSeenRecorder } from './last-seen.js';
import { createLicenseChanges } from './license-changes.js';
import { createLicenseService, type LicenseService } from './service.js';
import { createRebinds, type Rebinds } from './rebind.js';
import { createVelocity } from './velocity.js';

declare module 'fastify' {
  interface FastifyInstance {
    licenses: LicenseService;
    lastSeen: LastSeenRecorder;
    rebinds: Rebinds;
  }
}

/**
 * How long a server may answer validations from an activation it read before, when no change
 * message reaches it (Redis away): the bound on how late a revocation can be seen.
 */
export const ACTIVATION_CACHE_TTL_MS = 30_000;
/** About 150 MB at most: more activations than any server sees within the TTL. */
const ACTIVATION_CACHE_MAX = 500_000;

export default fp(
  async (app) => {
    const lastSeen = createLastSeenRecorder(app.db, (err) => app.log.warn({ err: err.message }, 'could not record last-seen times'));
    // Before the pool closes (hooks run in reverse order of registration: mysql's runs after this).
    app.addHook('onClose', () => lastSeen.close());
    app.decorate('lastSeen', lastSeen);
    const cache = createActivationCache(app.db, { ttlMs: ACTIVATION_CACHE_TTL_MS, maxEntries: ACTIVATION_CACHE_MAX });
    const changes = createLicenseChanges({
      cache,
      publisher: app.redis,
      redisUrl: app.config.redisUrl,
      redisPrefix: app.config.redisPrefix,
      onError: (err, what) => app.log.warn({ err: err.message }, `could not ${what}; other servers see it within ${ACTIVATION_CACHE_TTL_MS / 1000} s`),
    });
    app.addHook('onClose', () => changes.close());
    const velocity = createVelocity({
      limits: app.config,
      redis: app.redis,
      redisPrefix: app.config.redisPrefix,
      secret: app.config.mailSecret,
    });
    const service = createLicenseService({
      db: app.db,
      signingKey: app.signingKeys.active,
      certificate: app.signingKeys.certificates.get(app.signingKeys.active.kid)!,
      keyring: app.keyring,
      trialLengthMs: app.config.trialLengthMs,
      lastSeen,
      cache,
      changes,
      velocity,
    });
    app.decorate('licenses', service);
    app.decorate('rebinds', createRebinds({
      db: app.db,
      redis: app.redis,
      redisPrefix: app.config.redisPrefix,
      keyring: app.keyring,
      defaultBudget: app.config.rebindBudget,
      changes,
      issue: service.issue,
    }));
  },
  { name: 'license-service', dependencies: ['config', 'mysql', 'redis', 'signing-keys'] },
);
