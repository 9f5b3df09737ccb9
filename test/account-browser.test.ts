import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { checkPage, launchChromium, PHONE, screenshot } from './support/browser.js';
import { request } from './support/http.js';
import { newMachine } from './support/machines.js';
import { orderIdOf, payByInvoice } from './support/payments.js';
import { until } from './support/processes.js';
import { linkIn, newPerson, startPortalServer, startTrial } from './support/portal.js';
import { openDb, type TestServer } from './support/server.js';
import { startSmtp, type TestSmtp } from './support/smtp.js';

/**
 * MyAccount in a real browser (headless Chromium, phone-sized), as a person goes through it:
 * register, confirm the address from the mail, log in, claim the trial the agent started, look at
 * the data, download it, correct it, opt out of marketing mail, buy, and delete the account.
 * Screenshots of each step go to test-artifacts/screenshots/.
 */
describe('MyAccount in a browser', function () {
  this.timeout(120_000);
  let smtp: TestSmtp;
  let server: TestServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const person = newPerson('browser');

  before(async () => {
    smtp = await startSmtp();
    server = await startPortalServer(smtp);
    browser = await launchChromium();
    context = await browser.newContext({ ...PHONE, acceptDownloads: true });
    page = await context.newPage();
  });
  after(async () => {
    await context?.close();
    await browser?.close();
    await server?.close();
    await smtp?.close();
  });

  /** Every page on the way: labels on every field, no sideways scrolling, no stack trace. */
  const looksRight = async (name: string) => {
    await screenshot(page, name);
    assert.deepEqual(await checkPage(page), [], `problems on ${page.url()}`);
  };
  const errorOf = (field: string) => page.locator(`#${field}-error`).innerText();

  it('goes from registering to deleting the account, as a person would', async () => {
    // Started with the address of the account that claims it: the machine's facts stay theirs to see.
    const trial = await startTrial(server, { hostname: 'ada-laptop', email: person.email });

    // Register: a form with errors first, shown next to each field.
    await page.goto(`${server.url}/account/register`);
    await looksRight('register');
    assert.equal(await page.locator('#news').isChecked(), false, 'news and offers are off by default');
    assert.match(await page.locator('#news-hint').innerText(), /registration reminders .* service notices/s);
    await page.getByRole('button', { name: 'Create account' }).click();
    assert.match(await errorOf('email'), /Enter your email address/);
    assert.match(await errorOf('password'), /Choose a password/);
    assert.match(await errorOf('age'), /13 or older/);
    assert.match(await errorOf('country'), /Choose your country/);
    await looksRight('register-errors');

    await page.getByLabel('Email address').fill(person.email);
    await page.getByLabel('Password').fill(person.password);
    await page.getByLabel('Your name').fill(person.name);
    await page.getByLabel('A business or organization').check();
    await page.getByLabel('Company or organization').fill(person.organization);
    await page.getByLabel('Postal address').fill(person.address);
    await page.getByLabel('Country').selectOption(person.country);
    await page.getByLabel('I am 13 years old or older').check();
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL('**/account/check-email');
    await looksRight('check-email');

    // Verify: follow the link in the message that arrived.
    const [verification] = await smtp.waitFor(person.email, 1);
    assert.equal(verification!.parsed.subject, 'Confirm your email address for Ferry');
    await page.goto(linkIn(verification!, `${server.url}/account/verify?token=`));
    await page.getByRole('heading', { name: 'Your email address is confirmed' }).waitFor();
    await looksRight('verified');

    // Log in.
    await page.getByRole('link', { name: 'Log in' }).click();
    await page.getByLabel('Email address').fill(person.email);
    await page.getByLabel('Password').fill('not my password');
    await page.getByRole('button', { name: 'Log in' }).click();
    assert.match(await errorOf('password'), /email address or the password is not right/);
    await page.getByLabel('Password').fill(person.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL('**/account/data');
    await looksRight('my-data-new');

    // Claim the trial the agent started: a wrong code first.
    await page.getByRole('link', { name: 'Claim a trial' }).click();
    await page.getByLabel('Claim code').fill('ABCDEFGHJK');
    await page.getByRole('button', { name: 'Claim the trial' }).click();
    assert.match(await errorOf('code'), /No unclaimed trial has this code/);
    await looksRight('claim-wrong-code');
    await page.getByLabel('Claim code').fill(trial.claimCode.toLowerCase().replace(/(.{5})/, '$1 '));
    await page.getByRole('button', { name: 'Claim the trial' }).click();
    await page.waitForURL('**/account/data?done=trial-claimed*');

    // See the data: profile, the trial and its machine, usage reports, mail sent.
    const main = page.locator('main');
    await main.getByText('The trial is claimed').waitFor();
    const shown = await main.innerText();
    for (const expected of [person.name, person.address, person.organization, person.email, `Trial ${trial.licenseId}`, 'ada-laptop', 'Confirm your email address for Ferry']) {
      assert.ok(shown.includes(expected), `My data shows ${expected}`);
    }
    assert.match(shown, /2 reports in all/);
    await looksRight('my-data-claimed');

    // Download it: one JSON file with all of the above.
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download my data (JSON)' }).click()]);
    assert.match(download.suggestedFilename(), /^ferry-my-data-\d{4}-\d\d-\d\d\.json$/);
    const data = JSON.parse(await readFile((await download.path())!, 'utf8'));
    assert.equal(data.profile.email, person.email);
    assert.equal(data.profile.name, person.name);
    assert.equal(data.licenses[0].id, trial.licenseId);
    assert.equal(data.licenses[0].machines[0].hostname, 'ada-laptop');
    assert.equal(data.usageReports.length, 2);
    assert.ok(data.mailSent.some((m: { template: string }) => m.template === 'verify-email'));
    assert.deepEqual(data.consentHistory.map((c: { purpose: string; granted: boolean; source: string }) => [c.purpose, c.granted, c.source]), [['news', false, 'registration']]);
    assert.ok(data.accessLog.some((a: { action: string }) => a.action === 'data.viewed'));

    // Correct the profile: a bad value first, then the new address.
    await page.getByRole('link', { name: 'Profile', exact: true }).click();
    await page.getByLabel('Your name').fill('');
    await page.getByRole('button', { name: 'Save' }).click();
    assert.match(await errorOf('name'), /Enter your name/);
    await looksRight('profile-error');
    await page.getByLabel('Your name').fill(person.name);
    await page.getByLabel('Postal address').fill('7 Harbour Lane, 20095 Hamburg');
    await page.getByRole('button', { name: 'Save' }).click();
    await main.getByText('Your profile is saved.').waitFor();
    await looksRight('profile-saved');
    await page.getByRole('link', { name: 'My data' }).click();
    assert.ok((await main.innerText()).includes('7 Harbour Lane, 20095 Hamburg'));

    // Opt out of marketing mail: effective at once, recorded in the consent history.
    await page.getByRole('link', { name: 'Mail choices' }).click();
    assert.equal(await page.getByLabel('Only reminders before a trial ends').isChecked(), true);
    await page.getByLabel('No marketing mail at all').check();
    await page.getByRole('button', { name: 'Save my choice' }).click();
    await main.getByText('Your mail choices are saved').waitFor();
    await looksRight('mail-choices');
    const db = await openDb(server.config.databaseUrl);
    try {
      const [optOut] = await db.query('SELECT source FROM mail_opt_outs WHERE email = ?', [person.email]);
      assert.deepEqual(optOut, [{ source: 'account' }]);
    } finally {
      await db.end();
    }

    // Buy: turn the trial into a permanent license with 3 seats; the key is shown once and mailed.
    await page.getByRole('link', { name: 'Buy' }).click();
    await page.getByLabel('Number of machines (seats)').fill('many');
    await page.getByRole('button', { name: 'Continue to checkout' }).click();
    assert.match(await errorOf('seats'), /whole number from 1 to 1000/);
    await page.getByLabel('Number of machines (seats)').fill('3');
    assert.equal(await page.getByLabel(new RegExp(`^Trial ${trial.licenseId}`)).isChecked(), true);
    await page.getByRole('button', { name: 'Continue to checkout' }).click();
    await page.waitForURL('**/account/orders/*');
    await looksRight('checkout');
    // No payment provider here: the order says how to pay by invoice, and nothing is issued until staff mark it paid.
    assert.match(await main.innerText(), /paid by invoice\. Nothing has been charged/);
    assert.equal(await page.getByRole('button', { name: /Pay/ }).count(), 0, 'nothing pretends to charge');
    assert.equal((await payByInvoice(server, orderIdOf(new URL(page.url()).pathname))).status, 303);
    await page.reload();
    await main.getByText(/This order is complete/).waitFor();
    await looksRight('order-paid');
    const receipt = await until('the receipt', async () => (await smtp.waitFor(person.email, 2)).find((m) => /Your Ferry license/.test(m.parsed.subject ?? '')));
    const key = /ferry activate --key (\S+)/.exec(receipt.parsed.text ?? '')?.[1] ?? '';
    assert.match(key, /^[0-9A-Z-]{25,}$/, 'the receipt carries the key');
    const activation = await request(`${server.url}/v1/activations`, { body: { key, fingerprint: newMachine() } });
    assert.equal(activation.status, 201, 'the key bought works');
    assert.equal(activation.body.license.seats, 3);
    const browserType = await page.evaluate<string>('navigator.userAgent');
    await page.getByRole('link', { name: 'My data' }).click();
    assert.ok((await main.innerText()).includes(browserType), 'the order shows the browser type recorded');

    // Delete: the page says before confirming that filed export reports stay.
    await page.getByRole('link', { name: 'Delete account' }).click();
    assert.match(await page.locator('#kept').innerText(), /export-compliance reports that were already filed are kept/);
    await page.getByLabel('Your password, to confirm').fill('wrong password!');
    await page.getByRole('button', { name: 'Delete my account and data' }).click();
    assert.match(await errorOf('password'), /not your password/);
    await looksRight('delete');
    await page.getByLabel('Your password, to confirm').fill(person.password);
    await page.getByRole('button', { name: 'Delete my account and data' }).click();
    await page.getByRole('heading', { name: 'Your account is deleted' }).waitFor();
    await looksRight('deleted');
    const confirmation = (await smtp.waitFor(person.email, 3)).find((m) => m.parsed.subject === 'Your Ferry account has been deleted');
    assert.ok(confirmation, 'a confirmation mail was sent');

    // Logged out everywhere, and the old password no longer opens anything.
    await page.goto(`${server.url}/account/data`);
    await page.waitForURL('**/account/login?next=*');
    await page.getByLabel('Email address').fill(person.email);
    await page.getByLabel('Password').fill(person.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    assert.match(await errorOf('password'), /not right/);
  });

  it('keeps the age confirmation ticked when another field is wrong', async () => {
    const someone = newPerson('tick');
    await page.goto(`${server.url}/account/register`);
    await page.getByLabel('Email address').fill(someone.email);
    await page.getByLabel('Password').fill(someone.password);
    await page.getByLabel('Your name').fill(someone.name);
    await page.getByLabel('Postal address').fill(someone.address);
    await page.getByLabel('I am 13 years old or older').check();
    // The country is left out.
    await page.getByRole('button', { name: 'Create account' }).click();
    assert.match(await errorOf('country'), /Choose your country/);
    assert.equal(await page.getByLabel('I am 13 years old or older').isChecked(), true, 'the tick survives the error');
    assert.equal(await page.locator('#age-error').count(), 0);
    await page.getByLabel('Password').fill(someone.password);
    await page.getByLabel('Country').selectOption(someone.country);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL('**/account/check-email');
  });
});
