import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AppError } from '../errors.js';
import { errorResponses, License } from '../licenses/schemas.js';
import { inTransaction, licenses } from '../licenses/repository.js';
import { licenseView } from '../licenses/service.js';
import { customers } from './customers.js';
import { issuePermanentLicense } from '../licenses/issue-license.js';
import { revokeLicense } from './revoke-license.js';

const Customer = Type.Object(
  {
    type: Type.Union([Type.Literal('business'), Type.Literal('individual')]),
    name: Type.String({ minLength: 1, maxLength: 200 }),
    organization: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    address: Type.String({ minLength: 1, maxLength: 500 }),
    country: Type.String({ pattern: '^[A-Z]{2}$', description: 'ISO 3166-1 alpha-2' }),
  },
  { additionalProperties: false },
);

const NewLicense = Type.Object(
  {
    kind: Type.Literal('permanent'),
    seats: Type.Integer({ minimum: 1, maximum: 100_000 }),
    email: Type.Optional(Type.String({ format: 'email', maxLength: 254 })),
    customer: Type.Optional(Customer),
  },
  { additionalProperties: false },
);

const IssuedLicense = Type.Object({
  license: Type.Intersect([License, Type.Object({ key: Type.String({ description: 'shown once: only its digest is kept' }), customerId: Type.Union([Type.Integer(), Type.Null()]) })]),
});

/** Staff calls, behind ADMIN_TOKEN: record a sale (issue a key), revoke a license. */
const adminRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.addHook('onRequest', app.requireAdmin);

  app.post('/v1/admin/licenses', {
    schema: {
      tags: ['admin'],
      summary: 'Issue a permanent license (a sale recorded by staff); the key is in this answer only',
      security: [{ adminToken: [] }],
      body: NewLicense,
      response: { 201: IssuedLicense, ...errorResponses({ body: true }, 401) },
    },
  }, async (request, reply) => {
    const { seats, email, customer } = request.body;
    const now = new Date();
    const { id, key } = await inTransaction(app.db, async (tx) => {
      const customerId = customer ? await customers.insert(tx, { ...customer, email: email ?? null }, now) : null;
      return issuePermanentLicense(tx, { seats, email: email ?? null, customerId, now });
    });
    const row = (await licenses.byId(app.db, id))!;
    request.log.info({ licenseId: id, seats }, 'license issued');
    return reply.code(201).send({ license: { ...licenseView(row), key, customerId: row.customer_id } });
  });

  app.post('/v1/admin/licenses/:id/revoke', {
    schema: {
      tags: ['admin'],
      summary: 'Revoke a license: every machine loses it at its next validation',
      security: [{ adminToken: [] }],
      params: Type.Object({ id: Type.Integer({ minimum: 1 }) }),
      response: { 200: Type.Object({ license: License }, { description: 'Revoked (or already revoked)' }), ...errorResponses({}, 401, 404) },
    },
  }, async (request) => {
    const row = await revokeLicense(app, request.params.id);
    if (!row) throw new AppError('LICENSE_NOT_FOUND', 404, `no license ${request.params.id}`);
    request.log.info({ licenseId: row.id }, 'license revoked');
    return { license: licenseView(row) };
  });
};

export default adminRoutes;
