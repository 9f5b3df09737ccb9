import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { newPerson, signUp, startPortalServer, startTrial, text, uniqueEmail, type PortalClient } from './support/portal.js';
import { openDb, type TestServer } from './support/server.js';
import { startSmtp, type TestSmtp } from './support/smtp.js';

/**
 * Claiming a trial in MyAccount gives the claimant the trial, not the data of whoever ran it: a claim
 * code can be passed on (read off a screen, forwarded), and the trial's email address, its machine's
 * IP addresses and host name belong to that person.
 */
describe('MyAccount: claiming a trial', function () {
  this.timeout(120_000);
  let smtp: TestSmtp;
  let server: TestServer;
  before(async () => {
    smtp = await startSmtp();
    server = await startPortalServer(smtp, { trustProxy: true });
  });
  after(async () => {
    await server?.close();
    await smtp?.close();
  });

  const someAddress = () => `203.0.113.${10 + randomBytes(1)[0]! % 200}`;

  /** The claim, then the page it leads to (the confirmation) and the data download. */
  async function claim(client: PortalClient, code: string): Promise<{ page: string; json: string }> {
    const claimed = await client.submit('/account/claim', '/account/claim', { code });
    assert.equal(claimed.status, 303, text(claimed.html));
    const page = await client.get(claimed.location!);
    assert.equal(page.status, 200);
    assert.match(text(page.html), /The trial is claimed/);
    return { page: page.html, json: (await client.get('/account/data.json')).html };
  }

  it('shows a claimant the trial, but not the email, IP address or host name of the person who ran it', async () => {
    const runner = { email: uniqueEmail('runner'), hostname: `runner-laptop-${randomBytes(3).toString('hex')}`, ip: someAddress() };
    const trial = await startTrial(server, runner);
    const claimant = await signUp(server, smtp, newPerson('claimant'));

    const { page, json } = await claim(claimant, trial.claimCode);
    assert.match(text(page), new RegExp(`Trial ${trial.licenseId}\\b`));
    for (const [what, shown] of [['page', page], ['data.json', json]] as const) {
      for (const secret of [runner.email, runner.hostname, runner.ip]) assert.ok(!shown.includes(secret), `the ${what} shows "${secret}"`);
    }
    const data = JSON.parse(json);
    assert.equal(data.licenses[0].machines.length, 1, 'the machine is listed (it can be deactivated)');
    assert.equal(data.usageReports.length, 2, 'its use is listed, without the address');

    const db = await openDb(server.config.databaseUrl);
    try {
      const [rows] = await db.query('SELECT email FROM licenses WHERE id = ?', [trial.licenseId]);
      assert.equal((rows as { email: string | null }[])[0]!.email, null, 'reminders no longer go to the runner');
    } finally {
      await db.end();
    }
  });

  it('keeps the machine\'s facts for a claimant who started the trial with their own address', async () => {
    const person = newPerson('owner');
    const facts = { email: person.email, hostname: `owner-desk-${randomBytes(3).toString('hex')}`, ip: someAddress() };
    const trial = await startTrial(server, facts);
    const owner = await signUp(server, smtp, person);
    const { page } = await claim(owner, trial.claimCode);
    for (const fact of [facts.hostname, facts.ip]) assert.ok(page.includes(fact), `My data shows ${fact}`);
    assert.match(text(page), new RegExp(`Email on the license ${person.email.replace(/[.+]/g, '\\$&')}`));
  });
});
