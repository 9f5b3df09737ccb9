import type { FastifyInstance } from 'fastify';
import type { RowDataPacket } from 'mysql2/promise';
import { completeOrder, formatAmount, orders, paymentReference } from '../../../account/orders.js';
import { AppError } from '../../../errors.js';
import { field } from '../forms.js';
import type { AdminPages } from '../pages.js';

const PENDING_SHOWN = 200;
const INVOICE = 'invoice';

/**
 * Orders waiting for their money, and the invoice path: staff mark an order paid with the
 * payment's reference (the bank transfer's), which completes it exactly as a provider's webhook
 * does (completeOrder): the license is issued, or the seats added, and the receipt mailed.
 */
export default async function orderRoutes(app: FastifyInstance, pages: AdminPages): Promise<void> {
  const listPage = async (extra: Record<string, unknown> = {}) => {
    const pending = await orders.pending(app.db, PENDING_SHOWN);
    const ids = pending.map((o) => o.customer_id);
    const [customers] = ids.length
      ? await app.db.query<RowDataPacket[]>('SELECT id, name, organization, email FROM customers WHERE id IN (?)', [ids])
      : [[]];
    const byId = new Map(customers.map((c) => [c.id as number, c]));
    return {
      title: 'Orders',
      orders: pending.map((o) => ({
        ...o, reference: paymentReference(o.id), amount: formatAmount(o.amount_minor, o.currency), customer: byId.get(o.customer_id) ?? null,
      })),
      values: {}, errors: {}, failedOrder: null, ...extra,
    };
  };

  app.get('/orders', async (request, reply) => pages.render(request, reply, 'orders', await listPage()));

  app.post('/orders/:id/paid', async (request, reply) => {
    const idText = (request.params as { id: string }).id;
    const order = /^\d{1,15}$/.test(idText) ? await orders.byId(app.db, Number(idText)) : null;
    if (!order) throw new AppError('ORDER_NOT_FOUND', 404, `There is no order ${idText}.`);
    const reference = field(request.body, 'reference');
    const refuse = async (message: string, status = 400) =>
      pages.render(request, reply, 'orders', await listPage({ values: { reference }, errors: { reference: message }, failedOrder: order.id }), status);
    if (reference === '' || reference.length > 191 || /[\u0000-\u001f\u007f]/.test(reference)) {
      return refuse('Enter the reference of the payment (the bank transfer’s), at most 191 characters.');
    }
    const other = await orders.byReference(app.db, INVOICE, reference);
    if (other && other.id !== order.id) return refuse(`This reference already paid order ${other.id}: check it, or tell the two payments apart (say, “${reference}/2”).`, 409);
    if (order.status === 'cancelled') return refuse('This order was cancelled (the account was closed or deleted): it cannot be paid.', 409);
    const { completed } = await completeOrder(app, order.id, { provider: INVOICE, reference });
    if (completed) request.log.info({ orderId: order.id, via: 'admin area' }, 'invoice paid: order completed');
    return reply.redirect(`/admin/orders?done=${completed ? 'order-paid' : 'order-paid-before'}`, 303);
  });
}
