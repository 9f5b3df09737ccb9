import fp from 'fastify-plugin';
import Stripe from 'stripe';
import { formatAmount, type OrderRow } from '../account/orders.js';
import stripeWebhookRoutes from './stripe-webhook.js';

/** Where the provider sends the buyer back to. */
export interface CheckoutReturn {
  successUrl: string;
  cancelUrl: string;
}

/** A provider's hosted payment page for one order. */
export interface HostedCheckout {
  /** The provider's id of the checkout (Stripe: the Checkout Session id). */
  id: string;
  /** The page the buyer pays on. */
  url: string;
}

export interface Payments {
  /** `stripe` when STRIPE_* are set; null: payment is by invoice only. */
  provider: 'stripe' | null;
  /**
   * Opens the provider's hosted checkout for an order. A property, not a method, so that tests
   * (which have no network) can stand in for the provider's API; the webhook is never stood in for.
   */
  startCheckout: (order: OrderRow, buyerEmail: string | null, back: CheckoutReturn) => Promise<HostedCheckout>;
}

declare module 'fastify' {
  interface FastifyInstance {
    payments: Payments;
  }
}

function unavailable(): Promise<HostedCheckout> {
  return Promise.reject(new Error('no payment provider is configured'));
}

/**
 * Taking the money: with STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET set, a Stripe Checkout
 * Session per order, and the signed webhook at /v1/payments/stripe/webhook that completes it.
 * Ferry never sees card data; only the webhook's word completes an order.
 */
export default fp(
  async (app) => {
    const settings = app.config.stripe;
    if (!settings) {
      app.decorate('payments', { provider: null, startCheckout: unavailable } satisfies Payments);
      return;
    }
    const stripe = new Stripe(settings.secretKey);
    const payments: Payments = {
      provider: 'stripe',
      async startCheckout(order, buyerEmail, back) {
        const what = order.kind === 'add_seats'
          ? `${order.seats} more seat(s) for Ferry license ${order.target_license_id}`
          : `Ferry permanent license, ${order.seats} seat(s)`;
        const session = await stripe.checkout.sessions.create({
          mode: 'payment',
          client_reference_id: String(order.id),
          metadata: { order_id: String(order.id) },
          ...(buyerEmail ? { customer_email: buyerEmail } : {}),
          line_items: [{
            quantity: order.seats,
            price_data: {
              currency: order.currency.toLowerCase(),
              unit_amount: order.amount_minor / order.seats,
              product_data: { name: what, description: `Order ${order.id}, ${formatAmount(order.amount_minor, order.currency)}` },
            },
          }],
          success_url: back.successUrl,
          cancel_url: back.cancelUrl,
        });
        if (!session.url) throw new Error(`Stripe opened checkout ${session.id} without a page to send the buyer to`);
        return { id: session.id, url: session.url };
      },
    };
    app.decorate('payments', payments);
    await app.register(stripeWebhookRoutes, { stripe, webhookSecret: settings.webhookSecret });
  },
  { name: 'payments', dependencies: ['config'] },
);
