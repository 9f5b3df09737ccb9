import type { RowDataPacket } from 'mysql2/promise';
import { orders } from './orders.js';
import { all, optOuts, type AccountRow, type Queryable } from './repository.js';

/**
 * A stored time as ISO text. A zero date (`0000-00-00`, which mysql2 reads as an invalid Date) is
 * shown as missing rather than breaking the whole page and download.
 */
const iso = (date: Date | null) => (date && !Number.isNaN(date.getTime()) ? date.toISOString() : null);

/**
 * Everything Ferry holds about one customer, as the privacy policy promises: the same data behind
 * the "My data" page and `data.json`. Every query is bound to the customer's id (or their own
 * verified address, for mail sent to it), never to an id taken from the request.
 */
export async function collectMyData(db: Queryable, account: AccountRow) {
  const id = account.id;
  const email = account.email ?? '';

  const licenseRows = await all<RowDataPacket>(
    db,
    `SELECT id, kind, status, seats, key_hint, expires_at, created_at, claimed_at, revoked_at, email, marketing_opt_in
       FROM licenses WHERE customer_id = ? ORDER BY id`,
    [id],
  );
  const machineRows = await all<RowDataPacket>(
    db,
    `SELECT a.id, a.license_id, a.active, a.platform, a.hostname, a.agent_version, a.locale, a.ip, a.created_at, a.last_validated_at, a.deactivated_at
       FROM activations a JOIN licenses l ON l.id = a.license_id WHERE l.customer_id = ? ORDER BY a.id`,
    [id],
  );
  const usageRows = await all<RowDataPacket>(
    db,
    `SELECT u.license_id, u.activation_id, u.occurred_at, u.kind, u.locale, u.ip, u.received_at
       FROM usage_events u JOIN licenses l ON l.id = u.license_id WHERE l.customer_id = ? ORDER BY u.occurred_at DESC, u.id DESC`,
    [id],
  );
  const licenseEventRows = await all<RowDataPacket>(
    db,
    `SELECT e.license_id, e.kind, e.ip, e.occurred_at FROM license_events e JOIN licenses l ON l.id = e.license_id
      WHERE l.customer_id = ? ORDER BY e.occurred_at DESC, e.id DESC`,
    [id],
  );
  const mailRows = await all<RowDataPacket>(
    db,
    `SELECT template, kind, subject, to_email, status, skip_reason, claimed_at, sent_at FROM sent_mail
      WHERE customer_id = ? OR (to_email = ? AND ? <> '') ORDER BY claimed_at DESC, id DESC`,
    [id, email, email],
  );
  const consentRows = await all<RowDataPacket>(db, 'SELECT purpose, granted, source, at FROM consent_history WHERE customer_id = ? ORDER BY at, id', [id]);
  const exportRows = await all<RowDataPacket>(
    db,
    `SELECT r.report_id, x.period_from, x.period_to, x.filed_at, r.event, r.event_date, r.organization, r.contact_name, r.address, r.country,
            r.license_id, r.license_kind, r.seats
       FROM export_report_rows r JOIN export_reports x ON x.id = r.report_id WHERE r.customer_id = ? ORDER BY r.report_id, r.seq`,
    [id],
  );
  const auditRows = await all<RowDataPacket>(db, 'SELECT action, at FROM audit_log WHERE customer_id = ? ORDER BY at DESC, id DESC', [id]);
  const optOut = email ? await optOuts.of(db, email) : null;
  const orderRows = await orders.allOfCustomer(db, id);

  return {
    profile: {
      customerId: id,
      type: account.type,
      name: account.name,
      organization: account.organization,
      address: account.address,
      country: account.country,
      email: account.email,
      emailVerifiedAt: iso(account.email_verified_at),
      ageConfirmedAt: iso(account.age_confirmed_at),
      status: account.status,
      createdAt: iso(account.created_at),
      updatedAt: iso(account.updated_at),
      cancelledAt: iso(account.cancelled_at),
    },
    licenses: licenseRows.map((l) => ({
      id: l.id as number,
      kind: l.kind as string,
      status: l.status as string,
      seats: l.seats as number,
      keyHint: l.key_hint as string | null,
      email: l.email as string | null,
      marketingOptIn: l.marketing_opt_in === 1,
      createdAt: iso(l.created_at),
      expiresAt: iso(l.expires_at),
      claimedAt: iso(l.claimed_at),
      revokedAt: iso(l.revoked_at),
      machines: machineRows.filter((m) => m.license_id === l.id).map((m) => ({
        id: m.id as number,
        active: m.active === 1,
        platform: m.platform as string | null,
        hostname: m.hostname as string | null,
        agentVersion: m.agent_version as string | null,
        locale: m.locale as string | null,
        ip: m.ip as string | null,
        activatedAt: iso(m.created_at),
        lastSeenAt: iso(m.last_validated_at),
        deactivatedAt: iso(m.deactivated_at),
      })),
    })),
    usageReports: usageRows.map((u) => ({
      licenseId: u.license_id as number,
      machineId: u.activation_id as number,
      at: iso(u.occurred_at),
      kind: u.kind as string,
      locale: u.locale as string | null,
      ip: u.ip as string | null,
      receivedAt: iso(u.received_at),
    })),
    licenseEvents: licenseEventRows.map((e) => ({ licenseId: e.license_id as number, kind: e.kind as string, ip: e.ip as string | null, at: iso(e.occurred_at) })),
    orders: orderRows.map((o) => ({
      id: o.id,
      seats: o.seats,
      amountMinor: o.amount_minor,
      currency: o.currency,
      status: o.status,
      trialLicenseId: o.trial_license_id,
      licenseId: o.license_id,
      userAgent: o.user_agent,
      createdAt: iso(o.created_at),
      paidAt: iso(o.paid_at),
    })),
    mailSent: mailRows.map((m) => ({
      template: m.template as string,
      kind: m.kind as string,
      subject: m.subject as string | null,
      to: m.to_email as string | null,
      status: m.status as string,
      skipReason: m.skip_reason as string | null,
      at: iso((m.sent_at ?? m.claimed_at) as Date),
    })),
    mailChoices: {
      newsAndOffers: account.marketing_opt_in === 1,
      marketingMailOptOut: optOut ? { source: optOut.source, at: iso(optOut.opted_out_at) } : null,
    },
    consentHistory: consentRows.map((c) => ({ purpose: c.purpose as string, granted: c.granted === 1, source: c.source as string, at: iso(c.at) })),
    exportReportRows: exportRows.map((r) => ({
      reportId: r.report_id as number,
      period: { from: dateOnly(r.period_from), to: dateOnly(r.period_to) },
      filedAt: iso(r.filed_at),
      event: r.event as string,
      eventDate: dateOnly(r.event_date),
      organization: r.organization as string,
      contactName: r.contact_name as string,
      address: r.address as string,
      country: r.country as string,
      licenseId: r.license_id as number,
      licenseKind: r.license_kind as string,
      seats: r.seats as number,
    })),
    accessLog: auditRows.map((a) => ({ action: a.action as string, at: iso(a.at) })),
  };
}

export type MyData = Awaited<ReturnType<typeof collectMyData>>;

function dateOnly(value: unknown): string | null {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString().slice(0, 10);
  return typeof value === 'string' ? value.slice(0, 10) : null;
}
