import fp from 'fastify-plugin';
import { createLicenseService, type LicenseService } from './service.js';

declare module 'fastify' {
  interface FastifyInstance {
    licenses: LicenseService;
  }
}

export default fp(
  async (app) => {
    app.decorate(
      'licenses',
      createLicenseService({
        db: app.db,
        signingKey: app.signingKeys.active,
        keyring: app.keyring,
        trialLengthMs: app.config.trialLengthMs,
      }),
    );
  },
  { name: 'license-service', dependencies: ['config', 'mysql', 'signing-keys'] },
);
