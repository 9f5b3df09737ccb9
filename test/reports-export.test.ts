import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { issueLicense } from './support/admin.js';
import { request } from './support/http.js';
import { newMachine } from './support/machines.js';
import { openDb, startServer, type TestServer } from './support/server.js';

describe('export-compliance report', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  const admin = (path: string, body?: unknown) => request(`${server.url}${path}`, { body, method: body === undefined ? 'GET' : 'POST', token: server.adminToken });

  async function download(id: number, format: 'csv' | 'json') {
    const res = await fetch(`${server.url}/v1/admin/reports/${id}.${format}`, { headers: { authorization: `Bearer ${server.adminToken}` } });
    return { status: res.status, type: res.headers.get('content-type'), body: Buffer.from(await res.arrayBuffer()) };
  }

  it('lists non-U.S. businesses that bought or registered, not U.S. ones nor individuals, exactly as computed by hand', async () => {
    const db = await openDb(server.config.databaseUrl);
    try {
      const quayside = await issueLicense(server, 5, {
        customer: { type: 'business', name: 'Ingrid Holm', organization: 'Quayside, "Nordic" AS', address: 'Bryggen 1\n5003 Bergen', country: 'NO' },
      });
      await issueLicense(server, 2, { customer: { type: 'business', name: 'Sam Ortiz', organization: 'Acme Corp', address: '1 Main St, Springfield', country: 'US' } });
      await issueLicense(server, 1, { customer: { type: 'individual', name: 'Jean Dupont', address: '3 rue de la Paix, Paris', country: 'FR' } });
      await issueLicense(server, 3, { customer: { type: 'business', name: 'Ana Rivera', organization: 'Isla Ltd', address: 'San Juan', country: 'PR' } });
      // A business that deleted its account before any report was filed: an empty tombstone, left out.
      const erased = await issueLicense(server, 2, { customer: { type: 'business', name: 'Gone AB', organization: 'Gone AB', address: 'Gatan 1, Malmö', country: 'SE' } });
      await db.query("UPDATE customers c JOIN licenses l ON l.customer_id = c.id SET c.status = 'deleted', c.name = '', c.organization = NULL, c.address = '' WHERE l.id = ?", [erased.id]);
      // A registration: a trial claimed in MyAccount by a business in Japan.
      const trial = await request(`${server.url}/v1/trials`, { body: { fingerprint: newMachine() } });
      const [customer] = await db.query(
        "INSERT INTO customers (type, name, organization, address, country) VALUES ('business', 'Kenji Sato', 'Sato Shoji KK', '1-1 Marunouchi, Tokyo', 'JP')",
      );
      await db.query('UPDATE licenses SET customer_id = ?, claimed_at = NOW(3) WHERE id = ?', [(customer as { insertId: number }).insertId, trial.body.license.id]);

      const today = new Date().toISOString().slice(0, 10);
      const filed = await admin('/v1/admin/reports/export', { from: today, to: today });
      assert.equal(filed.status, 201);
      assert.equal(filed.body.report.rows, 2);

      const classification = '"ECCN 5D992.c (mass market, ENC 740.17(b)(1))"';
      const expected =
        'event,date,organization,contact_name,address,country,license_id,license_kind,seats,encryption_classification\r\n' +
        `purchase,${today},"Quayside, ""Nordic"" AS",Ingrid Holm,"Bryggen 1\n5003 Bergen",NO,${quayside.id},permanent,5,${classification}\r\n` +
        `registration,${today},Sato Shoji KK,Kenji Sato,"1-1 Marunouchi, Tokyo",JP,${trial.body.license.id},trial,1,${classification}\r\n`;
      const csv = await download(filed.body.report.id, 'csv');
      assert.equal(csv.status, 200);
      assert.equal(csv.type, 'text/csv; charset=utf-8');
      assert.equal(csv.body.toString('utf8'), expected);
      assert.equal(createHash('sha256').update(csv.body).digest('hex'), filed.body.report.checksum);

      const json = JSON.parse((await download(filed.body.report.id, 'json')).body.toString('utf8'));
      assert.equal(json.report.csvSha256, filed.body.report.checksum);
      assert.deepEqual(json.rows.map((r: { organization: string; country: string; event: string }) => [r.event, r.organization, r.country]), [
        ['purchase', 'Quayside, "Nordic" AS', 'NO'],
        ['registration', 'Sato Shoji KK', 'JP'],
      ]);
    } finally {
      await db.end();
    }
  });

  it('never changes a filed report: every download is byte-identical, whatever happens to the accounts', async () => {
    const db = await openDb(server.config.databaseUrl);
    try {
      const license = await issueLicense(server, 1, { customer: { type: 'business', name: 'Lena Berg', organization: 'Berg GmbH', address: 'Hauptstr. 1, Berlin', country: 'DE' } });
      const today = new Date().toISOString().slice(0, 10);
      const filed = await admin('/v1/admin/reports/export', { from: today, to: today });
      const first = await download(filed.body.report.id, 'csv');
      const firstJson = await download(filed.body.report.id, 'json');
      await db.query("UPDATE customers c JOIN licenses l ON l.customer_id = c.id SET c.name = 'Changed', c.address = 'Elsewhere' WHERE l.id = ?", [license.id]);
      const again = await download(filed.body.report.id, 'csv');
      assert.ok(again.body.equals(first.body));
      assert.ok((await download(filed.body.report.id, 'json')).body.equals(firstJson.body));
      assert.match(first.body.toString(), /Lena Berg/);
    } finally {
      await db.end();
    }
  });

  it('refuses a period that ends before it starts, a bad date, and an unknown report, each with a code', async () => {
    const backwards = await admin('/v1/admin/reports/export', { from: '2026-07-01', to: '2026-01-01' });
    assert.equal(backwards.status, 400);
    assert.equal(backwards.body.error.code, 'PERIOD_INVALID');
    const bad = await admin('/v1/admin/reports/export', { from: '2026-02-30x', to: '2026-03-01' });
    assert.equal(bad.status, 400);
    const missing = await admin('/v1/admin/reports/987654.csv');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'REPORT_NOT_FOUND');
    const unauth = await request(`${server.url}/v1/admin/reports/1.csv`);
    assert.equal(unauth.status, 401);
  });
});
