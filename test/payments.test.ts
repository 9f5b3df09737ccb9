import assert from 'node:assert/strict';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import type { OrderRow } from '../server/account/orders.js';
import { ConfigError, loadConfig } from '../server/config.js';
import { request } from './support/http.js';
import { newMachine } from './support/machines.js';
import { adminClient, checkoutCompleted, orderIdOf, payByInvoice, sendStripeEvent, TEST_STRIPE } from './support/payments.js';
import { fieldError, newPerson, signUp, startPortalServer, text, type PortalClient } from './support/portal.js';
import { until } from './support/processes.js';
import { openDb, testEnv, type TestServer } from './support/server.js';
import { startSmtp, type TestSmtp } from './support/smtp.js';

/**
 * Buying for real: an order issues nothing until it is paid, by Stripe's signed webhook or by staff
 * marking its invoice paid, and both complete it the same way, once.
 */

async function licensesOf(db: Pool, email: string): Promise<RowDataPacket[]> {
  const [rows] = await db.query<RowDataPacket[]>(
    "SELECT l.id, l.seats, l.kind FROM licenses l JOIN customers c ON c.id = l.customer_id WHERE c.email = ? AND l.kind = 'permanent' ORDER BY l.id",
    [email],
  );
  return rows;
}

async function orderOf(db: Pool, id: number): Promise<OrderRow> {
  const [rows] = await db.query<RowDataPacket[]>('SELECT * FROM orders WHERE id = ?', [id]);
  return rows[0] as OrderRow;
}

/** The key in the receipt mail of `order` (the receipt is the only place a bought key is shown). */
async function keyFromReceipt(smtp: TestSmtp, email: string, orderId: number): Promise<string> {
  const mails = await until(`the receipt of order ${orderId}`, async () => {
    const all = await smtp.waitFor(email, 1);
    return all.find((m) => m.parsed.subject === `Your Ferry license (order ${orderId})`);
  });
  const key = /ferry activate --key (\S+)/.exec(mails.parsed.text ?? '')?.[1];
  assert.ok(key, 'the receipt carries the key');
  return key;
}

async function buy(client: PortalClient, seats: number, trial = ''): Promise<number> {
  const ordered = await client.submit('/account/buy', '/account/buy', { seats: String(seats), trial });
  assert.equal(ordered.status, 303, text(ordered.html));
  return orderIdOf(ordered.location);
}

describe('Payment: an order is pending until it is paid', function () {
  this.timeout(90_000);
  let smtp: TestSmtp;

  before(async () => {
    smtp = await startSmtp();
  });
  after(async () => smtp?.close());

  it('takes STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET together or not at all', () => {
    const env = testEnv();
    assert.equal(loadConfig(env).stripe, null, 'neither: invoice only');
    assert.deepEqual(loadConfig({ ...env, STRIPE_SECRET_KEY: 'sk_test_abc', STRIPE_WEBHOOK_SECRET: 'whsec_abc' }).stripe, { secretKey: 'sk_test_abc', webhookSecret: 'whsec_abc' });
    for (const [extra, variable] of [
      [{ STRIPE_SECRET_KEY: 'sk_test_abc' }, 'STRIPE_WEBHOOK_SECRET'],
      [{ STRIPE_WEBHOOK_SECRET: 'whsec_abc' }, 'STRIPE_SECRET_KEY'],
      [{ STRIPE_SECRET_KEY: 'pk_test_abc', STRIPE_WEBHOOK_SECRET: 'whsec_abc' }, 'STRIPE_SECRET_KEY'],
      [{ STRIPE_SECRET_KEY: 'sk_test_abc', STRIPE_WEBHOOK_SECRET: 'abc' }, 'STRIPE_WEBHOOK_SECRET'],
    ] as const) {
      assert.throws(() => loadConfig({ ...env, ...extra }), (err: unknown) => err instanceof ConfigError && err.variable === variable, JSON.stringify(extra));
    }
  });

  describe('without a payment provider (invoice only)', () => {
    let server: TestServer;
    let db: Pool;
    before(async () => {
      server = await startPortalServer(smtp);
      db = await openDb(server.config.databaseUrl);
    });
    after(async () => {
      await db?.end();
      await server?.close();
    });

    it('issues nothing for an unpaid order, and the order page says how to pay by invoice', async () => {
      const person = newPerson('unpaid');
      const client = await signUp(server, smtp, person);
      const orderId = await buy(client, 3);
      const checkout = await client.submit(`/account/orders/${orderId}`, `/account/orders/${orderId}/checkout`, {});
      assert.equal(checkout.status, 303, 'the checkout step sends the buyer back to the order');
      const page = await client.get(`/account/orders/${orderId}`);
      const words = text(page.html);
      assert.match(words, /this order is paid by invoice\. Nothing has been charged/);
      assert.match(words, new RegExp(`quoting the order reference FERRY-${orderId}`));
      assert.match(words, /waiting for payment/);
      assert.ok(!/Confirm and pay|Pay £/.test(words), 'nothing pretends to charge');
      assert.equal((await licensesOf(db, person.email)).length, 0, 'no license was issued');
      assert.equal((await orderOf(db, orderId)).status, 'pending');
    });

    it('completes the order once when staff mark its invoice paid: the receipt (service mail) carries a working key', async () => {
      const person = newPerson('invoice');
      const client = await signUp(server, smtp, person);
      const orderId = await buy(client, 3);
      const staffPage = await (await adminClient(server)).get('/admin/orders');
      assert.match(text(staffPage.html), new RegExp(`FERRY-${orderId}.*new license, 3 seat\\(s\\).*£147\\.00`));

      const paid = await payByInvoice(server, orderId, `INV-${orderId}`);
      assert.equal(paid.status, 303);
      assert.equal(paid.location, '/admin/orders?done=order-paid');
      const order = await orderOf(db, orderId);
      assert.equal(order.status, 'paid');
      assert.equal(order.provider, 'invoice');
      assert.equal(order.provider_ref, `INV-${orderId}`);
      const key = await keyFromReceipt(smtp, person.email, orderId);
      const [[mail]] = await db.query<RowDataPacket[]>('SELECT kind FROM sent_mail WHERE idempotency_key = ?', [`purchase-receipt:${orderId}`]);
      assert.equal(mail!.kind, 'service', 'a receipt is service mail');
      const activation = await request(`${server.url}/v1/activations`, { body: { key, fingerprint: newMachine() } });
      assert.equal(activation.status, 201);
      assert.equal(activation.body.license.seats, 3);

      // Marked paid again (a double click): nothing more is issued.
      const again = await payByInvoice(server, orderId, `INV-${orderId}`);
      assert.equal(again.location, '/admin/orders?done=order-paid-before');
      assert.equal((await licensesOf(db, person.email)).length, 1);
      assert.ok(!text((await client.get(`/account/orders/${orderId}`)).html).includes('waiting for payment'));

      // One transfer's reference cannot pay a second order by mistake.
      const second = await buy(client, 1);
      const clash = await payByInvoice(server, second, `INV-${orderId}`);
      assert.equal(clash.status, 409);
      assert.match(fieldError(clash.html, `reference-${second}`) ?? '', new RegExp(`already paid order ${orderId}`));
      assert.equal((await orderOf(db, second)).status, 'pending');
    });
  });

  describe('with Stripe', () => {
    let server: TestServer;
    let db: Pool;
    let opened: number[];
    before(async () => {
      server = await startPortalServer(smtp, { stripe: TEST_STRIPE });
      db = await openDb(server.config.databaseUrl);
      opened = [];
      // No network in tests: Stripe's API that opens the hosted page is stood in for. The webhook is real.
      server.app.payments.startCheckout = async (order, _email, back) => {
        opened.push(order.id);
        assert.match(back.successUrl, new RegExp(`/account/orders/${order.id}\\?paid=1$`));
        return { id: `cs_test_order_${order.id}`, url: `https://checkout.stripe.test/pay/cs_test_order_${order.id}` };
      };
    });
    after(async () => {
      await db?.end();
      await server?.close();
    });

    it('sends the buyer to Stripe\'s page; a correctly signed webhook completes the order once, however often it is sent', async () => {
      const person = newPerson('stripe');
      const client = await signUp(server, smtp, person);
      const orderId = await buy(client, 3);
      const checkout = await client.submit(`/account/orders/${orderId}`, `/account/orders/${orderId}/checkout`, {});
      assert.equal(checkout.status, 303);
      assert.equal(checkout.location, `https://checkout.stripe.test/pay/cs_test_order_${orderId}`);
      assert.deepEqual(opened, [orderId]);
      const back = text((await client.get(`/account/orders/${orderId}?paid=1`)).html);
      assert.match(back, /As soon as the payment provider confirms the payment/);
      assert.equal((await licensesOf(db, person.email)).length, 0, 'coming back from the payment page issues nothing');

      const event = checkoutCompleted(orderId, 14_700);
      const first = await sendStripeEvent(server, event);
      assert.deepEqual([first.status, first.body], [200, { received: true, acted: true }]);
      const twice = await sendStripeEvent(server, event);
      assert.deepEqual([twice.status, twice.body], [200, { received: true, acted: false }]);
      // Another event about the same payment (Stripe sends a completed and an async_payment_succeeded): still once.
      const other = await sendStripeEvent(server, { ...checkoutCompleted(orderId, 14_700), type: 'checkout.session.async_payment_succeeded' });
      assert.deepEqual([other.status, other.body], [200, { received: true, acted: false }]);

      const licenses = await licensesOf(db, person.email);
      assert.equal(licenses.length, 1, 'one license');
      assert.equal(licenses[0]!.seats, 3);
      const order = await orderOf(db, orderId);
      assert.deepEqual([order.status, order.provider, order.provider_ref], ['paid', 'stripe', `cs_test_order_${orderId}`]);
      const key = await keyFromReceipt(smtp, person.email, orderId);
      assert.equal((await request(`${server.url}/v1/activations`, { body: { key, fingerprint: newMachine() } })).status, 201);
      const [receipts] = await db.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sent_mail WHERE idempotency_key = ?', [`purchase-receipt:${orderId}`]);
      assert.equal(Number(receipts[0]!.n), 1, 'one receipt');
      // The buyer cannot pay a paid order again.
      assert.equal((await client.submit(`/account/orders/${orderId}`, `/account/orders/${orderId}/checkout`, {})).location, `/account/orders/${orderId}`);
      assert.deepEqual(opened, [orderId]);
    });

    it('completes an order once when Stripe delivers its event twice at the same moment', async () => {
      const person = newPerson('race');
      const client = await signUp(server, smtp, person);
      const orderId = await buy(client, 1);
      const event = checkoutCompleted(orderId, 4_900);
      const answers = await Promise.all([sendStripeEvent(server, event), sendStripeEvent(server, event), sendStripeEvent(server, event)]);
      assert.deepEqual(answers.map((a) => a.status), [200, 200, 200]);
      assert.equal(answers.filter((a) => a.body.acted).length, 1, 'one delivery acted');
      assert.equal((await licensesOf(db, person.email)).length, 1);
    });

    it('says so, and charges nothing, when Stripe\'s page cannot be opened', async () => {
      const person = newPerson('stripe-down');
      const client = await signUp(server, smtp, person);
      const orderId = await buy(client, 1);
      const working = server.app.payments.startCheckout;
      server.app.payments.startCheckout = async () => { throw new Error('connect ECONNREFUSED api.stripe.com'); };
      try {
        const answer = await client.submit(`/account/orders/${orderId}`, `/account/orders/${orderId}/checkout`, {});
        assert.equal(answer.status, 503);
        assert.match(text(answer.html), /The payment page could not be opened just now\. Nothing was charged/);
        assert.ok(!answer.html.includes('ECONNREFUSED'), 'no internals shown');
      } finally {
        server.app.payments.startCheckout = working;
      }
      assert.equal((await orderOf(db, orderId)).status, 'pending');
    });

    it('refuses a wrongly signed event and one of another amount or currency, and issues nothing', async () => {
      const person = newPerson('forged');
      const client = await signUp(server, smtp, person);
      const orderId = await buy(client, 2);

      const forged = await sendStripeEvent(server, checkoutCompleted(orderId, 9_800), 'whsec_someoneelsessecret');
      assert.equal(forged.status, 400);
      assert.equal(forged.body.error.code, 'SIGNATURE_INVALID');
      const unsigned = await fetch(`${server.url}/v1/payments/stripe/webhook`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(checkoutCompleted(orderId, 9_800)),
      });
      assert.equal(unsigned.status, 400);
      // Signed, then changed on the way: the signature is over the bytes.
      const payload = JSON.stringify(checkoutCompleted(orderId, 1));
      const { default: Stripe } = await import('stripe');
      const signature = new Stripe(TEST_STRIPE.secretKey).webhooks.generateTestHeaderString({ payload, secret: TEST_STRIPE.webhookSecret });
      const tampered = await fetch(`${server.url}/v1/payments/stripe/webhook`, {
        method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': signature }, body: payload.replace('"amount_total":1', '"amount_total":9800'),
      });
      assert.equal(tampered.status, 400);

      const cheap = await sendStripeEvent(server, checkoutCompleted(orderId, 100));
      assert.equal(cheap.status, 400);
      assert.equal(cheap.body.error.code, 'PAYMENT_MISMATCH');
      const foreign = await sendStripeEvent(server, checkoutCompleted(orderId, 9_800, { currency: 'usd' }));
      assert.equal(foreign.body.error.code, 'PAYMENT_MISMATCH');
      const unpaid = await sendStripeEvent(server, checkoutCompleted(orderId, 9_800, { paymentStatus: 'unpaid' }));
      assert.deepEqual(unpaid.body, { received: true, acted: false }, 'a session not yet paid completes nothing');
      assert.equal((await licensesOf(db, person.email)).length, 0, 'nothing was issued');
      assert.equal((await orderOf(db, orderId)).status, 'pending');

      // The refused events were not taken as seen: the right one still completes the order.
      const right = await sendStripeEvent(server, checkoutCompleted(orderId, 9_800));
      assert.deepEqual(right.body, { received: true, acted: true });
      assert.equal((await licensesOf(db, person.email)).length, 1);
    });
  });
});
