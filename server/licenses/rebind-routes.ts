import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ActivationParams, BearerHeaders, errorResponses, RebindChallenge, RebindRequest, Rebound } from './schemas.js';
import { bearerToken } from './service.js';
import { latestVersion } from '../releases/store.js';

/** A machine whose id changed moves its activation to its new fingerprint (see rebind.ts): a challenge, then the signed move. */
const rebindRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/v1/activations/:id/rebind-challenge', {
    schema: {
      tags: ['agent'],
      summary: 'A challenge for moving this activation to a new machine id (sign it with the device key)',
      security: [{ licenseToken: [] }],
      headers: BearerHeaders,
      params: ActivationParams,
      // No body is needed, but a POST parses whatever comes: one of another type is 413/415.
      response: { 200: RebindChallenge, ...errorResponses({ body: true }, 401, 403, 404, 429) },
    },
    config: { needs: ['mysql', 'redis'] },
    onRequest: app.limitActivations,
  }, async (request) => app.rebinds.challenge(bearerToken(request.headers.authorization), request.params.id));

  app.post('/v1/activations/:id/rebind', {
    schema: {
      tags: ['agent'],
      summary: "Move this activation to this machine's new fingerprint (its id changed): keeps the seat, within the license's yearly budget",
      description: "Authorization: the activation's last token, of any age. The body is signed by the device key the activation was made with, "
        + 'over a challenge from rebind-challenge, which counts once. Refusals are recorded, with their reason, for staff.',
      security: [{ licenseToken: [] }],
      headers: BearerHeaders,
      params: ActivationParams,
      body: RebindRequest,
      response: { 200: Rebound, ...errorResponses({ body: true }, 401, 403, 404, 409, 429) },
    },
    config: { needs: ['mysql', 'redis'] },
    onRequest: app.limitActivations,
  }, async (request) => {
    const rebound = await app.rebinds.rebind(bearerToken(request.headers.authorization), request.params.id, request.body, request.ip);
    return { ...rebound, latestVersion: (await latestVersion(app.db).catch(() => null)) ?? undefined };
  });
};

export default rebindRoutes;
