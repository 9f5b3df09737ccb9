import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { issuePermanentLicense } from '../licenses/issue-license.js';
import { AppError } from '../errors.js';
import { inTransaction, isDuplicateKey, licenseEvents } from '../licenses/repository.js';
import type { MailService } from '../mail/service.js';
import { ACCOUNT_TEMPLATES } from './mail.js';
import { audit, type Queryable } from './repository.js';

/** The list price until a payment provider owns prices: per seat, in minor units. */
export const PRICE_PER_SEAT = { minor: 4_900, currency: 'GBP' } as const;
export const MAX_SEATS = 1_000;
/** As staff may issue (`POST /v1/admin/licenses`): no change of seats goes beyond it. */
export const MAX_SEATS_PER_LICENSE = 100_000;
/** Browsers send a few hundred characters at most; anything longer is cut, not refused. */
const USER_AGENT_MAX = 512;

export function formatAmount(minor: number, currency: string): string {
  return new Intl.NumberFormat('en-GB', { style: 'currency', currency }).format(minor / 100);
}

export interface OrderRow {
  id: number;
  customer_id: number;
  /** `new`: a new permanent license (upgrading `trial_license_id` if set); `add_seats`: more seats for `target_license_id`. */
  kind: 'new' | 'add_seats';
  trial_license_id: number | null;
  license_id: number | null;
  target_license_id: number | null;
  seats: number;
  amount_minor: number;
  currency: string;
  status: 'pending' | 'paid' | 'cancelled';
  provider: string | null;
  provider_ref: string | null;
  user_agent: string | null;
  created_at: Date;
  paid_at: Date | null;
}

const ORDER_COLUMNS = 'id, customer_id, kind, trial_license_id, license_id, target_license_id, seats, amount_minor, currency, status, provider, provider_ref, user_agent, created_at, paid_at';

export const orders = {
  /** A customer's own order, or null: every route looks orders up through this. */
  async ofCustomer(db: Queryable, customerId: number, orderId: number): Promise<OrderRow | null> {
    const [rows] = await db.execute<RowDataPacket[]>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE id = ? AND customer_id = ?`, [orderId, customerId]);
    return (rows[0] as OrderRow | undefined) ?? null;
  },

  async byId(db: Queryable, orderId: number): Promise<OrderRow | null> {
    const [rows] = await db.execute<RowDataPacket[]>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE id = ?`, [orderId]);
    return (rows[0] as OrderRow | undefined) ?? null;
  },

  async allOfCustomer(db: Queryable, customerId: number): Promise<OrderRow[]> {
    const [rows] = await db.execute<RowDataPacket[]>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE customer_id = ? ORDER BY id`, [customerId]);
    return rows as OrderRow[];
  },

  /** Orders waiting for their payment, oldest first: what staff look at for invoices. */
  async pending(db: Queryable, limit: number): Promise<OrderRow[]> {
    const [rows] = await db.query<RowDataPacket[]>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE status = 'pending' ORDER BY id LIMIT ?`, [limit]);
    return rows as OrderRow[];
  },

  /** The paid order that already carries this provider's reference, if any. */
  async byReference(db: Queryable, provider: string, reference: string): Promise<OrderRow | null> {
    const [rows] = await db.execute<RowDataPacket[]>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE provider = ? AND provider_ref = ?`, [provider, reference]);
    return (rows[0] as OrderRow | undefined) ?? null;
  },

  /**
   * Records the order and the browser it came from (piracy detection, as the privacy policy says).
   * `targetLicenseId`: the customer's license that gets `seats` more seats; otherwise a new license.
   */
  async create(
    db: Queryable,
    order: { customerId: number; seats: number; trialLicenseId: number | null; targetLicenseId?: number | null; userAgent: string | undefined },
    now: Date,
  ): Promise<number> {
    const target = order.targetLicenseId ?? null;
    const [result] = await db.execute<ResultSetHeader>(
      `INSERT INTO orders (customer_id, kind, trial_license_id, target_license_id, seats, amount_minor, currency, status, user_agent, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)`,
      [
        order.customerId, target === null ? 'new' : 'add_seats', target === null ? order.trialLicenseId : null, target, order.seats,
        order.seats * PRICE_PER_SEAT.minor, PRICE_PER_SEAT.currency, order.userAgent?.slice(0, USER_AGENT_MAX) ?? null, now,
      ],
    );
    return result.insertId;
  },
};

/** What the order says to quote when paying by bank transfer: short, and unmistakably ours. */
export function paymentReference(orderId: number): string {
  return `FERRY-${orderId}`;
}

export interface Payment {
  /** `stripe` when its webhook calls; `invoice` when staff mark an order paid. */
  provider: string;
  /** The provider's id of the payment (or the bank transfer's reference): kept with the order. */
  reference: string;
  /** The provider's event that reported it: each event acts once, however often it is sent. */
  eventId?: string;
  /** What the provider says it took: it must be the order's amount, in the order's currency. */
  paid?: { minor: number; currency: string };
}

export interface Completed {
  order: OrderRow;
  /** The new license key: only in the answer of the call that completed the order, and in the receipt mail. */
  key: string | null;
  /** True for the call that completed the order; false when it was completed before (or the event was seen). */
  completed: boolean;
}

/** What the completion mails, once the transaction committed. */
type Receipt = { template: string; data: Record<string, unknown> } | null;

/**
 * Completes a paid order, the one way every payment comes in (a provider's webhook, staff marking
 * an invoice paid): issues the permanent license (or adds the seats to the license), turns an
 * upgraded trial's machine into a machine of the new license, and mails the receipt. Ferry never
 * sees card data. Idempotent: completing a completed order, or acting on an event seen before,
 * changes nothing and returns no key. A payment of another amount or currency is refused.
 */
export async function completeOrder(
  deps: { db: Pool; mail: MailService; licenses?: { licenseChanged(licenseId: number): Promise<void> } },
  orderId: number, payment: Payment,
): Promise<Completed> {
  const now = new Date();
  const done = await inTransaction(deps.db, async (tx) => {
    const [rows] = await tx.execute<RowDataPacket[]>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE id = ? FOR UPDATE`, [orderId]);
    const order = rows[0] as OrderRow | undefined;
    if (!order) throw new AppError('ORDER_NOT_FOUND', 404, 'There is no such order.');
    if (payment.paid && (payment.paid.minor !== order.amount_minor || payment.paid.currency.toUpperCase() !== order.currency)) {
      throw new AppError(
        'PAYMENT_MISMATCH', 400,
        `the payment (${payment.paid.minor} ${payment.paid.currency.toUpperCase()}) is not the amount of order ${order.id} (${order.amount_minor} ${order.currency})`,
      );
    }
    const unchanged = { order, key: null, completed: false, email: null, receipt: null as Receipt };
    if (payment.eventId !== undefined && !(await firstTimeSeen(tx, payment.provider, payment.eventId, order.id, now))) return unchanged;
    if (order.status === 'paid') return unchanged;
    if (order.status === 'cancelled') throw new AppError('ORDER_CANCELLED', 409, 'This order was cancelled; start a new one.');
    const [customers] = await tx.execute<RowDataPacket[]>('SELECT email, status FROM customers WHERE id = ? FOR UPDATE', [order.customer_id]);
    const customer = customers[0] as { email: string | null; status: string } | undefined;
    if (!customer || customer.status === 'deleted') throw new AppError('ORDER_CANCELLED', 409, 'The account of this order no longer exists.');
    const { licenseId, key, receipt } = order.kind === 'add_seats'
      ? await addSeats(tx, order, now)
      : await issueForOrder(tx, order, customer.email, now);
    await tx.execute("UPDATE orders SET status = 'paid', license_id = ?, provider = ?, provider_ref = ?, paid_at = ? WHERE id = ?", [
      licenseId, payment.provider, payment.reference, now, order.id,
    ]);
    // Buying again during the retention period of a cancelled account makes it a customer again.
    if (customer.status === 'cancelled') {
      await tx.execute("UPDATE customers SET status = 'active', cancelled_at = NULL, updated_at = ? WHERE id = ?", [now, order.customer_id]);
    }
    await audit.record(tx, order.customer_id, 'order.completed', now);
    const paid = { ...order, status: 'paid' as const, license_id: licenseId, provider: payment.provider, provider_ref: payment.reference, paid_at: now };
    return { order: paid, key, completed: true, email: customer.email, receipt };
  });
  if (done.completed && deps.licenses) {
    // Every server drops what it cached of the licenses this changed (a trial's machine moved over).
    for (const id of [done.order.license_id, done.order.trial_license_id]) if (id !== null) await deps.licenses.licenseChanged(id);
  }
  if (done.receipt && done.email) {
    await deps.mail.enqueue({
      key: `purchase-receipt:${done.order.id}`,
      template: done.receipt.template,
      to: done.email,
      customerId: done.order.customer_id,
      licenseId: done.order.license_id,
      data: { orderId: done.order.id, amount: formatAmount(done.order.amount_minor, done.order.currency), ...done.receipt.data },
    });
  }
  return { order: done.order, key: done.key, completed: done.completed };
}

/** Notes the provider's event; false when it was acted on before (a retry, or a replay). */
async function firstTimeSeen(tx: PoolConnection, provider: string, eventId: string, orderId: number, now: Date): Promise<boolean> {
  try {
    await tx.execute('INSERT INTO payment_events (provider, event_id, order_id, received_at) VALUES (?, ?, ?, ?)', [provider, eventId.slice(0, 191), orderId, now]);
    return true;
  } catch (err) {
    if (isDuplicateKey(err)) return false;
    throw err;
  }
}

/**
 * A new permanent license. Upgrading a claimed trial moves the trial's machine onto it at once: the
 * activation (same row, same machine) now belongs to the new license and remembers the trial, so
 * that the machine's next validation with its trial token is answered with a token of the new
 * license (licenses/service.ts). The trial ends now: it is not offered again, and not restarted.
 */
async function issueForOrder(tx: PoolConnection, order: OrderRow, email: string | null, now: Date) {
  const { id: licenseId, key } = await issuePermanentLicense(tx, { seats: order.seats, email, customerId: order.customer_id, now });
  await licenseEvents.record(tx, licenseId, 'issued', null, null, now, `order ${order.id}, ${order.seats} seat(s)`);
  let movedMachines = 0;
  if (order.trial_license_id !== null) {
    const [trials] = await tx.execute<RowDataPacket[]>(
      "SELECT id FROM licenses WHERE id = ? AND kind = 'trial' AND customer_id = ? FOR UPDATE",
      [order.trial_license_id, order.customer_id],
    );
    if (trials.length === 1) {
      const [moved] = await tx.execute<ResultSetHeader>(
        `UPDATE activations SET license_id = ?, converted_from_license_id = ? WHERE license_id = ? AND active ORDER BY id LIMIT ?`,
        [licenseId, order.trial_license_id, order.trial_license_id, order.seats],
      );
      movedMachines = moved.affectedRows;
      await tx.execute('UPDATE licenses SET expires_at = LEAST(expires_at, ?) WHERE id = ?', [now, order.trial_license_id]);
      await licenseEvents.record(tx, order.trial_license_id, 'trial_converted', null, null, now, `upgraded to license ${licenseId} (order ${order.id})`);
      if (movedMachines > 0) await licenseEvents.record(tx, licenseId, 'trial_converted', null, null, now, `machine of trial ${order.trial_license_id} moved here`);
    }
  }
  const receipt: Receipt = { template: ACCOUNT_TEMPLATES.purchaseReceipt, data: { seats: order.seats, key, upgradedMachines: movedMachines } };
  return { licenseId, key: key as string | null, receipt };
}

/** More seats for the customer's own active permanent license; its key stays the same. */
async function addSeats(tx: PoolConnection, order: OrderRow, now: Date) {
  const [rows] = await tx.execute<RowDataPacket[]>(
    "SELECT id, seats, status FROM licenses WHERE id = ? AND customer_id = ? AND kind = 'permanent' FOR UPDATE",
    [order.target_license_id, order.customer_id],
  );
  const license = rows[0] as { id: number; seats: number; status: string } | undefined;
  if (!license || license.status === 'revoked' || license.status === 'cancelled') {
    throw new AppError('ORDER_CANCELLED', 409, 'The license of this order can no longer take more seats.');
  }
  const seats = Math.min(license.seats + order.seats, MAX_SEATS_PER_LICENSE);
  await tx.execute('UPDATE licenses SET seats = ? WHERE id = ?', [seats, license.id]);
  await licenseEvents.record(tx, license.id, 'seats_changed', null, null, now, `${license.seats} → ${seats} (order ${order.id})`);
  const receipt: Receipt = { template: ACCOUNT_TEMPLATES.seatsReceipt, data: { added: order.seats, seats, licenseId: license.id } };
  return { licenseId: license.id, key: null as string | null, receipt };
}
