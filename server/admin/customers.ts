import type { PoolConnection, ResultSetHeader } from 'mysql2/promise';

export interface NewCustomer {
  type: 'business' | 'individual';
  name: string;
  organization?: string;
  address: string;
  country: string;
  email: string | null;
}

export const customers = {
  async insert(db: PoolConnection, customer: NewCustomer, now: Date): Promise<number> {
    const [result] = await db.execute<ResultSetHeader>(
      'INSERT INTO customers (type, name, organization, address, country, email, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      [customer.type, customer.name, customer.organization ?? null, customer.address, customer.country, customer.email, now],
    );
    return result.insertId;
  },
};
