import assert from 'node:assert/strict';
import type { Pool } from 'mysql2/promise';
import { LIMITS } from '../server/account/limits.js';
import { newPerson, signUp, startPortalWorld, type PortalWorld, startTrial, text, uniqueEmail, type PortalClient } from './support/portal.js';
import { until } from './support/processes.js';
import { type TestServer } from './support/server.js';
import type { TestSmtp } from './support/smtp.js';

describe('MyAccount: changing the email address, and My data with bad stored values', function () {
  this.timeout(180_000);
  let smtp: TestSmtp;
  let server: TestServer;
  let db: Pool;
  let world: PortalWorld;
  before(async () => {
    world = await startPortalWorld();
    ({ smtp, server, db } = world);
  });
  after(() => world?.close());

  /** Every mail job handed to the worker has been sent (or given up): nothing more will arrive. */
  const mailQueueDrained = () =>
    until('the mail queue to drain', async () => {
      const counts = await server.app.jobs.queues.mail.getJobCounts();
      return counts.waiting + counts.active + counts.delayed === 0;
    }, 60_000, 100);

  const changeEmail = (client: PortalClient, email: string, password: string) =>
    client.submit('/account/email', '/account/email', { email, password });

  it("answers alike whether or not the new address has an account, and tells that account's owner instead", async () => {
    const ada = newPerson('change-ada');
    const bob = newPerson('change-bob');
    const client = await signUp(server, smtp, ada);
    await signUp(server, smtp, bob);
    const free = uniqueEmail('change-free');

    const toFree = await changeEmail(client, free, ada.password);
    const toTaken = await changeEmail(client, bob.email, ada.password);
    assert.equal(toTaken.status, toFree.status);
    assert.equal(text(toTaken.html).replace(bob.email, 'X'), text(toFree.html).replace(free, 'X'));
    assert.doesNotMatch(text(toTaken.html), /another account|already|in use/i);

    // The free address gets its link; Bob gets a notice without any link that would move an account.
    const [link] = await smtp.waitFor(free, 1);
    assert.match(link!.parsed.text ?? '', /\/account\/verify\?token=/);
    const bobMail = await smtp.waitFor(bob.email, 2); // the registration's link, then the notice
    const notice = bobMail[1]!;
    assert.match(notice.parsed.subject ?? '', /another Ferry account/);
    assert.doesNotMatch(notice.parsed.text ?? '', /token=/);
    const [[bobRow]] = (await db.query('SELECT email FROM customers WHERE email = ?', [bob.email])) as unknown as [{ email: string }[]];
    assert.equal(bobRow?.email, bob.email, "Bob's account is unchanged");
  });

  it('sends a stranger at most as many mails an hour as registration and password reset do', async () => {
    const eve = newPerson('change-eve');
    const client = await signUp(server, smtp, eve);
    const stranger = uniqueEmail('change-stranger');
    const max = LIMITS.mailPerAccount.max;
    const statuses: number[] = [];
    for (let i = 0; i < max + 3; i++) {
      const answer = await changeEmail(client, stranger, eve.password);
      statuses.push(answer.status);
      if (answer.status === 429) assert.match(text(answer.html), /Try again in \d+ minutes?/);
    }
    assert.deepEqual(statuses, [...Array(max).fill(200), 429, 429, 429]);
    await smtp.waitFor(stranger, max);
    await mailQueueDrained();
    assert.equal(smtp.to(stranger).length, max, `${smtp.to(stranger).length} mails to a stranger`);
  });

  it('shows My data and its download even when a stored time is a zero date', async () => {
    const kim = newPerson('zero-date');
    const client = await signUp(server, smtp, kim);
    const trial = await startTrial(server);
    assert.equal((await client.submit('/account/claim', '/account/claim', { code: trial.claimCode })).status, 303);
    // What a leap-second event became before times were checked: MariaDB's zero date.
    const connection = await db.getConnection();
    try {
      await connection.query("SET SESSION sql_mode = ''");
      await connection.query(
        "INSERT INTO usage_events (activation_id, license_id, fingerprint, occurred_at, kind, locale, ip, received_at) VALUES (?, ?, ?, '0000-00-00 00:00:00', 'put', 'en-US', '127.0.0.1', NOW(3))",
        [trial.activationId, trial.licenseId, trial.fingerprint],
      );
    } finally {
      connection.release();
    }
    const page = await client.get('/account/data');
    assert.equal(page.status, 200, text(page.html).slice(0, 300));
    const download = await client.get('/account/data.json');
    assert.equal(download.status, 200, download.html.slice(0, 300));
    const usage = (JSON.parse(download.html) as { usageReports: { at: string | null; kind: string }[] }).usageReports;
    assert.equal(usage.length, 3);
    assert.equal(usage.filter((u) => u.at === null).length, 1, 'the zero date is shown as missing');
  });
});
