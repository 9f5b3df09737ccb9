import fp from 'fastify-plugin';
import { createLastSeenRecorder, type LastSeenRecorder } from './last-seen.js';
import { createLicenseService, type LicenseService } from './service.js';

declare module 'fastify' {
  interface FastifyInstance {
    licenses: LicenseService;
    lastSeen: LastSeenRecorder;
  }
}

export default fp(
  async (app) => {
    const lastSeen = createLastSeenRecorder(app.db, (err) => app.log.warn({ err: err.message }, 'could not record last-seen times'));
    // Before the pool closes (hooks run in reverse order of registration: mysql's runs after this).
    app.addHook('onClose', () => lastSeen.close());
    app.decorate('lastSeen', lastSeen);
    app.decorate(
      'licenses',
      createLicenseService({
        db: app.db,
        signingKey: app.signingKeys.active,
        certificate: app.signingKeys.certificates.get(app.signingKeys.active.kid)!,
        keyring: app.keyring,
        trialLengthMs: app.config.trialLengthMs,
        lastSeen,
      }),
    );
  },
  { name: 'license-service', dependencies: ['config', 'mysql', 'signing-keys'] },
);
