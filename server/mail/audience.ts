import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';

type Queryable = Pool | PoolConnection;

/**
 * Who chose news (news, offers and release notices), as one SELECT of (email, customer_id,
 * license_id) rows, one per address:
 *
 * - accounts (customers with a password) that are active (not cancelled, not deleted), whose address
 *   is verified, and that ticked "news and offers" at registration or in MyAccount
 *   (`customers.marketing_opt_in`);
 * - trial users who gave an address with `ferry activate --trial --email … --marketing`
 *   (`licenses.marketing_opt_in`), unless the trial was claimed by an account or the address is an
 *   account's: then the account's own choice decides;
 * - never an address on the opt-out list (`mail_opt_outs`: the one-click link, or "no marketing
 *   mail at all" in MyAccount).
 *
 * With `oneAddress`, the same test for a single address (the `?` it adds is that address, three
 * times): the mail service asks it again when each message goes out, so a change of mind counts
 * for messages already queued.
 */
function audienceSql(oneAddress: boolean): string {
  const only = (column: string) => (oneAddress ? `AND ${column} = ?` : '');
  return `SELECT a.email, MIN(a.customer_id) AS customer_id, MIN(a.license_id) AS license_id FROM (
      SELECT LOWER(c.email) AS email, c.id AS customer_id, NULL AS license_id FROM customers c
       WHERE c.account_email IS NOT NULL AND c.status = 'active' AND c.email_verified_at IS NOT NULL AND c.marketing_opt_in ${only('c.email')}
      UNION ALL
      SELECT LOWER(l.email), NULL, l.id FROM licenses l
       WHERE l.kind = 'trial' AND l.email IS NOT NULL AND l.marketing_opt_in AND l.customer_id IS NULL ${only('l.email')}
         AND NOT EXISTS (SELECT 1 FROM customers ac WHERE ac.account_email = l.email)
    ) a
    WHERE NOT EXISTS (SELECT 1 FROM mail_opt_outs o WHERE o.email = a.email ${only('o.email')})
    GROUP BY a.email`;
}

/** The whole audience, for copying into a campaign's recipients (`INSERT … SELECT`). */
export const NEWS_AUDIENCE_SQL = audienceSql(false);

/** Whether this address is (still) in the audience of news. */
export async function choseNews(db: Queryable, email: string): Promise<boolean> {
  const address = email.toLowerCase();
  const [rows] = await db.query<RowDataPacket[]>(`${audienceSql(true)} LIMIT 1`, [address, address, address]);
  return rows.length > 0;
}

/** How many addresses a campaign started now would go to. */
export async function newsAudienceSize(db: Queryable): Promise<number> {
  const [rows] = await db.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM (${NEWS_AUDIENCE_SQL}) audience`);
  return Number(rows[0]!.n);
}
