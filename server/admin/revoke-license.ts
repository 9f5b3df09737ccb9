import type { FastifyInstance } from 'fastify';
import { licenseEvents, licenses, type LicenseRow } from '../licenses/repository.js';
import { customers } from './customers.js';

/**
 * Revokes a license: every machine loses it at its next validation, and its holder gets a service
 * notice (sent whatever their mail choices, once per license). The same steps as
 * `POST /v1/admin/licenses/:id/revoke`; that route can call this too, so that both stay one way.
 * Returns the revoked license, or null when there is no such license.
 */
export async function revokeLicense(app: FastifyInstance, id: number, now = new Date()): Promise<LicenseRow | null> {
  if (!(await licenses.revoke(app.db, id, now))) return null;
  // Every server forgets what it cached of this license: its machines are refused at their next check-in.
  await app.licenses.licenseChanged(id);
  await licenseEvents.record(app.db, id, 'revoked', null, null, now);
  const row = (await licenses.byId(app.db, id))!;
  const to = row.email ?? (row.customer_id ? await customers.emailOf(app.db, row.customer_id) : null);
  if (to) {
    await app.mail.enqueue({
      key: `license-revoked:${row.id}`, template: 'license-revoked', to, licenseId: row.id, customerId: row.customer_id,
      data: { licenseId: row.id, revokedOn: now.toUTCString() },
    });
  }
  return row;
}
