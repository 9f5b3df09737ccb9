import fp from 'fastify-plugin';
import { Keyring } from '../../licensing/index.js';
import { prepareSigningKeys, type TrustRoot } from '../keys/setup.js';
import type { KeySet } from '../keys/store.js';

declare module 'fastify' {
  interface FastifyInstance {
    signingKeys: KeySet;
    keyring: Keyring;
    /** The deployment's root public key, which certifies the signing keys. */
    trustRoot: TrustRoot;
  }
}

export default fp(
  async (app) => {
    const { keys, root } = await prepareSigningKeys(app.config.dataDir, app.config.rootKeyFile, app.log);
    app.decorate('signingKeys', keys);
    app.decorate('keyring', new Keyring(keys.verifying));
    app.decorate('trustRoot', root);
  },
  { name: 'signing-keys', dependencies: ['config'] },
);
