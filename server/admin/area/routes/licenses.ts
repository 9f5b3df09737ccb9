import type { FastifyInstance } from 'fastify';
import { AppError } from '../../../errors.js';
import { inTransaction } from '../../../licenses/repository.js';
import { customers, type NewCustomer } from '../../customers.js';
import { issuePermanentLicense } from '../../../licenses/issue-license.js';
import { isCountryCode } from '../format.js';
import { field, param, type FieldErrors } from '../forms.js';
import type { AdminPages } from '../pages.js';
import { findLicense, listLicenses } from '../queries.js';
import { revokeLicense } from '../../revoke-license.js';
import { csvLine } from '../../../../reports/csv.js';

const PAGE_SIZE = 50;
/** The CSV export's bound: far above any real list, below what would hurt the server. */
const CSV_MAX_ROWS = 100_000;
const LICENSE_CSV_HEADER = ['id', 'kind', 'state', 'seats', 'seats_used', 'key_hint', 'email', 'organization', 'customer_name', 'country', 'created_at', 'expires_at', 'revoked_at'];
/** As the API allows (`POST /v1/admin/licenses`). */
const MAX_SEATS = 100_000;
const KINDS = ['trial', 'permanent'] as const;

interface IssueRequest {
  seats: number;
  email: string | null;
  customer: Omit<NewCustomer, 'email'> | null;
}

/** The issue form, checked field by field so each error stands next to its field. */
function readIssueForm(body: unknown): { request: IssueRequest | null; values: Record<string, string>; errors: FieldErrors } {
  const values = Object.fromEntries(['seats', 'email', 'customerType', 'name', 'organization', 'address', 'country'].map((name) => [name, field(body, name)]));
  values.country = values.country!.toUpperCase();
  const errors: FieldErrors = {};
  const seats = Number(values.seats);
  if (!/^\d{1,6}$/.test(values.seats!) || seats < 1 || seats > MAX_SEATS) errors.seats = `Enter the number of seats: a whole number from 1 to ${MAX_SEATS.toLocaleString('en')}.`;
  const email = values.email!.toLowerCase();
  if (email !== '' && (email.length > 254 || !/^[^\s@<>()",;:]+@[^\s@<>()",;:]+\.[^\s@<>()",;:]+$/.test(email))) {
    errors.email = 'Enter an email address like name@example.com, or leave it empty.';
  }
  const type = values.customerType;
  let customer: IssueRequest['customer'] = null;
  if (type === 'business' || type === 'individual') {
    if (values.name === '' || values.name!.length > 200) errors.name = 'Enter the customer’s name (at most 200 characters).';
    if (values.organization!.length > 200) errors.organization = 'The organization can be at most 200 characters long.';
    if (type === 'business' && values.organization === '') errors.organization = 'Enter the name of the business or organization.';
    if (values.address === '' || values.address!.length > 500) errors.address = 'Enter the postal address (at most 500 characters).';
    if (!isCountryCode(values.country!)) errors.country = 'Enter the country as its two-letter ISO code, such as DE, GB or JP.';
    customer = { type, name: values.name!, ...(values.organization ? { organization: values.organization } : {}), address: values.address!, country: values.country! };
  } else if (type !== '') {
    errors.customerType = 'Choose no customer, a business, or an individual.';
  }
  const ok = Object.keys(errors).length === 0;
  return { request: ok ? { seats, email: email || null, customer } : null, values, errors };
}

export function licenseId(text: string): number {
  if (!/^\d{1,15}$/.test(text)) throw new AppError('LICENSE_NOT_FOUND', 404, `There is no license ${text}.`);
  return Number(text);
}

/** Recent licenses; issue a permanent license (a recorded sale); revoke one, after a confirmation. */
export default async function licenseRoutes(app: FastifyInstance, pages: AdminPages): Promise<void> {
  /** The list's filter from the address: kind, one id, a search, and the page (ids older than `before`). */
  const listFilter = (query: unknown) => {
    const kindText = param(query, 'kind');
    const kind = (KINDS as readonly string[]).includes(kindText) ? (kindText as (typeof KINDS)[number]) : undefined;
    const id = /^\d{1,15}$/.test(param(query, 'id')) ? Number(param(query, 'id')) : undefined;
    const before = /^\d{1,15}$/.test(param(query, 'before')) ? Number(param(query, 'before')) : undefined;
    const q = param(query, 'q').slice(0, 200);
    return { kind, id, before, q: q === '' ? undefined : q };
  };

  const listPage = async (query: unknown) => {
    const filter = listFilter(query);
    const rows = await listLicenses(app.db, { ...filter, limit: PAGE_SIZE + 1 }, new Date());
    const older = rows.length > PAGE_SIZE ? rows[PAGE_SIZE - 1]!.id : null;
    const search = new URLSearchParams({ ...(filter.kind ? { kind: filter.kind } : {}), ...(filter.q ? { q: filter.q } : {}) });
    return {
      title: 'Licenses', licenses: rows.slice(0, PAGE_SIZE), kind: filter.kind ?? '', onlyId: filter.id ?? null, q: filter.q ?? '',
      older, olderLink: older === null ? null : `/admin/licenses?${new URLSearchParams([...search, ['before', String(older)]])}`,
      csvLink: `/admin/licenses.csv${search.size ? `?${search}` : ''}`, firstPage: filter.before === undefined,
    };
  };

  app.get('/licenses', async (request, reply) => pages.render(request, reply, 'licenses', await listPage(request.query)));

  // Everything the search finds (not one page), for a spreadsheet: formula cells are made plain text.
  app.get('/licenses.csv', async (request, reply) => {
    const { kind, q } = listFilter(request.query);
    const rows = await listLicenses(app.db, { kind, q, limit: CSV_MAX_ROWS }, new Date());
    const lines = [csvLine(LICENSE_CSV_HEADER)];
    for (const l of rows) {
      lines.push(csvLine([
        l.id, l.kind, l.ended ? 'ended' : l.status, l.seats, l.seatsUsed, l.keyHint ?? '', l.email ?? '',
        l.customer?.organization ?? '', l.customer?.name ?? '', l.customer?.country ?? '',
        l.createdAt.toISOString(), l.expiresAt?.toISOString() ?? '', l.revokedAt?.toISOString() ?? '',
      ], { neutraliseFormulas: true }));
    }
    request.log.info({ rows: rows.length, via: 'admin area' }, 'license list exported');
    return reply.type('text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="ferry-licenses-${new Date().toISOString().slice(0, 10)}.csv"`)
      .send(lines.join(''));
  });

  app.post('/licenses', async (request, reply) => {
    const { request: issue, values, errors } = readIssueForm(request.body);
    if (!issue) return pages.render(request, reply, 'licenses', { ...(await listPage({})), values, errors, formFailed: true }, 400);
    const now = new Date();
    const { id, key } = await inTransaction(app.db, async (tx) => {
      const customerId = issue.customer ? await customers.insert(tx, { ...issue.customer, email: issue.email }, now) : null;
      return issuePermanentLicense(tx, { seats: issue.seats, email: issue.email, customerId, now });
    });
    request.log.info({ licenseId: id, seats: issue.seats, via: 'admin area' }, 'license issued');
    const license = await findLicense(app.db, id, now);
    // The key is on this page only (only its digest is kept): not a redirect, so it is never in an address.
    return pages.render(request, reply, 'license-issued', { title: `License ${id} issued`, license, key }, 201);
  });

  app.get('/licenses/:id/revoke', async (request, reply) => {
    const id = licenseId((request.params as { id: string }).id);
    const license = await findLicense(app.db, id, new Date());
    if (!license) throw new AppError('LICENSE_NOT_FOUND', 404, `There is no license ${id}.`);
    return pages.render(request, reply, 'revoke', { title: `Revoke license ${id}`, license });
  });

  app.post('/licenses/:id/revoke', async (request, reply) => {
    const id = licenseId((request.params as { id: string }).id);
    if (!(await revokeLicense(app, id))) throw new AppError('LICENSE_NOT_FOUND', 404, `There is no license ${id}.`);
    request.log.info({ licenseId: id, via: 'admin area' }, 'license revoked');
    return reply.redirect(`/admin/licenses?id=${id}&done=revoked`, 303);
  });
}
