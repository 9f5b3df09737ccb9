import fp from 'fastify-plugin';
import { createActivationState, type ActivationState } from './activation-state.js';
import { createLastSeenRecorder, type LastSeenRecorder } from './last-seen.js';
import { createLicenseChanges } from './license-changes.js';
import { createLicenseService, type LicenseService } from './service.js';
import { createRebinds, type Rebinds } from './rebind.js';
import { createVelocity } from './velocity.js';

declare module 'fastify' {
  interface FastifyInstance {
    licenses: LicenseService;
    lastSeen: LastSeenRecorder;
    activationState: ActivationState;
    rebinds: Rebinds;
  }
}

/**
 * How far back each look goes before the previous one: longer than any write transaction on
 * licenses and activations lasts between its statement and its commit (they take milliseconds).
 */
const CATCH_UP_OVERLAP_MS = 10_000;
/**
 * How long what a server holds is used after the last catch-up that worked began (MariaDB away),
 * in catch-up periods (LICENSE_CATCH_UP_EVERY, 5 s by default: 15 s); then every validation reads
 * MariaDB, and fails as it does.
 */
const STALE_AFTER_PERIODS = 3;

export default fp(
  async (app) => {
    let closing = false;
    const lastSeen = createLastSeenRecorder(app.db, (err) => app.log.warn({ err: err.message }, 'could not record last-seen times'));
    // Before the pool closes (hooks run in reverse order of registration: mysql's runs after this).
    app.addHook('onClose', () => lastSeen.close());
    app.decorate('lastSeen', lastSeen);
    // How late a server sees a change whose message never reached it (Redis away).
    const catchUpEveryMs = app.config.licenseCatchUpMs;
    const state = createActivationState(app.db, {
      catchUpEveryMs,
      overlapMs: CATCH_UP_OVERLAP_MS,
      maxStaleMs: STALE_AFTER_PERIODS * catchUpEveryMs,
      onError: (err, what) => {
        if (!closing) app.log.warn({ err: err.message }, `could not ${what}; validations read MariaDB meanwhile when it is stale`);
      },
    });
    app.decorate('activationState', state);
    // Not awaited: until the load is done, validations read MariaDB, as for any activation not held.
    app.addHook('onReady', async () => {
      void state.start();
    });
    app.addHook('onClose', async () => {
      closing = true;
      state.close();
    });
    const changes = createLicenseChanges({
      state,
      publisher: app.redis,
      redisUrl: app.config.redisUrl,
      redisPrefix: app.config.redisPrefix,
      onError: (err, what) => app.log.warn({ err: err.message }, `could not ${what}; other servers see it within ${catchUpEveryMs / 1000} s`),
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
      state,
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
