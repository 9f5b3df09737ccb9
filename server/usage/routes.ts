import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { PoolConnection } from 'mysql2/promise';
import { Type } from 'typebox';
import {
  CHAIN_HASH_PATTERN, CHAIN_SIGNATURE_PATTERN, ed25519PublicKey, USAGE_BATCH_MAX, USAGE_KINDS, verifyUsageSignature,
  type ChainedUse, type UsageKind,
} from '../../licensing/index.js';
import { AppError } from '../errors.js';
import { activations, inTransaction, licenseEvents } from '../licenses/repository.js';
import { BearerHeaders, errorResponses } from '../licenses/schemas.js';
import { bearerToken } from '../licenses/service.js';
import { judgeChain, lockChain, type ChainFinding, type JudgedEvent } from './chain.js';
import { checkEventTime } from './event-time.js';
import { usageEvents, type ChainFields, type UsageEventRow } from './repository.js';

const UsageEvent = Type.Object(
  {
    at: Type.String({ format: 'date-time', description: 'when the command ran, as the agent\'s clock said' }),
    locale: Type.String({ maxLength: 35, pattern: '^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$' }),
    kind: Type.Unsafe<UsageKind>({ type: 'string', enum: [...USAGE_KINDS], description: 'the kind of command, never its arguments' }),
    counter: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'signed events: 1, 2, 3… per activation and device key' })),
    prev: Type.Optional(Type.String({ pattern: CHAIN_HASH_PATTERN, description: 'signed events: SHA-256 (base64url) of the previous event\'s canonical bytes, or the genesis value' })),
    sig: Type.Optional(Type.String({ pattern: CHAIN_SIGNATURE_PATTERN, description: 'signed events: Ed25519 signature (base64url) of the canonical bytes by the device key' })),
  },
  {
    additionalProperties: false,
    // All three or none: an event is signed and chained, or (agents from before device keys) neither.
    dependencies: { counter: ['prev', 'sig'], prev: ['counter', 'sig'], sig: ['counter', 'prev'] },
  },
);

const UsageBatch = Type.Object(
  { events: Type.Array(UsageEvent, { minItems: 1, maxItems: USAGE_BATCH_MAX }) },
  { additionalProperties: false },
);

type Refusal = { index: number; code: string; message: string };

function isSigned(event: { counter?: number }): event is ChainedUse {
  return event.counter !== undefined;
}

/** Software reporting during a trial: what the agent was used for, and from where (the IP seen here). */
const usageRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/v1/usage', {
    schema: {
      tags: ['agent'],
      summary: `Report usage events of a trial (at most ${USAGE_BATCH_MAX} a batch; a resent event is stored once)`,
      description: 'An activation with a device key sends signed, hash-chained events (counter, prev, sig; see the README); '
        + 'each is checked against the key and the chain, and what is wrong is recorded as a piracy signal. '
        + 'An activation without one (an agent from before device keys) sends unsigned events, stored as unsigned.',
      security: [{ licenseToken: [] }],
      headers: BearerHeaders,
      body: UsageBatch,
      response: {
        202: Type.Object({
          accepted: Type.Integer(),
          duplicates: Type.Integer(),
          rejected: Type.Integer({ description: 'events refused (for their time, signature or place in the chain), never stored' }),
          refusals: Type.Array(Type.Object({ index: Type.Integer(), code: Type.String(), message: Type.String() })),
        }, { description: 'Stored: how many were new, how many had been sent before, and which were refused and why' }),
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
    const activationId = claims.aid;
    const deviceKey = await activations.deviceKey(app.db, activationId);
    const publicKey = deviceKey === null ? null : ed25519PublicKey(deviceKey);
    const row = (event: { at: string; kind: string; locale: string }, at: Date): UsageEventRow => ({
      activationId, licenseId: Number(claims.sub), fingerprint: claims.fp, occurredAt: at, kind: event.kind, locale: event.locale, ip: request.ip,
    });

    const refusals: Refusal[] = [];
    const findings: ChainFinding[] = [];
    const refuse = (index: number, code: string, message: string, finding?: ChainFinding) => {
      refusals.push({ index, code, message });
      if (finding) findings.push(finding);
    };
    const unsigned: UsageEventRow[] = [];
    const signed: (JudgedEvent & { index: number })[] = [];
    request.body.events.forEach((event, index) => {
      // The signature first: the time of an event nobody signed says nothing about this machine.
      if (publicKey !== null) {
        if (!isSigned(event)) {
          return refuse(index, 'USAGE_UNSIGNED', 'this activation has a device key: its events must be signed',
            { signal: 'usage_forged', message: `an unsigned event (${event.kind} at ${event.at}) for an activation with a device key` });
        }
        if (!verifyUsageSignature(publicKey, activationId, event)) {
          return refuse(index, 'USAGE_SIGNATURE_INVALID', `event ${event.counter}: the signature does not verify with this activation's device key`,
            { signal: 'usage_forged', message: `event ${event.counter}: the signature does not verify with the activation's device key` });
        }
      }
      const time = checkEventTime(event.at, license.created_at, receivedAt);
      if ('refused' in time) {
        const dated = time.refused.code === 'EVENT_BEFORE_TRIAL' ? { signal: 'usage_before_trial' as const, message: time.refused.message } : undefined;
        return refuse(index, time.refused.code, time.refused.message, dated);
      }
      // Without a device key on the server there is nothing to check a signature against: stored as unsigned.
      if (publicKey !== null && isSigned(event)) signed.push({ index, event, at: time.at });
      else unsigned.push(row(event, time.at));
    });

    // One transaction: the chain's lock, its events and what was found are stored together. (Run
    // again whole when InnoDB picks it as a deadlock victim: nothing in it may add up across runs.)
    const stored = await inTransaction(app.db, async (tx) => {
      const plain = await usageEvents.insertBatch(tx, unsigned, receivedAt);
      const chained = signed.length > 0 ? await storeSigned(tx, deviceKey!, signed) : { stored: 0, duplicates: 0, refusals: [], findings: [] };
      for (const finding of [...findings, ...chained.findings]) {
        await licenseEvents.record(tx, Number(claims.sub), finding.signal, claims.fp, request.ip, receivedAt, finding.message);
      }
      return { accepted: plain + chained.stored, duplicates: unsigned.length - plain + chained.duplicates, refusals: chained.refusals };
    });

    const all = [...refusals, ...stored.refusals].sort((a, b) => a.index - b.index);
    if (all.length === request.body.events.length) {
      // Nothing of this batch can ever be stored: 400, so that the agent drops it rather than resending it.
      const first = all[0]!;
      throw new AppError(first.code, 400, `no event of this batch can be stored: ${first.message}`);
    }
    return reply.code(202).send({ accepted: stored.accepted, duplicates: stored.duplicates, rejected: all.length, refusals: all });

    /** Judges the signed events against their chain (locked) and stores those it takes. */
    async function storeSigned(tx: PoolConnection, key: Buffer, events: (JudgedEvent & { index: number })[]) {
      const chain = await lockChain(tx, activationId, key);
      const verdicts = await judgeChain(tx, chain, activationId, key, events);
      const rows: (UsageEventRow & ChainFields)[] = [];
      const chainRefusals: Refusal[] = [];
      const chainFindings: ChainFinding[] = [];
      let duplicates = 0;
      verdicts.forEach((verdict, i) => {
        const { index, event, at } = events[i]!;
        if (verdict.outcome === 'duplicate') {
          duplicates++;
        } else if (verdict.outcome === 'refuse') {
          chainRefusals.push({ index, code: verdict.code, message: verdict.finding.message });
          chainFindings.push(verdict.finding);
        } else {
          chainFindings.push(...verdict.findings);
          rows.push({
            ...row(event, at), chainId: chain.id, counter: event.counter,
            prevHash: Buffer.from(event.prev, 'base64url'), hash: verdict.hash, signature: Buffer.from(event.sig, 'base64url'),
          });
        }
      });
      return { stored: await usageEvents.insertSigned(tx, rows, receivedAt), duplicates, refusals: chainRefusals, findings: chainFindings };
    }
  });
};

export default usageRoutes;
