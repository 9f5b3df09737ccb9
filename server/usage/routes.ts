import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { USAGE_BATCH_MAX, USAGE_KINDS, type UsageKind } from '../../licensing/index.js';
import { AppError } from '../errors.js';
import { BearerHeaders, errorResponses } from '../licenses/schemas.js';
import { bearerToken } from '../licenses/service.js';
import { usageEvents } from './repository.js';

/** How far an event's time may lie ahead of the server's clock before it is refused as bogus. */
const MAX_CLOCK_AHEAD_MS = 24 * 3_600_000;

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
        202: Type.Object({ accepted: Type.Integer(), duplicates: Type.Integer() }, { description: 'Stored: how many were new, how many had been sent before' }),
        ...errorResponses({ body: true }, 401, 403),
      },
    },
  }, async (request, reply) => {
    const receivedAt = new Date();
    const claims = app.licenses.verifyPresented(bearerToken(request.headers.authorization), receivedAt);
    if (claims.kind !== 'trial') {
      throw new AppError('NOT_A_TRIAL', 403, 'usage is reported only during a trial; permanent licenses send nothing');
    }
    const events = request.body.events.map((event) => {
      const occurredAt = new Date(event.at);
      if (occurredAt.getTime() > receivedAt.getTime() + MAX_CLOCK_AHEAD_MS) {
        throw new AppError('EVENT_IN_FUTURE', 400, `an event is dated ${event.at}, more than a day ahead of the server`);
      }
      return {
        activationId: claims.aid, licenseId: Number(claims.sub), fingerprint: claims.fp,
        occurredAt, kind: event.kind, locale: event.locale, ip: request.ip,
      };
    });
    const accepted = await usageEvents.insertBatch(app.db, events, receivedAt);
    return reply.code(202).send({ accepted, duplicates: events.length - accepted });
  });
};

export default usageRoutes;
