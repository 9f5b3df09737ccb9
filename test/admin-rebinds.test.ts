import assert from 'node:assert/strict';
import type { Pool } from 'mysql2/promise';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { issueLicense } from './support/admin.js';
import { checkPage, launchChromium, PHONE, screenshot } from './support/browser.js';
import { newDeviceKey, rebindBody } from './support/device-keys.js';
import { request } from './support/http.js';
import { newMachine } from './support/machines.js';
import { openDb, startServer, type TestServer } from './support/server.js';

/** Staff see in /admin why a license's machines were moved or refused, and allow more moves: in headless Chromium. */
describe('The admin area: moves to a new machine id and refused machines', function () {
  this.timeout(120_000);
  let server: TestServer;
  let db: Pool;
  let browser: Browser;
  let context: BrowserContext | undefined;
  before(async () => {
    server = await startServer();
    db = await openDb(server.config.databaseUrl);
    browser = await launchChromium();
  });
  afterEach(async () => {
    await context?.close();
    context = undefined;
  });
  after(async () => {
    await browser?.close();
    await db?.end();
    await server?.close();
  });

  /** A 1-seat license whose machine moved once, was refused a move signed by another key, and a second machine refused its seat. */
  async function licenseWithHistory(): Promise<number> {
    const license = await issueLicense(server, 1);
    const device = newDeviceKey();
    const from = newMachine();
    const activated = await request(`${server.url}/v1/activations`, { body: { key: license.key, fingerprint: from, devicePublicKey: device.publicKey } });
    const id = activated.body.activation.id as number;
    const challenge = async (token: string) =>
      (await request(`${server.url}/v1/activations/${id}/rebind-challenge`, { method: 'POST', token })).body.challenge as string;
    const to = newMachine();
    const moved = await request(`${server.url}/v1/activations/${id}/rebind`, {
      token: activated.body.token, body: rebindBody(id, from, to, await challenge(activated.body.token), device),
    });
    assert.equal(moved.status, 200, JSON.stringify(moved.body));
    const forged = await request(`${server.url}/v1/activations/${id}/rebind`, {
      token: moved.body.token, body: rebindBody(id, to, newMachine(), await challenge(moved.body.token), newDeviceKey()),
    });
    assert.equal(forged.status, 403);
    assert.equal((await request(`${server.url}/v1/activations`, { body: { key: license.key, fingerprint: newMachine() } })).status, 409);
    // Whatever a detail holds is shown as text, never as markup.
    await db.query("INSERT INTO license_events (license_id, kind, detail, occurred_at) VALUES (?, 'activation_velocity', ?, NOW(3))",
      [license.id, '<img src=x onerror="document.title=1">too fast']);
    return license.id;
  }

  const signIn = async (page: Page, path: string) => {
    await page.goto(`${server.url}${path}`);
    await page.waitForURL('**/admin/login?next=*');
    await page.getByLabel('Admin token').fill(server.adminToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${server.url}${path}`);
  };

  it("shows a license's moves and refusals with their reasons, and staff raise its rebind budget", async () => {
    const licenseId = await licenseWithHistory();
    context = await browser.newContext(PHONE);
    const page = await context.newPage();
    await signIn(page, `/admin/licenses/${licenseId}`);

    const moves = page.getByRole('region', { name: 'Moves to a new machine id' });
    assert.match(await moves.innerText(), /1 of 3 moves used in the last 365 days, 2 left \(the default, REBIND_BUDGET\)/);
    const moveRows = await moves.locator('tbody tr').allInnerTexts();
    assert.equal(moveRows.length, 2);
    assert.match(moveRows[0]!, /refused[\s\S]*not signed by the activation's device key/);
    assert.match(moveRows[1]!, /moved/);

    const refusals = await page.getByRole('region', { name: 'Refused machines' }).innerText();
    assert.match(refusals, /move to a new machine id refused\s+not signed by the activation's device key/);
    assert.match(refusals, /activation refused: every seat in use/);
    assert.match(refusals, /activation refused: too many new machines too fast\s+<img src=x onerror="document.title=1">too fast/);
    assert.equal(await page.locator('main img').count(), 0, 'the detail is not markup');
    assert.deepEqual(await checkPage(page), []);
    await screenshot(page, 'admin-license-rebinds');

    await page.getByLabel('Moves a year').fill('-1');
    await page.getByRole('button', { name: 'Set the rebind budget' }).click();
    await page.getByText('Enter the moves a year: a whole number from 0 to 1,000.').waitFor();

    await page.getByLabel('Moves a year').fill('5');
    await page.getByRole('button', { name: 'Set the rebind budget' }).click();
    await page.getByText('The rebind budget is changed').waitFor();
    assert.match(await moves.innerText(), /1 of 5 moves used in the last 365 days, 4 left \(this license's own budget\)/);
    assert.match(await page.getByRole('region', { name: 'History' }).innerText(), /rebind_budget_changed\s+3 → 5 a year \(by staff\)/);
    const [rows] = await db.query('SELECT rebind_budget FROM licenses WHERE id = ?', [licenseId]);
    assert.deepEqual(rows, [{ rebind_budget: 5 }]);
  });

  it('refuses the budget form without its CSRF token', async () => {
    const license = await issueLicense(server, 1);
    context = await browser.newContext();
    const page = await context.newPage();
    await signIn(page, `/admin/licenses/${license.id}`);
    const answer = await page.request.post(`${server.url}/admin/licenses/${license.id}/rebind-budget`, { form: { budget: '9' } });
    assert.equal(answer.status(), 403);
    const [rows] = await db.query('SELECT rebind_budget FROM licenses WHERE id = ?', [license.id]);
    assert.deepEqual(rows, [{ rebind_budget: null }]);
  });
});
