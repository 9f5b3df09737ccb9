import type { FastifyInstance } from 'fastify';
import type { PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { AppError } from '../../errors.js';
import { inTransaction } from '../../licenses/repository.js';
import { Form, normalizeClaimCode } from '../forms.js';
import { formatAmount, MAX_SEATS, orders, paymentReference, PRICE_PER_SEAT, type OrderRow } from '../orders.js';
import type { Portal } from '../plugin.js';
import { audit } from '../repository.js';

/** What the agent prints: 10 characters of an alphabet without look-alikes (see the license service). */
const CLAIM_CODE = /^[23456789ABCDEFGHJKMNPQRSTVWXYZ]{10}$/;

/**
 * What a trial recorded before it was claimed belongs to whoever ran it, and a claim code can be
 * passed on: the claimant gets the trial, not that person's data. Only a trial started with the
 * claimant's own (verified) address is known to be theirs and keeps everything; any other keeps
 * neither its address nor the IP addresses and host name its machine was seen with, as an erasure.
 */
async function claimTrial(db: PoolConnection, code: string, account: { id: number; email: string | null }, now: Date): Promise<boolean> {
  const [result] = await db.execute<ResultSetHeader>(
    "UPDATE licenses SET customer_id = ?, claimed_at = ? WHERE claim_code = ? AND kind = 'trial' AND customer_id IS NULL",
    [account.id, now, code],
  );
  if (result.affectedRows !== 1) return false;
  const [rows] = await db.execute<RowDataPacket[]>("SELECT id, email FROM licenses WHERE claim_code = ? AND kind = 'trial'", [code]);
  const trial = rows[0] as { id: number; email: string | null };
  const sameAddress = trial.email !== null && account.email !== null && trial.email.toLowerCase() === account.email.toLowerCase();
  if (sameAddress) return true;
  await db.execute('UPDATE licenses SET email = NULL, marketing_opt_in = FALSE WHERE id = ?', [trial.id]);
  await db.execute('UPDATE activations SET ip = NULL, hostname = NULL WHERE license_id = ?', [trial.id]);
  await db.execute('UPDATE usage_events SET ip = NULL WHERE license_id = ?', [trial.id]);
  await db.execute('UPDATE license_events SET ip = NULL WHERE license_id = ?', [trial.id]);
  await db.execute('UPDATE activation_rebinds SET ip = NULL WHERE license_id = ?', [trial.id]);
  return true;
}

/** Claim a trial (register the software), buy or upgrade to a permanent license, and the checkout step. */
export default async function purchaseRoutes(app: FastifyInstance, portal: Portal): Promise<void> {
  const signedIn = { config: { signedIn: true } };

  app.get('/claim', signedIn, async (request, reply) => portal.render(request, reply, 'claim', { title: 'Claim a trial' }));

  app.post('/claim', signedIn, async (request, reply) => {
    const account = portal.account(request);
    const form = new Form(request.body);
    const code = normalizeClaimCode(form.text('code'));
    if (code === '') form.fail('code', 'Enter the claim code that ferry activate --trial printed.');
    else if (!CLAIM_CODE.test(code)) form.fail('code', 'A claim code has 10 letters and digits, as ferry activate --trial prints it. Check what you typed.');
    if (!form.ok) return portal.render(request, reply, 'claim', { title: 'Claim a trial', values: { code }, errors: form.errors }, 400);
    // Each try counts, right or wrong: codes cannot be guessed from here.
    await portal.limits.claimPerCustomer(request, String(account.id));
    const now = new Date();
    if (!(await inTransaction(app.db, (tx) => claimTrial(tx, code, account, now)))) {
      const [mine] = await app.db.execute<RowDataPacket[]>("SELECT 1 FROM licenses WHERE claim_code = ? AND kind = 'trial' AND customer_id = ?", [code, account.id]);
      // A trial claimed by someone else gets the same answer as no trial at all.
      form.fail('code', mine.length > 0 ? 'You have already claimed this trial: it is listed in My data.' : 'No unclaimed trial has this code. Check the code that ferry activate --trial printed.');
      return portal.render(request, reply, 'claim', { title: 'Claim a trial', values: { code }, errors: form.errors }, 400);
    }
    await audit.record(app.db, account.id, 'trial.claimed', now);
    return reply.redirect('/account/data?done=trial-claimed#licenses', 303);
  });

  /** The customer's trials that can still be upgraded: not those an order has already turned permanent. */
  const ownTrials = async (customerId: number) => {
    const [rows] = await app.db.execute<RowDataPacket[]>(
      `SELECT l.id, l.expires_at, l.created_at FROM licenses l
        WHERE l.customer_id = ? AND l.kind = 'trial'
          AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.trial_license_id = l.id AND o.status = 'paid')
        ORDER BY l.id`,
      [customerId],
    );
    return rows as { id: number; expires_at: Date; created_at: Date }[];
  };

  const buyPage = { title: 'Buy a license', price: formatAmount(PRICE_PER_SEAT.minor, PRICE_PER_SEAT.currency), maxSeats: MAX_SEATS };

  app.get('/buy', signedIn, async (request, reply) => {
    const account = portal.account(request);
    const trials = await ownTrials(account.id);
    return portal.render(request, reply, 'buy', { ...buyPage, trials, values: { seats: '1', trial: trials.at(-1)?.id ?? '' } });
  });

  app.post('/buy', signedIn, async (request, reply) => {
    const account = portal.account(request);
    const trials = await ownTrials(account.id);
    const form = new Form(request.body);
    const seats = form.integer('seats', 'the number of machines', 1, MAX_SEATS);
    const trialText = form.text('trial');
    const trial = trialText === '' ? null : trials.find((t) => String(t.id) === trialText) ?? null;
    if (trialText !== '' && !trial) form.fail('trial', 'Choose one of your trials, or none.');
    if (!form.ok) return portal.render(request, reply, 'buy', { ...buyPage, trials, values: { seats: form.text('seats'), trial: trialText }, errors: form.errors }, 400);
    const now = new Date();
    const orderId = await orders.create(app.db, { customerId: account.id, seats, trialLicenseId: trial?.id ?? null, userAgent: request.headers['user-agent'] }, now);
    await audit.record(app.db, account.id, 'order.created', now);
    return reply.redirect(`/account/orders/${orderId}`, 303);
  });

  /** The customer's own order, or 404 whatever the reason (someone else's, or none). */
  const ownOrder = async (customerId: number, idText: string): Promise<OrderRow> => {
    const id = Number(idText);
    const order = Number.isSafeInteger(id) && id > 0 ? await orders.ofCustomer(app.db, customerId, id) : null;
    if (!order) throw new AppError('ORDER_NOT_FOUND', 404, 'You have no order with this number.');
    return order;
  };

  const checkoutPage = (order: OrderRow, extra: Record<string, unknown> = {}) => ({
    title: `Order ${order.id}`,
    order,
    amount: formatAmount(order.amount_minor, order.currency),
    reference: paymentReference(order.id),
    provider: app.payments.provider,
    ...extra,
  });

  app.get<{ Params: { id: string }; Querystring: { paid?: string } }>('/orders/:id', signedIn, async (request, reply) => {
    const order = await ownOrder(portal.account(request).id, request.params.id);
    return portal.render(request, reply, 'checkout', checkoutPage(order, { returnedPaid: request.query.paid === '1' }));
  });

  /**
   * The checkout step. Ferry takes no card data and completes no order here: with a payment
   * provider, the buyer goes to its hosted page, and its signed webhook completes the order
   * (payments/stripe-webhook.ts); without one, the order page says how to pay by invoice, and
   * staff mark the order paid in /admin once the money is in.
   */
  app.post<{ Params: { id: string } }>('/orders/:id/checkout', signedIn, async (request, reply) => {
    const account = portal.account(request);
    const order = await ownOrder(account.id, request.params.id);
    if (order.status !== 'pending' || app.payments.provider === null) return reply.redirect(`/account/orders/${order.id}`, 303);
    const page = `${app.config.publicUrl}/account/orders/${order.id}`;
    let checkout;
    try {
      checkout = await app.payments.startCheckout(order, account.email, { successUrl: `${page}?paid=1`, cancelUrl: page });
    } catch (err) {
      request.log.error({ err: (err as Error).message, orderId: order.id }, 'the payment page could not be opened');
      return portal.render(request, reply, 'checkout', checkoutPage(order, {
        failure: 'The payment page could not be opened just now. Nothing was charged: try again in a minute, or pay by invoice.',
      }), 503);
    }
    await audit.record(app.db, account.id, 'order.checkout', new Date());
    return reply.redirect(checkout.url, 303);
  });
}
