import assert from 'node:assert/strict';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import { POLICIES, verifyToken } from '../licensing/index.js';
import { issueLicense } from './support/admin.js';
import { HOUR } from './support/agent-fixtures.js';
import { Machine } from './support/ferry-machine.js';
import { request } from './support/http.js';
import { newMachine } from './support/machines.js';
import { adminClient, orderIdOf, payByInvoice } from './support/payments.js';
import { fieldError, newPerson, signUp, startPortalWorld, type PortalWorld, text, type PortalClient } from './support/portal.js';
import { until } from './support/processes.js';
import { type TestServer } from './support/server.js';
import type { TestSmtp } from './support/smtp.js';

/**
 * Changing what was bought (seats up and down, a trial upgraded in place, from MyAccount) and what
 * staff change in /admin (suspend and reinstate, extend a trial, seats), each in the license's
 * history; and the license list's search, paging and CSV export.
 */
describe('Changing licenses', function () {
  this.timeout(120_000);
  let smtp: TestSmtp;
  let server: TestServer;
  let db: Pool;
  let world: PortalWorld;

  before(async () => {
    world = await startPortalWorld();
    ({ smtp, server, db } = world);
  });
  after(() => world?.close());

  const seatsOf = async (licenseId: number) => {
    const [[row]] = await db.query<RowDataPacket[]>('SELECT seats FROM licenses WHERE id = ?', [licenseId]);
    return Number(row!.seats);
  };

  /** Buys a new license of `seats` and has staff mark it paid: its id and key (from the receipt). */
  async function boughtLicense(client: PortalClient, email: string, seats: number, trial = '') {
    const ordered = await client.submit('/account/buy', '/account/buy', { seats: String(seats), trial });
    const orderId = orderIdOf(ordered.location);
    assert.equal((await payByInvoice(server, orderId)).location, '/admin/orders?done=order-paid');
    const receipt = await until('the receipt', async () => (await smtp.waitFor(email, 1)).find((m) => m.parsed.subject === `Your Ferry license (order ${orderId})`));
    const [[order]] = await db.query<RowDataPacket[]>('SELECT license_id FROM orders WHERE id = ?', [orderId]);
    return { licenseId: Number(order!.license_id), key: /ferry activate --key (\S+)/.exec(receipt.parsed.text ?? '')![1]!, receipt };
  }

  it('adds seats by a paid order and removes seats at once, never below the machines in use (naming them); the key stays', async () => {
    const person = newPerson('seats');
    const client = await signUp(server, smtp, person);
    const { licenseId, key } = await boughtLicense(client, person.email, 2);
    for (const hostname of ['build-01', 'laptop-ada']) {
      assert.equal((await request(`${server.url}/v1/activations`, { body: { key, fingerprint: newMachine(), hostname } })).status, 201);
    }
    assert.equal((await request(`${server.url}/v1/activations`, { body: { key, fingerprint: newMachine() } })).body.error.code, 'SEATS_EXHAUSTED');

    // Adding is an order like any other: nothing changes before it is paid.
    const added = await client.submit(`/account/licenses/${licenseId}/seats`, `/account/licenses/${licenseId}/seats/add`, { add: '3' });
    const orderId = orderIdOf(added.location);
    const orderPage = text((await client.get(`/account/orders/${orderId}`)).html);
    assert.match(orderPage, new RegExp(`3 more seats for license ${licenseId} \\(its key stays the same\\).*£147\\.00`));
    assert.equal(await seatsOf(licenseId), 2, 'unpaid: no seats yet');
    await payByInvoice(server, orderId);
    assert.equal(await seatsOf(licenseId), 5);
    const receipt = await until('the seats receipt', async () => (await smtp.waitFor(person.email, 1)).find((m) => m.parsed.subject === `More seats for your Ferry license (order ${orderId})`));
    assert.match(receipt.parsed.text ?? '', /now has 5 seats/);
    assert.equal((await request(`${server.url}/v1/activations`, { body: { key, fingerprint: newMachine(), hostname: 'desk-3' } })).status, 201, 'the same key takes a third machine');

    // Removing: down to the machines in use, and not below; the refusal names the machines.
    const tooMany = await client.submit(`/account/licenses/${licenseId}/seats`, `/account/licenses/${licenseId}/seats/remove`, { remove: '3' });
    assert.equal(tooMany.status, 409);
    const why = fieldError(tooMany.html, 'remove')!;
    assert.match(why, /3 machines use this license, so it needs at least 3 seats\. Deactivate 1 of these first:/);
    for (const name of ['build-01', 'laptop-ada', 'desk-3']) assert.ok(why.includes(name), `names ${name}: ${why}`);
    assert.equal(await seatsOf(licenseId), 5);
    const fewer = await client.submit(`/account/licenses/${licenseId}/seats`, `/account/licenses/${licenseId}/seats/remove`, { remove: '2' });
    assert.equal(fewer.location, '/account/data?done=seats-removed#licenses');
    assert.equal(await seatsOf(licenseId), 3);
    const none = await client.submit(`/account/licenses/${licenseId}/seats`, `/account/licenses/${licenseId}/seats/remove`, { remove: '3' });
    assert.equal(none.status, 400, 'a license keeps one seat');
    assert.equal((await request(`${server.url}/v1/activations`, { body: { key, fingerprint: newMachine() } })).body.error.code, 'SEATS_EXHAUSTED');

    // Someone else's license is not there to change.
    const stranger = await signUp(server, smtp, newPerson('stranger'));
    assert.equal((await stranger.get(`/account/licenses/${licenseId}/seats`)).status, 404);
    assert.equal((await stranger.submit('/account/data', `/account/licenses/${licenseId}/seats/remove`, { remove: '1' })).status, 404);

    // Staff see it in the license's history.
    const history = text((await (await adminClient(server)).get(`/admin/licenses/${licenseId}`)).html);
    assert.match(history, /seats_changed 2 → 5 \(order \d+\)/);
    assert.match(history, /seats_changed 5 → 3 \(removed by the customer in MyAccount\)/);
    assert.match(history, /build-01/);
  });

  it('stops the licenses of a cancelled account at their next validation, even where a server had them cached', async () => {
    const person = newPerson('cancels');
    const client = await signUp(server, smtp, person);
    const { key } = await boughtLicense(client, person.email, 1);
    const activated = await request(`${server.url}/v1/activations`, { body: { key, fingerprint: newMachine() } });
    assert.equal(activated.status, 201);
    // Checked in once: the server now holds the activation, its license and its token's digest in its cache.
    const checkIn = { token: activated.body.token as string, body: { checkIn: true } };
    assert.equal((await request(`${server.url}/v1/validate`, checkIn)).status, 200);
    assert.equal((await request(`${server.url}/v1/validate`, checkIn)).status, 200);
    assert.equal((await client.submit('/account/cancel', '/account/cancel', { confirm: 'yes' })).location, '/account/cancel?done=cancelled');
    const after = await request(`${server.url}/v1/validate`, checkIn);
    assert.equal(after.status, 403, JSON.stringify(after.body));
    assert.equal(after.body.error.code, 'LICENSE_CANCELLED');
  });

  it('turns an upgraded trial into the permanent license on the same machine: its next check-in gets the permanent token', async () => {
    const person = newPerson('upgrade');
    const client = await signUp(server, smtp, person);
    const machine = new Machine();
    const started = await machine.run(['activate', '--trial', '--server', server.url]);
    assert.equal(started.code, 0, started.stderr);
    const trial = machine.license();
    assert.equal((await client.submit('/account/claim', '/account/claim', { code: trial.claimCode! })).status, 303);
    const { licenseId, receipt } = await boughtLicense(client, person.email, 2, String(trial.licenseId));
    assert.match(receipt.parsed.text ?? '', /The machine of your trial now runs on this license/);

    // The seat moved with the machine, and the trial is not offered again.
    const [machines] = await db.query<RowDataPacket[]>('SELECT license_id, active FROM activations WHERE id = ?', [trial.activationId]);
    assert.deepEqual(machines.map((m) => [Number(m.license_id), m.active]), [[licenseId, 1]]);
    assert.ok(!(await client.get('/account/buy')).html.includes(`id="trial-${trial.licenseId}"`), 'the upgraded trial is not offered again');

    // The API: validating with the trial token answers with a token of the permanent license.
    const validated = await request(`${server.url}/v1/validate`, { token: trial.token, body: {} });
    assert.equal(validated.status, 200, JSON.stringify(validated.body));
    assert.equal(validated.body.license.id, licenseId);
    assert.equal(validated.body.license.kind, 'permanent');
    const { claims } = verifyToken(validated.body.token, server.app.keyring, { now: Date.now() });
    assert.deepEqual([claims.kind, claims.sub, claims.aid], ['permanent', String(licenseId), trial.activationId]);

    // The agent: its next check-in (renewal due) stores the permanent license, no key typed.
    const due = Date.now() + POLICIES.trial.leaseMs - POLICIES.trial.renewWhenLeftMs + HOUR;
    const status = await machine.run(['status', '--json'], { now: due });
    assert.equal(status.code, 0, status.stderr);
    const upgraded = machine.license();
    assert.deepEqual([upgraded.kind, upgraded.licenseId, upgraded.activationId], ['permanent', String(licenseId), trial.activationId]);
    const after = await machine.run(['status', '--json'], { now: due });
    assert.equal(after.code, 0, after.stderr);
    assert.equal(JSON.parse(after.stdout).kind, 'permanent');

    // Asking for the trial again from that machine does not bring it back.
    const again = await machine.run(['activate', '--trial', '--server', server.url]);
    assert.notEqual(again.code, 0);
    const [[count]] = await db.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM activations WHERE license_id = ? AND active', [trial.licenseId]);
    assert.equal(Number(count!.n), 0, 'the trial holds no machine');
  });

  it('lets staff suspend and reinstate a license (403 while suspended), extend a trial, and set seats; all in the history', async () => {
    const license = await issueLicense(server, 2);
    const fingerprint = newMachine();
    const activated = await request(`${server.url}/v1/activations`, { body: { key: license.key, fingerprint } });
    const token = activated.body.token as string;
    const staff = await adminClient(server);

    const suspended = await staff.submit(`/admin/licenses/${license.id}`, `/admin/licenses/${license.id}/suspend`, {});
    assert.equal(suspended.location, `/admin/licenses/${license.id}?done=suspended`);
    const refused = await request(`${server.url}/v1/validate`, { token, body: { fingerprint } });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, 'LICENSE_SUSPENDED');
    assert.equal((await request(`${server.url}/v1/activations`, { body: { key: license.key, fingerprint: newMachine() } })).body.error.code, 'LICENSE_SUSPENDED');
    // The agent, at its next check-in: refused while suspended (exit 12, saying so), working again once reinstated.
    const machine = new Machine();
    const due = Date.now() + POLICIES.permanent.leaseMs - POLICIES.permanent.renewWhenLeftMs + HOUR;
    await staff.submit(`/admin/licenses/${license.id}`, `/admin/licenses/${license.id}/reinstate`, {});
    assert.equal((await machine.run(['activate', '--key', license.key, '--server', server.url])).code, 0);
    await staff.submit(`/admin/licenses/${license.id}`, `/admin/licenses/${license.id}/suspend`, {});
    const agentRefused = await machine.run(['status'], { now: due });
    assert.equal(agentRefused.code, 12, agentRefused.stderr);
    assert.match(agentRefused.stderr, /^ferry: .*this license is suspended: contact Ferry support to have it reinstated/m);
    await staff.submit(`/admin/licenses/${license.id}`, `/admin/licenses/${license.id}/reinstate`, {});
    assert.equal((await request(`${server.url}/v1/validate`, { token, body: { fingerprint } })).status, 200, 'reinstated: works again');
    const agentBack = await machine.run(['status'], { now: due });
    assert.equal(agentBack.code, 0, agentBack.stderr);

    const lower = await staff.submit(`/admin/licenses/${license.id}`, `/admin/licenses/${license.id}/seats`, { seats: '0' });
    assert.equal(lower.status, 400);
    const raised = await staff.submit(`/admin/licenses/${license.id}`, `/admin/licenses/${license.id}/seats`, { seats: '10' });
    assert.equal(raised.location, `/admin/licenses/${license.id}?done=seats-changed`);
    assert.equal(await seatsOf(license.id), 10);

    const trial = await request(`${server.url}/v1/trials`, { body: { fingerprint: newMachine() } });
    const trialId = trial.body.license.id as number;
    const badDay = await staff.submit(`/admin/licenses/${trialId}`, `/admin/licenses/${trialId}/extend`, { ends: '2020-01-01' });
    assert.equal(badDay.status, 400);
    const newEnd = new Date(Date.now() + 60 * 86_400_000).toISOString().slice(0, 10);
    await staff.submit(`/admin/licenses/${trialId}`, `/admin/licenses/${trialId}/extend`, { ends: newEnd });
    const renewed = await request(`${server.url}/v1/validate`, { token: trial.body.token, body: {} });
    assert.equal(renewed.body.license.expiresAt, `${newEnd}T23:59:59.999Z`, 'the machine gets the new end at its next validation');

    const page = text((await staff.get(`/admin/licenses/${license.id}`)).html);
    for (const kind of ['suspended by staff', 'reinstated by staff', 'seats_changed 2 → 10 (by staff)']) assert.ok(page.includes(kind), `history shows ${kind}`);
    assert.match(text((await staff.get(`/admin/licenses/${trialId}`)).html), new RegExp(`extended ends ${newEnd}`));
  });

  it('searches licenses by email, organisation, key ending and id, pages through them, and exports them as CSV with formulas neutralised', async () => {
    const tag = `Pagers${Date.now().toString(36)}`;
    const customer = (organization: string) => ({ customer: { type: 'business', name: 'Grace', organization, address: '1 Way', country: 'DE' } });
    const issued = [];
    for (let i = 0; i < 52; i++) issued.push(await issueLicense(server, 1, customer(`${tag} ${i} Ltd`)));
    const formula = await issueLicense(server, 1, { email: `${tag.toLowerCase()}@example.org`, ...customer(`=HYPERLINK("http://evil.example","${tag}")`) });
    const staff = await adminClient(server);

    const first = await staff.get(`/admin/licenses?q=${encodeURIComponent(tag)}`);
    const rowsOf = (html: string) => [...html.matchAll(/<tr id="license-(\d+)"/g)].map((m) => Number(m[1]));
    const page1 = rowsOf(first.html);
    assert.equal(page1.length, 50);
    const older = /href="(\/admin\/licenses\?[^"]*before=\d+)"/.exec(first.html)![1]!.replace(/&amp;/g, '&');
    assert.ok(older.includes(`q=${tag}`), 'the next page keeps the search');
    const page2 = rowsOf((await staff.get(older)).html);
    assert.equal(page2.length, 3);
    assert.deepEqual([...page1, ...page2].sort((a, b) => a - b), [...issued.map((l) => l.id), formula.id].sort((a, b) => a - b));

    assert.deepEqual(rowsOf((await staff.get(`/admin/licenses?q=${tag.toLowerCase()}%40example.org`)).html), [formula.id], 'by email');
    assert.deepEqual(rowsOf((await staff.get(`/admin/licenses?q=${encodeURIComponent(`${tag} 7 Ltd`)}`)).html), [issued[7]!.id], 'by organisation');
    assert.deepEqual(rowsOf((await staff.get(`/admin/licenses?q=${issued[3]!.key.slice(-5)}`)).html), [issued[3]!.id], 'by key ending');
    assert.ok(rowsOf((await staff.get(`/admin/licenses?q=${issued[9]!.id}`)).html).includes(issued[9]!.id), 'by id');
    assert.deepEqual(rowsOf((await staff.get(`/admin/licenses?q=${encodeURIComponent(`${tag}%`)}`)).html), [], '% is a character, not a wildcard');

    const csv = await staff.get(`/admin/licenses.csv?q=${encodeURIComponent(tag)}`);
    assert.equal(csv.status, 200);
    assert.match(csv.headers.get('content-type')!, /^text\/csv/);
    const lines = csv.html.trimEnd().split('\r\n');
    assert.equal(lines[0], 'id,kind,state,seats,seats_used,key_hint,email,organization,customer_name,country,created_at,expires_at,revoked_at');
    assert.equal(lines.length, 1 + 53, 'every match, not one page');
    const evil = lines.find((l) => l.startsWith(`${formula.id},`))!;
    assert.ok(evil.includes(`"'=HYPERLINK(""http://evil.example"",""${tag}"")"`), `the formula is plain text: ${evil}`);
  });
});
