import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import {
  ActivationParams, ActivationRequest, BearerHeaders, errorResponses, Licensed, TrialRequest, Validated, ValidateRequest,
} from './schemas.js';
import type { SignedStatement } from '../../licensing/index.js';
import { bearerToken } from './service.js';
import { createTimeBeacon } from './trusted-time.js';
import { planReminders } from '../jobs/reminders.js';
import { cachedLatestVersion, latestVersion } from '../releases/store.js';

let latestJson = { version: null as string | null, json: '' };
/** The signed time as JSON, made once per statement (the beacon re-signs once a second). */
let timeJson = { statement: null as SignedStatement | null, json: '' };

/**
 * The answer of a check-in that changes nothing, the most common call of all, serialised by hand:
 * exactly what the Validated schema says (no token, no certificate), field by field. Kinds and
 * statuses are the schema's literals, times ISO 8601, ids and seats integers: nothing to escape;
 * the two free strings go through JSON.stringify. Answers with a token go through Fastify's
 * serializer as usual.
 */
function checkInJson({ license: l, checkedAt }: Validated, latest: string | null, time: SignedStatement): string {
  if (latest !== latestJson.version) latestJson = { version: latest, json: latest === null ? '' : `,"latestVersion":${JSON.stringify(latest)}` };
  if (time !== timeJson.statement) timeJson = { statement: time, json: `,"time":${JSON.stringify({ payload: time.payload, signature: time.signature })}` };
  let license = `{"id":${l.id},"kind":"${l.kind}","status":"${l.status}","seats":${l.seats},`
    + `"expiresAt":${l.expiresAt === null ? 'null' : `"${l.expiresAt}"`},"createdAt":"${l.createdAt}"`;
  if (l.claimCode !== undefined) license += `,"claimCode":${JSON.stringify(l.claimCode)}`;
  if (l.keyHint !== undefined) license += `,"keyHint":${JSON.stringify(l.keyHint)}`;
  return `{"valid":true,"license":${license}},"checkedAt":"${checkedAt}"${timeJson.json}${latestJson.json}}`;
}

/** The agent's calls: start a trial, activate a key, renew the lease, give a seat back. */
const licenseRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // Every answer that licenses a machine names the newest release; a failure to look it up never fails the call.
  const latest = async () => ({ latestVersion: (await latestVersion(app.db).catch(() => null)) ?? undefined });
  // The signed time of every validation answer: one signature a second, not one per answer.
  const beacon = createTimeBeacon(app.signingKeys.active);

  app.post('/v1/trials', {
    schema: {
      tags: ['agent'],
      summary: 'Start the trial of this machine, or get the one it already has (with its activation secret)',
      description: 'A machine asking again must send the activationSecret its trial started with; otherwise 409 TRIAL_EXISTS, '
        + 'with no token and nothing changed. A trial started without a secret takes the secret of the first request '
        + 'that also sends one of its tokens as `Authorization: Bearer`.',
      headers: BearerHeaders,
      body: TrialRequest,
      response: { 200: Licensed, 201: Licensed, ...errorResponses({ body: true }, 403, 409, 429) },
    },
    config: { needs: ['mysql', 'redis'] },
    onRequest: app.limitActivations,
  }, async (request, reply) => {
    const { authorization } = request.headers;
    const token = authorization === undefined ? undefined : bearerToken(authorization);
    const { created, result } = await app.licenses.startTrial(request.body, request.ip, token);
    if (request.body.email !== undefined && result.license.expiresAt) {
      // Not awaited: the reminder sweep plans whatever this misses (say, Redis away this moment).
      planReminders(app.jobs, { licenseId: result.license.id, expiresAt: new Date(result.license.expiresAt) })
        .catch((err: Error) => request.log.warn({ err: err.message }, 'reminders not planned now; the sweep will'));
    }
    return reply.code(created ? 201 : 200).send({ ...result, ...(await latest()) });
  });

  app.post('/v1/activations', {
    schema: {
      tags: ['agent'],
      summary: 'Activate a license key on this machine (takes a seat)',
      body: ActivationRequest,
      response: { 200: Licensed, 201: Licensed, ...errorResponses({ body: true }, 403, 404, 409, 429) },
    },
    config: { needs: ['mysql', 'redis'] },
    onRequest: app.limitActivations,
  }, async (request, reply) => {
    const { created, result } = await app.licenses.activate(request.body, request.ip);
    return reply.code(created ? 201 : 200).send({ ...result, ...(await latest()) });
  });

  app.post('/v1/validate', {
    schema: {
      tags: ['agent'],
      summary: 'Check in: check the license now; a renewed lease token when it is due',
      description: 'With `checkIn: true`, the answer carries `token` and `certificate` only when the lease is past its renewal '
        + 'point, the token presented is not the last one issued to this activation or not under the current signing key, '
        + 'or the license changed; otherwise the agent keeps its token. Without it (agents from before check-ins), always a new token. '
        + 'Every answer carries `time`: the server\'s time, signed with its current signing key (re-signed once a second).',
      security: [{ licenseToken: [] }],
      headers: BearerHeaders,
      body: Type.Optional(ValidateRequest),
      response: { 200: Validated, ...errorResponses({ body: true }, 401, 403) },
    },
  }, (request, reply) => {
    // Not an async handler: a check-in answered from memory is sent with nothing awaited.
    const send = (answer: Validated, latest: string | null): void => {
      const time = beacon.current();
      if (answer.token !== undefined) {
        void reply.send({ ...answer, time, latestVersion: latest ?? undefined });
        return;
      }
      // A string with a JSON type goes out as it is (Fastify runs no serializer on it).
      void reply.type('application/json; charset=utf-8').send(checkInJson(answer, latest, time) as unknown as Validated);
    };
    const withLatest = (answer: Validated) => {
      const latest = cachedLatestVersion(app.db);
      return latest !== undefined ? send(answer, latest) : latestVersion(app.db).catch(() => null).then((version) => send(answer, version));
    };
    const answer = app.licenses.validate(
      bearerToken(request.headers.authorization),
      request.body?.fingerprint,
      request.ip,
      request.body?.checkIn === true,
    );
    return answer instanceof Promise ? answer.then(withLatest) : withLatest(answer);
  });

  app.delete('/v1/activations/:id', {
    schema: {
      tags: ['agent'],
      summary: 'Deactivate this machine: its seat is free again',
      security: [{ licenseToken: [] }],
      headers: BearerHeaders,
      params: ActivationParams,
      response: { 204: Type.Null({ description: 'Deactivated' }), ...errorResponses({}, 401, 403, 404) },
    },
  }, async (request, reply) => {
    await app.licenses.deactivate(bearerToken(request.headers.authorization), request.params.id, request.ip);
    return reply.code(204).send(null);
  });
};

export default licenseRoutes;
