import assert from 'node:assert/strict';
import Stripe from 'stripe';
import { PortalClient, text } from './portal.js';
import type { TestServer } from './server.js';

/** What a test server with Stripe configured uses: test-mode shapes, no real account behind them. */
export const TEST_STRIPE = { secretKey: 'sk_test_ferrytests', webhookSecret: 'whsec_ferrytestsigningsecret' } as const;

/** A client signed in to /admin with the server's admin token. */
export async function adminClient(server: Pick<TestServer, 'url' | 'adminToken'>): Promise<PortalClient> {
  const client = new PortalClient(server.url);
  const answer = await client.post('/admin/login', { token: server.adminToken });
  assert.equal(answer.status, 303, text(answer.html));
  return client;
}

/** Staff mark an order paid with a reference, as /admin/orders does: the invoice path. */
export async function payByInvoice(server: TestServer, orderId: number, reference = `BANK-${orderId}-${Date.now()}`) {
  const staff = await adminClient(server);
  return staff.submit('/admin/orders', `/admin/orders/${orderId}/paid`, { reference });
}

/** The id in `/account/orders/<id>`, where the buy form redirects to. */
export function orderIdOf(location: string | null): number {
  const id = /\/account\/orders\/(\d+)$/.exec(location ?? '')?.[1];
  assert.ok(id, `not an order page: ${location}`);
  return Number(id);
}

const stripe = new Stripe(TEST_STRIPE.secretKey);

/** A `checkout.session.completed` event as Stripe sends it, for an order, paid. */
export function checkoutCompleted(orderId: number, amountMinor: number, options: { eventId?: string; sessionId?: string; currency?: string; paymentStatus?: string } = {}) {
  return {
    id: options.eventId ?? `evt_test_${orderId}_${Math.random().toString(36).slice(2)}`,
    object: 'event',
    type: 'checkout.session.completed',
    api_version: '2025-01-27',
    created: Math.floor(Date.now() / 1000),
    livemode: false,
    data: {
      object: {
        id: options.sessionId ?? `cs_test_order_${orderId}`,
        object: 'checkout.session',
        client_reference_id: String(orderId),
        metadata: { order_id: String(orderId) },
        amount_total: amountMinor,
        currency: options.currency ?? 'gbp',
        payment_status: options.paymentStatus ?? 'paid',
        status: 'complete',
      },
    },
  };
}

/**
 * Posts an event to the webhook as Stripe would: the exact bytes, signed (Stripe's own test
 * signer) with `secret` (the server's by default; another one to forge).
 */
export async function sendStripeEvent(server: TestServer, event: object, secret: string = TEST_STRIPE.webhookSecret) {
  // Indented on purpose: the signature is over these bytes, so the server must verify the raw body.
  const payload = JSON.stringify(event, null, 2);
  const signature = stripe.webhooks.generateTestHeaderString({ payload, secret });
  const response = await fetch(`${server.url}/v1/payments/stripe/webhook`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': signature }, body: payload,
  });
  const body = await response.text();
  return { status: response.status, body: body ? JSON.parse(body) : null };
}
