import type { FastifyInstance } from 'fastify';
import type { RowDataPacket } from 'mysql2/promise';
import { AppError } from '../../errors.js';
import { machineName, setSeats } from '../../licenses/seats.js';
import { Form } from '../forms.js';
import { formatAmount, MAX_SEATS, orders, PRICE_PER_SEAT } from '../orders.js';
import type { Portal } from '../plugin.js';
import { audit } from '../repository.js';

interface OwnLicense {
  id: number;
  seats: number;
  status: string;
  key_hint: string | null;
  in_use: number;
}

/**
 * Changing what was bought: more seats for a permanent license are an order, paid like any other;
 * fewer seats take effect at once (nothing is refunded here), but never below the machines in use.
 * The license keeps its key either way.
 */
export default async function seatRoutes(app: FastifyInstance, portal: Portal): Promise<void> {
  const signedIn = { config: { signedIn: true } };

  /** The customer's own active permanent license, or 404 whatever the reason. */
  const ownLicense = async (customerId: number, idText: string): Promise<OwnLicense> => {
    const id = Number(idText);
    const [rows] = Number.isSafeInteger(id) && id > 0
      ? await app.db.execute<RowDataPacket[]>(
        `SELECT l.id, l.seats, l.status, l.key_hint, (SELECT COUNT(*) FROM activations a WHERE a.license_id = l.id AND a.active) AS in_use
           FROM licenses l WHERE l.id = ? AND l.customer_id = ? AND l.kind = 'permanent' AND l.status = 'active'`,
        [id, customerId],
      )
      : [[]];
    const license = rows[0] as OwnLicense | undefined;
    if (!license) throw new AppError('LICENSE_NOT_FOUND', 404, 'You have no license with this number that can change its seats.');
    return { ...license, in_use: Number(license.in_use) };
  };

  const page = (license: OwnLicense, extra: Record<string, unknown> = {}) => ({
    title: `Seats of license ${license.id}`,
    license,
    price: formatAmount(PRICE_PER_SEAT.minor, PRICE_PER_SEAT.currency),
    values: { add: '1', remove: '1' },
    ...extra,
  });

  app.get<{ Params: { id: string } }>('/licenses/:id/seats', signedIn, async (request, reply) => {
    const license = await ownLicense(portal.account(request).id, request.params.id);
    return portal.render(request, reply, 'seats', page(license));
  });

  app.post<{ Params: { id: string } }>('/licenses/:id/seats/add', signedIn, async (request, reply) => {
    const account = portal.account(request);
    const license = await ownLicense(account.id, request.params.id);
    const form = new Form(request.body);
    const add = form.integer('add', 'the number of seats to add', 1, MAX_SEATS);
    if (!form.ok) return portal.render(request, reply, 'seats', page(license, { values: { add: form.text('add'), remove: '1' }, errors: form.errors }), 400);
    const now = new Date();
    const orderId = await orders.create(app.db, {
      customerId: account.id, seats: add, trialLicenseId: null, targetLicenseId: license.id, userAgent: request.headers['user-agent'],
    }, now);
    await audit.record(app.db, account.id, 'order.created', now);
    return reply.redirect(`/account/orders/${orderId}`, 303);
  });

  app.post<{ Params: { id: string } }>('/licenses/:id/seats/remove', signedIn, async (request, reply) => {
    const account = portal.account(request);
    const license = await ownLicense(account.id, request.params.id);
    const form = new Form(request.body);
    const remove = form.integer('remove', 'the number of seats to remove', 1, Math.max(1, license.seats - 1));
    if (form.ok && license.seats - remove < 1) form.fail('remove', 'A license keeps at least one seat.');
    const failed = (status = 400) => portal.render(request, reply, 'seats', page(license, { values: { add: '1', remove: form.text('remove') }, errors: form.errors }), status);
    if (!form.ok) return failed();
    const change = await setSeats(app.db, license.id, license.seats - remove, { customerId: account.id, why: 'removed by the customer in MyAccount' });
    if (change.changed) await app.licenses.licenseChanged(license.id);
    if (!change.changed && change.reason === 'machines-in-use') {
      const deactivate = change.inUse.length - (license.seats - remove);
      form.fail('remove', `${change.inUse.length} machines use this license, so it needs at least ${change.inUse.length} seats. `
        + `Deactivate ${deactivate} of these first: ${change.inUse.map(machineName).join(', ')}.`);
      return failed(409);
    }
    if (!change.changed) throw new AppError('LICENSE_NOT_FOUND', 404, 'You have no license with this number that can change its seats.');
    await audit.record(app.db, account.id, 'license.seats_removed', new Date());
    return reply.redirect('/account/data?done=seats-removed#licenses', 303);
  });
}
