import type { Pool, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { issuePermanentLicense } from '../licenses/issue-license.js';
import { AppError } from '../errors.js';
import { inTransaction } from '../licenses/repository.js';
import type { MailService } from '../mail/service.js';
import { ACCOUNT_TEMPLATES } from './mail.js';
import { audit, type Queryable } from './repository.js';

/** The list price until a payment provider owns prices: per seat, in minor units. */
export const PRICE_PER_SEAT = { minor: 4_900, currency: 'GBP' } as const;
export const MAX_SEATS = 1_000;
/** Browsers send a few hundred characters at most; anything longer is cut, not refused. */
const USER_AGENT_MAX = 512;

export function formatAmount(minor: number, currency: string): string {
  return new Intl.NumberFormat('en-GB', { style: 'currency', currency }).format(minor / 100);
}

export interface OrderRow {
  id: number;
  customer_id: number;
  trial_license_id: number | null;
  license_id: number | null;
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

const ORDER_COLUMNS = 'id, customer_id, trial_license_id, license_id, seats, amount_minor, currency, status, provider, provider_ref, user_agent, created_at, paid_at';

export const orders = {
  /** A customer's own order, or null: every route looks orders up through this. */
  async ofCustomer(db: Queryable, customerId: number, orderId: number): Promise<OrderRow | null> {
    const [rows] = await db.execute<RowDataPacket[]>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE id = ? AND customer_id = ?`, [orderId, customerId]);
    return (rows[0] as OrderRow | undefined) ?? null;
  },

  async allOfCustomer(db: Queryable, customerId: number): Promise<OrderRow[]> {
    const [rows] = await db.execute<RowDataPacket[]>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE customer_id = ? ORDER BY id`, [customerId]);
    return rows as OrderRow[];
  },

  /** Records the order and the browser it came from (piracy detection, as the privacy policy says). */
  async create(db: Queryable, order: { customerId: number; seats: number; trialLicenseId: number | null; userAgent: string | undefined }, now: Date): Promise<number> {
    const [result] = await db.execute<ResultSetHeader>(
      `INSERT INTO orders (customer_id, trial_license_id, seats, amount_minor, currency, status, user_agent, created_at)
       VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)`,
      [order.customerId, order.trialLicenseId, order.seats, order.seats * PRICE_PER_SEAT.minor, PRICE_PER_SEAT.currency, order.userAgent?.slice(0, USER_AGENT_MAX) ?? null, now],
    );
    return result.insertId;
  },
};

export interface Payment {
  /** `portal` for the built-in checkout step; a provider's name when its webhook calls. */
  provider: string;
  /** The provider's id of the payment: a retried webhook finds the order completed already. */
  reference: string;
}

export interface Completed {
  order: OrderRow;
  /** The new license key: only in the answer of the call that completed the order, and in the receipt mail. */
  key: string | null;
}

/**
 * Completes a paid order: issues the permanent license with the order's seats to the customer and
 * mails the receipt with the key. This is the one step a payment provider's webhook would call once
 * it has taken the money (Ferry never sees card data); the portal's checkout step calls it directly
 * for now. Idempotent: completing a completed order issues nothing and returns no key.
 */
export async function completeOrder(deps: { db: Pool; mail: MailService }, orderId: number, payment: Payment): Promise<Completed> {
  const now = new Date();
  const done = await inTransaction(deps.db, async (tx) => {
    const [rows] = await tx.execute<RowDataPacket[]>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE id = ? FOR UPDATE`, [orderId]);
    const order = rows[0] as OrderRow | undefined;
    if (!order) throw new AppError('ORDER_NOT_FOUND', 404, 'There is no such order.');
    if (order.status === 'paid') return { order, key: null, email: null };
    if (order.status === 'cancelled') throw new AppError('ORDER_CANCELLED', 409, 'This order was cancelled; start a new one.');
    const [customers] = await tx.execute<RowDataPacket[]>('SELECT email, status FROM customers WHERE id = ? FOR UPDATE', [order.customer_id]);
    const customer = customers[0] as { email: string | null; status: string } | undefined;
    if (!customer || customer.status === 'deleted') throw new AppError('ORDER_CANCELLED', 409, 'The account of this order no longer exists.');
    const { id: licenseId, key } = await issuePermanentLicense(tx, { seats: order.seats, email: customer.email, customerId: order.customer_id, now });
    await tx.execute("UPDATE orders SET status = 'paid', license_id = ?, provider = ?, provider_ref = ?, paid_at = ? WHERE id = ?", [
      licenseId, payment.provider, payment.reference, now, order.id,
    ]);
    // Buying again during the retention period of a cancelled account makes it a customer again.
    if (customer.status === 'cancelled') {
      await tx.execute("UPDATE customers SET status = 'active', cancelled_at = NULL, updated_at = ? WHERE id = ?", [now, order.customer_id]);
    }
    await audit.record(tx, order.customer_id, 'order.completed', now);
    return { order: { ...order, status: 'paid' as const, license_id: licenseId, paid_at: now }, key, email: customer.email };
  });
  if (done.key && done.email) {
    await deps.mail.enqueue({
      key: `purchase-receipt:${done.order.id}`,
      template: ACCOUNT_TEMPLATES.purchaseReceipt,
      to: done.email,
      customerId: done.order.customer_id,
      licenseId: done.order.license_id,
      data: { orderId: done.order.id, seats: done.order.seats, amount: formatAmount(done.order.amount_minor, done.order.currency), key: done.key },
    });
  }
  return { order: done.order, key: done.key };
}
