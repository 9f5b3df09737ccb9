import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { checkPage, launchChromium, PHONE, screenshot } from './support/browser.js';
import { startPortalServer } from './support/portal.js';
import type { TestServer } from './support/server.js';
import { startSmtp, type TestSmtp } from './support/smtp.js';

const DAY = 86_400_000;

describe('the privacy policy page', () => {
  let smtp: TestSmtp;
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  before(async () => {
    smtp = await startSmtp();
    // Periods unlike the defaults: the page must show the running settings.
    server = await startPortalServer(smtp, {
      retainCancelledAccountsMs: 400 * DAY, retainTrialEmailMs: 21 * DAY, retainIpAddressesMs: 45 * DAY,
      retainLapsedTrialUsageMs: 60 * DAY, retainAddressSignalsMs: 200 * DAY, companyPostalAddress: 'Ferry Privacy Ltd, 3 Dock Road, Hull HU1 1AA',
    });
    browser = await launchChromium();
    page = await (await browser.newContext(PHONE)).newPage();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    await smtp?.close();
  });

  it('lists what is kept and for how long, from the retention settings, with the rights and the postal address', async () => {
    await page.goto(`${server.url}/privacy`);
    assert.equal(new URL(page.url()).pathname, '/account/privacy');
    await screenshot(page, 'privacy');
    assert.deepEqual(await checkPage(page), []);
    const table = await page.locator('#retention').innerText();
    for (const period of ['400 days after you cancel', '21 days after it ends', '45 days', '60 days after the trial ends', '200 days']) {
      assert.ok(table.includes(period), `the table says ${period}`);
    }
    const text = await page.locator('main').innerText();
    assert.match(text, /download it, correct it/);
    assert.match(text, /Ferry Privacy Ltd, 3 Dock Road, Hull HU1 1AA/);
  });

  it('is linked from the footer of every portal page and from the Buy page', async () => {
    for (const path of ['/account/login', '/account/register', '/account/forgot']) {
      await page.goto(`${server.url}${path}`);
      await page.locator('footer').getByRole('link', { name: 'Privacy policy' }).click();
      await page.waitForURL('**/account/privacy');
    }
    const buy = (await import('node:fs/promises')).readFile(new URL('../../server/account/views/buy.eta', import.meta.url), 'utf8');
    assert.match(await buy, /<a href="\/account\/privacy">privacy policy<\/a>/);
  });
});
