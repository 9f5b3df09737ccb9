import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';

export interface NewCustomer {
  type: 'business' | 'individual';
  name: string;
  organization?: string;
  address: string;
  country: string;
  email: string | null;
}

export const customers = {
  async emailOf(db: Pool, id: number): Promise<string | null> {
    const [rows] = await db.execute<RowDataPacket[]>('SELECT email FROM customers WHERE id = ?', [id]);
    return (rows[0]?.email as string | null | undefined) ?? null;
  },

  async insert(db: PoolConnection, customer: NewCustomer, now: Date): Promise<number> {
    const [result] = await db.execute<ResultSetHeader>(
      'INSERT INTO customers (type, name, organization, address, country, email, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      [customer.type, customer.name, customer.organization ?? null, customer.address, customer.country, customer.email, now],
    );
    return result.insertId;
  },
};
