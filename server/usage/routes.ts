import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { USAGE_BATCH_MAX, USAGE_KINDS, type UsageKind } from '../../licensing/index.js';
import { AppError } from '../errors.js';
import { BearerHeaders, errorResponses } from '../licenses/schemas.js';
import { bearerToken } from '../licenses/service.js';
import { checkEventTime, type EventTimeRefusal } from './event-time.js';
import { usageEvents } from './repository.js';

const UsageEvent = Type.Object(
  {
    at: Type.String({ format: 'date-time', description: 'when the command ran, as the agent\'s clock said' }),
    locale: Type.String({ maxLength: 35, pattern: '^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$' }),
    kind: Type.Unsafe<UsageKind>({ type: 'string', enum: [...USAGE_KINDS], description: 'the kind of command, never its arguments' }),
  },
  { additionalProperties: false },
);

const UsageBatch = Type.Object(
  { events: Type.Array(UsageEvent, { minItems: 1, maxItems: USAGE_BATCH_MAX }) },
  { additionalProperties: false },
);

/** Software reporting during a trial: what the agent was used for, and from where (the IP seen here). */
const usageRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/v1/usage', {
    schema: {
      tags: ['agent'],
      summary: `Report usage events of a trial (at most ${USAGE_BATCH_MAX} a batch; a resent event is stored once)`,
      security: [{ licenseToken: [] }],
      headers: BearerHeaders,
      body: UsageBatch,
      response: {
        202: Type.Object({
          accepted: Type.Integer(),
          duplicates: Type.Integer(),
          rejected: Type.Integer({ description: 'events refused for their time, never stored' }),
          refusals: Type.Array(Type.Object({ index: Type.Integer(), code: Type.String(), message: Type.String() })),
        }, { description: 'Stored: how many were new, how many had been sent before, and which were refused for their time' }),
        ...errorResponses({ body: true }, 401, 403),
      },
    },
  }, async (request, reply) => {
    const receivedAt = new Date();
    // The same rule as /v1/validate: a deactivated machine or a revoked license reports nothing.
    const { claims, license } = await app.licenses.checkPresented(bearerToken(request.headers.authorization), receivedAt);
    if (claims.kind !== 'trial') {
      throw new AppError('NOT_A_TRIAL', 403, 'usage is reported only during a trial; permanent licenses send nothing');
    }
    const refusals: (EventTimeRefusal & { index: number })[] = [];
    const events = request.body.events.flatMap((event, index) => {
      const time = checkEventTime(event.at, license.created_at, receivedAt);
      if ('refused' in time) {
        refusals.push({ index, ...time.refused });
        return [];
      }
      return [{
        activationId: claims.aid, licenseId: Number(claims.sub), fingerprint: claims.fp,
        occurredAt: time.at, kind: event.kind, locale: event.locale, ip: request.ip,
      }];
    });
    if (events.length === 0) {
      const first = refusals[0]!;
      throw new AppError(first.code, 400, `no event of this batch can be stored: ${first.message}`);
    }
    const accepted = await usageEvents.insertBatch(app.db, events, receivedAt);
    return reply.code(202).send({ accepted, duplicates: events.length - accepted, rejected: refusals.length, refusals });
  });
};

export default usageRoutes;
