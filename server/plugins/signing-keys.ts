import fp from 'fastify-plugin';
import { Keyring } from '../../licensing/index.js';
import { loadKeySet, type KeySet } from '../keys/store.js';

declare module 'fastify' {
  interface FastifyInstance {
    signingKeys: KeySet;
    keyring: Keyring;
  }
}

export default fp(
  async (app) => {
    const { keys, generated } = await loadKeySet(app.config.dataDir);
    if (generated) app.log.info({ kid: keys.active.kid }, 'generated the first license signing key');
    app.decorate('signingKeys', keys);
    app.decorate('keyring', new Keyring(keys.verifying));
  },
  { name: 'signing-keys', dependencies: ['config'] },
);
