import type { FastifyPluginAsync } from 'fastify';
import Stripe from 'stripe';
import { completeOrder } from '../account/orders.js';
import { Type } from 'typebox';
import { AppError } from '../errors.js';
import { errorResponses } from '../licenses/schemas.js';

export const STRIPE_WEBHOOK_PATH = '/v1/payments/stripe/webhook';

/** The events that can say a Checkout Session was paid (a bank debit pays later than a card). */
const PAID_EVENTS = new Set(['checkout.session.completed', 'checkout.session.async_payment_succeeded']);

/**
 * Stripe's webhook. The signature is computed over the exact bytes Stripe sent, so this route
 * reads its body raw (its own parser, in this plugin's scope only). An order is completed only by
 * an event signed with the endpoint's secret, for a paid session of that order's amount and
 * currency, and each event acts once however often it is delivered.
 */
const stripeWebhookRoutes: FastifyPluginAsync<{ stripe: Stripe; webhookSecret: string }> = async (app, { stripe, webhookSecret }) => {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 256 * 1024 }, (_request, body, done) => done(null, body));

  app.post(STRIPE_WEBHOOK_PATH, {
    schema: {
      tags: ['payments'],
      summary: 'Stripe webhook: a paid Checkout Session completes its order (signed with STRIPE_WEBHOOK_SECRET)',
      response: {
        200: Type.Object({ received: Type.Literal(true), acted: Type.Boolean({ description: 'false: nothing to do, or done before' }) }),
        ...errorResponses({ body: true }, 404, 409),
      },
    },
  }, async (request, reply) => {
    const signature = request.headers['stripe-signature'];
    if (!Buffer.isBuffer(request.body) || typeof signature !== 'string') {
      throw new AppError('SIGNATURE_INVALID', 400, 'a Stripe webhook needs its raw body and a Stripe-Signature header');
    }
    let event: Stripe.Event;
    try {
      event = stripe.webhooks.constructEvent(request.body, signature, webhookSecret);
    } catch (err) {
      request.log.warn({ err: (err as Error).message }, 'a Stripe webhook with a wrong signature was refused');
      throw new AppError('SIGNATURE_INVALID', 400, 'the Stripe-Signature of this event does not verify');
    }
    if (!PAID_EVENTS.has(event.type)) return reply.send({ received: true, acted: false });
    const session = event.data.object as Stripe.Checkout.Session;
    if (session.payment_status !== 'paid') return reply.send({ received: true, acted: false });
    const orderId = Number(session.client_reference_id ?? session.metadata?.order_id);
    if (!Number.isSafeInteger(orderId) || orderId <= 0) throw new AppError('ORDER_NOT_FOUND', 400, `Checkout Session ${session.id} names no Ferry order`);
    if (session.amount_total === null || session.currency === null) {
      throw new AppError('PAYMENT_MISMATCH', 400, `Checkout Session ${session.id} has no amount`);
    }
    try {
      const { completed } = await completeOrder(app, orderId, {
        provider: 'stripe', reference: session.id, eventId: event.id, paid: { minor: session.amount_total, currency: session.currency },
      });
      if (completed) request.log.info({ orderId, session: session.id, event: event.id }, 'order paid by Stripe and completed');
      return reply.send({ received: true, acted: completed });
    } catch (err) {
      if (err instanceof AppError && err.code === 'PAYMENT_MISMATCH') request.log.error({ orderId, event: event.id }, err.message);
      throw err;
    }
  });
};

export default stripeWebhookRoutes;
