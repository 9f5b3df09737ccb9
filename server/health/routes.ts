import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { publicJwk } from '../../licensing/index.js';
import { RETRY_AFTER_UNAVAILABLE_SECONDS } from '../errors.js';

const Readiness = Type.Object({ ready: Type.Boolean(), mysql: Type.Boolean(), redis: Type.Boolean() });

const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/healthz', {
    schema: { tags: ['ops'], summary: 'Liveness: the process answers', response: { 200: Type.Object({ ok: Type.Boolean() }) } },
  }, async () => ({ ok: true }));

  app.get('/readyz', {
    schema: { tags: ['ops'], summary: 'Readiness: MySQL and Redis answer', response: { 200: Readiness, 503: Readiness } },
  }, async (_request, reply) => {
    const state = await app.dependencies.check();
    const ready = state.mysql && state.redis;
    if (!ready) reply.code(503).header('retry-after', String(RETRY_AFTER_UNAVAILABLE_SECONDS));
    return { ready, ...state };
  });

  // Published keys change only at a restart (rotation), so the answer is made once.
  const jwks = { keys: app.signingKeys.verifying.map(publicJwk) };
  app.get('/.well-known/jwks.json', {
    schema: {
      tags: ['agent'],
      summary: 'The public keys that verify license tokens',
      response: {
        200: Type.Object({
          keys: Type.Array(Type.Object({
            kty: Type.Literal('EC'), crv: Type.Literal('P-256'), x: Type.String(), y: Type.String(),
            kid: Type.String({ description: 'RFC 7638 thumbprint' }), alg: Type.Literal('ES256'), use: Type.Literal('sig'),
          })),
        }, { description: 'A JWK set (RFC 7517)' }),
      },
    },
  }, async (_request, reply) => {
    reply.header('cache-control', 'public, max-age=300');
    return jwks;
  });

  // The root and its certificate of every key that still verifies: what an agent needs to trust a
  // token offline. The root's public half is public; agents trust only the root they were built with.
  const ferryKeys = {
    root: app.trustRoot.pem,
    rootFingerprint: app.trustRoot.fingerprint,
    keys: [...app.signingKeys.certificates].map(([kid, certificate]) => ({ kid, certificate })),
  };
  app.get('/.well-known/ferry-keys.json', {
    schema: { tags: ['agent'], summary: "The deployment's root public key and its certificates of the signing keys" },
  }, async (_request, reply) => {
    reply.header('cache-control', 'public, max-age=300');
    return ferryKeys;
  });
};

export default healthRoutes;
