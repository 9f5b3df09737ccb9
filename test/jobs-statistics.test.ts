import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Pool } from 'mysql2/promise';
import { countryOf } from '../reports/country.js';
import { previousHalfYear } from '../server/jobs/export-report.js';
import { issueLicense } from './support/admin.js';
import { request } from './support/http.js';
import { newMachine } from './support/machines.js';
import { openDb, startServer, startServerWorld, type ServerWorld, type TestServer } from './support/server.js';

describe('usage roll-up and piracy signals', () => {
  let server: TestServer;
  let db: Pool;
  const today = new Date().toISOString().slice(0, 10);

  let world: ServerWorld;
  before(async () => {
    world = await startServerWorld();
    ({ server, db } = world);
  });
  after(() => world?.close());

  async function trial(locale: string) {
    const fingerprint = newMachine();
    const res = await request(`${server.url}/v1/trials`, { body: { fingerprint, locale } });
    return { ...res.body, fingerprint };
  }

  const report = (token: string, events: { kind: string; at?: string; locale?: string }[]) =>
    request(`${server.url}/v1/usage`, {
      token,
      body: { events: events.map((e, i) => ({ at: e.at ?? new Date(Date.now() - 60_000 + i).toISOString(), locale: e.locale ?? 'en-US', kind: e.kind })) },
    });

  async function rollUp(day: string) {
    const job = await server.app.jobs.queues.usageRollup.add({ day });
    return job.finished();
  }

  it('counts installations, active machines, uses and countries, and fires each piracy signal on crafted data', async () => {
    // Six trials, five from one address (every test request comes from 127.0.0.1)…
    const trials = [await trial('en-GB'), await trial('de-AT'), await trial('de-AT'), await trial('fr-FR'), await trial('fr-FR'), await trial('fr-FR')];
    // …one of them seen from a public UK address: the address wins over the locale.
    await db.query("UPDATE activations SET ip = '81.2.69.160' WHERE id = ?", [trials[3]!.activation.id]);
    await report(trials[0]!.token, [{ kind: 'put', locale: 'en-GB' }, { kind: 'get', locale: 'en-GB' }, { kind: 'sync', locale: 'en-GB' }]);
    await report(trials[1]!.token, [{ kind: 'ls', locale: 'de-AT' }, { kind: 'clock_set_back', locale: 'de-AT' }]);
    // A key tried on more machines than its one seat.
    const license = await issueLicense(server, 1);
    for (let i = 0; i < 3; i++) await request(`${server.url}/v1/activations`, { body: { key: license.key, fingerprint: newMachine() } });
    // A token presented from another machine.
    await request(`${server.url}/v1/validate`, { token: trials[2]!.token, body: { fingerprint: newMachine() } });

    const result = (await rollUp(today)) as { day: string; signals: number };
    assert.equal(result.day, today);

    const [[daily]] = (await db.query('SELECT * FROM usage_daily WHERE day = ?', [today])) as unknown as [Record<string, number>[]];
    assert.equal(daily!.installations, 7, 'six trial machines and the one that got the seat');
    assert.equal(daily!.new_installations, 7);
    assert.equal(daily!.uses, 4, 'clock_set_back is not a use');
    assert.equal(daily!.active_machines_day, 7, 'two reported use; all seven checked in when activating');

    const [countries] = await db.query('SELECT country, trials, active_machines FROM usage_daily_countries WHERE day = ? ORDER BY country', [today]);
    assert.deepEqual(countries, [
      { country: 'AT', trials: 2, active_machines: 1 },
      { country: 'FR', trials: 2, active_machines: 0 },
      { country: 'GB', trials: 2, active_machines: 1 },
    ]);
    const [frequency] = await db.query('SELECT uses_bucket, machines FROM usage_daily_frequency WHERE day = ? ORDER BY uses_bucket', [today]);
    assert.deepEqual(frequency, [
      { uses_bucket: '1', machines: 1 }, { uses_bucket: '2-5', machines: 1 }, { uses_bucket: '21+', machines: 0 }, { uses_bucket: '6-20', machines: 0 },
    ]);

    const [signals] = await db.query('SELECT kind, subject, count FROM piracy_signals WHERE day = ? ORDER BY kind', [today]);
    const byKind = Object.fromEntries((signals as { kind: string; subject: string; count: number }[]).map((s) => [s.kind, s]));
    assert.deepEqual(Object.keys(byKind).sort(), ['clock_set_back', 'key_over_seats', 'token_from_other_machine', 'trials_from_one_address']);
    assert.equal(byKind.key_over_seats!.subject, `license:${license.id}`);
    assert.equal(byKind.key_over_seats!.count, 2);
    assert.equal(byKind.clock_set_back!.subject, `license:${trials[1]!.license.id}`);
    assert.equal(byKind.token_from_other_machine!.subject, `license:${trials[2]!.license.id}`);
    assert.match(byKind.trials_from_one_address!.subject, /^address:[0-9a-f]{16}$/);
    assert.equal(byKind.trials_from_one_address!.count, 5);
  });

  it('holds no personal data in the aggregates: no address, fingerprint or email', async () => {
    const t = await trial('en-US');
    await report(t.token, [{ kind: 'put' }]);
    await rollUp(today);
    const [machines] = await db.query('SELECT DISTINCT fingerprint, ip FROM activations');
    const secrets = (machines as { fingerprint: string; ip: string }[]).flatMap((m) => [m.fingerprint, m.ip]).filter(Boolean);
    for (const table of ['usage_daily', 'usage_daily_countries', 'usage_daily_frequency', 'piracy_signals']) {
      const [rows] = await db.query(`SELECT * FROM ${table}`);
      const text = JSON.stringify(rows);
      for (const secret of secrets) assert.ok(!text.includes(secret), `${table} holds ${secret}`);
    }
  });

  it('counts an event that arrives late (a spool sent days later, or a clock set back) on the day it was received', async () => {
    const t = await trial('en-US');
    // A trial started five days ago, whose spool of uses from three days ago arrives only today.
    await db.query('UPDATE licenses SET created_at = ? WHERE id = ?', [new Date(Date.now() - 5 * 86_400_000), t.license.id]);
    const threeDaysAgo = new Date(Date.now() - 3 * 86_400_000);
    await rollUp(threeDaysAgo.toISOString().slice(0, 10));
    await rollUp(today);
    const [[before]] = (await db.query('SELECT uses FROM usage_daily WHERE day = ?', [today])) as unknown as [{ uses: number }[]];
    const res = await report(t.token, [{ kind: 'put', at: threeDaysAgo.toISOString() }, { kind: 'get', at: new Date(threeDaysAgo.getTime() + 1).toISOString() }]);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    await rollUp(today);
    const [[after]] = (await db.query('SELECT uses FROM usage_daily WHERE day = ?', [today])) as unknown as [{ uses: number }[]];
    assert.equal(after!.uses, before!.uses + 2, 'the late uses count, on the day they arrived');
  });

  it('recomputes a day in place rather than adding to it', async () => {
    await rollUp(today);
    await rollUp(today);
    const [rows] = await db.query('SELECT COUNT(*) AS n FROM usage_daily WHERE day = ?', [today]);
    assert.equal((rows as { n: number }[])[0]!.n, 1);
  });
});

describe('retention purge', () => {
  it('removes the usage events of trials that ended longer ago than the retention, and nothing else', async () => {
    const server = await startServer({ retainLapsedTrialUsageMs: 86_400_000 });
    const db = await openDb(server.config.databaseUrl);
    try {
      const old = await request(`${server.url}/v1/trials`, { body: { fingerprint: newMachine() } });
      const current = await request(`${server.url}/v1/trials`, { body: { fingerprint: newMachine() } });
      for (const t of [old, current]) {
        await request(`${server.url}/v1/usage`, { token: t.body.token, body: { events: [{ at: new Date().toISOString(), locale: 'en-US', kind: 'put' }] } });
      }
      await db.query('UPDATE licenses SET expires_at = ? WHERE id = ?', [new Date(Date.now() - 2 * 86_400_000), old.body.license.id]);
      const job = await server.app.jobs.queues.retention.add({});
      assert.equal((await job.finished()).lapsedTrialUsageEvents, 1);
      const [rows] = await db.query('SELECT license_id FROM usage_events');
      assert.deepEqual(rows, [{ license_id: current.body.license.id }]);
    } finally {
      await db.end();
      await server.close();
    }
  });
});

describe('retention of every personal field', () => {
  it('purges each personal field after its period, and keeps what is within it', async () => {
    const server = await startServer();
    const db = await openDb(server.config.databaseUrl);
    const { config } = server;
    const longAgo = (ms: number) => new Date(Date.now() - ms - 86_400_000);
    try {
      const old = await request(`${server.url}/v1/trials`, { body: { fingerprint: newMachine(), email: 'old-trial@example.org', hostname: 'old-laptop' } });
      const recent = await request(`${server.url}/v1/trials`, { body: { fingerprint: newMachine(), email: 'recent-trial@example.org', hostname: 'new-laptop' } });
      for (const t of [old, recent]) {
        await request(`${server.url}/v1/usage`, { token: t.body.token, body: { events: [{ at: new Date().toISOString(), locale: 'en-US', kind: 'put' }] } });
        // A token presented from another machine: a license event with the client's address.
        await request(`${server.url}/v1/validate`, { token: t.body.token, body: { fingerprint: newMachine() } });
      }
      const oldId = old.body.license.id;
      // The old trial ended, was last seen, and had its mail, events and signal long ago.
      await db.query('UPDATE licenses SET expires_at = ? WHERE id = ?', [longAgo(config.retainTrialEmailMs), oldId]);
      await db.query('UPDATE activations SET created_at = ?, last_validated_at = ? WHERE license_id = ?', [longAgo(config.retainIpAddressesMs), longAgo(config.retainIpAddressesMs), oldId]);
      await db.query('UPDATE license_events SET occurred_at = ? WHERE license_id = ?', [longAgo(config.retainIpAddressesMs), oldId]);
      // The old trial's usage events go with it (RETAIN_TRIAL_USAGE); a running trial's early report loses its address.
      await db.query('UPDATE usage_events SET received_at = ? WHERE license_id = ?', [longAgo(config.retainIpAddressesMs), recent.body.license.id]);
      await request(`${server.url}/v1/usage`, { token: recent.body.token, body: { events: [{ at: new Date().toISOString(), locale: 'en-US', kind: 'get' }] } });
      await db.query(
        `INSERT INTO sent_mail (idempotency_key, kind, template, to_email, license_id, status, claimed_at) VALUES
           ('test:old', 'marketing', 'reminder', 'old-trial@example.org', ?, 'sent', ?), ('test:recent', 'marketing', 'reminder', 'recent-trial@example.org', ?, 'sent', NOW(3))`,
        [oldId, longAgo(config.retainTrialEmailMs), recent.body.license.id],
      );
      // A news send to trial users finished long ago, and one finished today.
      for (const [name, finished] of [['old', longAgo(config.retainTrialEmailMs)], ['recent', new Date()]] as const) {
        const [campaign] = await db.query("INSERT INTO campaigns (kind, subject, body, state, created_at, finished_at) VALUES ('news', ?, 'text', 'sent', ?, ?)", [name, finished, finished]);
        await db.query("INSERT INTO campaign_recipients (campaign_id, email, status) VALUES (?, ?, 'sent')", [(campaign as { insertId: number }).insertId, `${name}-trial@example.org`]);
      }
      const oldDay = longAgo(config.retainAddressSignalsMs).toISOString().slice(0, 10);
      await db.query(
        `INSERT INTO piracy_signals (day, kind, subject, count, detail) VALUES
           (?, 'trials_from_one_address', 'address:00112233aabbccdd', 5, 'old'), (CURRENT_DATE, 'trials_from_one_address', 'address:99887766aabbccdd', 5, 'recent'),
           (?, 'clock_set_back', 'license:1', 1, 'names no address')`,
        [oldDay, oldDay],
      );
      // A move to a new machine id asked for long ago, and one today: the address of the old one goes.
      await db.query(
        `INSERT INTO activation_rebinds (license_id, activation_id, from_fingerprint, to_fingerprint, ip, outcome, reason, occurred_at)
           SELECT license_id, id, fingerprint, fingerprint, '127.0.0.1', 'refused', 'bad_signature', IF(license_id = ?, ?, NOW(3)) FROM activations WHERE license_id IN (?)`,
        [oldId, longAgo(config.retainIpAddressesMs), [oldId, recent.body.license.id]],
      );

      const result = await (await server.app.jobs.queues.retention.add({})).finished();
      assert.deepEqual({ ...result, lapsedTrialUsageEvents: undefined, cancelledAccounts: undefined }, {
        lapsedTrialUsageEvents: undefined, cancelledAccounts: undefined,
        trialEmails: 1, trialHostnames: 1, trialMailAddresses: 1, campaignAddresses: 1, activationAddresses: 1, licenseEventAddresses: 1, rebindAddresses: 1, usageEventAddresses: 1, addressSignals: 1,
      });
      assert.deepEqual((await db.query('SELECT license_id, ip FROM activation_rebinds WHERE license_id IN (?) ORDER BY license_id', [[oldId, recent.body.license.id]]))[0],
        [{ license_id: oldId, ip: null }, { license_id: recent.body.license.id, ip: '127.0.0.1' }]);

      const emails = async () => (await db.query('SELECT id, email FROM licenses WHERE id IN (?) ORDER BY id', [[oldId, recent.body.license.id]]))[0];
      assert.deepEqual(await emails(), [{ id: oldId, email: null }, { id: recent.body.license.id, email: 'recent-trial@example.org' }]);
      assert.deepEqual((await db.query('SELECT idempotency_key, to_email FROM sent_mail WHERE idempotency_key LIKE ? ORDER BY idempotency_key', ['test:%']))[0],
        [{ idempotency_key: 'test:old', to_email: null }, { idempotency_key: 'test:recent', to_email: 'recent-trial@example.org' }]);
      assert.deepEqual((await db.query('SELECT license_id, ip, hostname FROM activations WHERE license_id IN (?) ORDER BY license_id', [[oldId, recent.body.license.id]]))[0],
        [{ license_id: oldId, ip: null, hostname: null }, { license_id: recent.body.license.id, ip: '127.0.0.1', hostname: 'new-laptop' }]);
      assert.deepEqual((await db.query('SELECT license_id, ip FROM license_events WHERE license_id IN (?) ORDER BY license_id', [[oldId, recent.body.license.id]]))[0],
        [{ license_id: oldId, ip: null }, { license_id: recent.body.license.id, ip: '127.0.0.1' }]);
      assert.deepEqual((await db.query('SELECT kind, ip FROM usage_events WHERE license_id = ? ORDER BY id', [recent.body.license.id]))[0],
        [{ kind: 'put', ip: null }, { kind: 'get', ip: '127.0.0.1' }]);
      assert.deepEqual((await db.query('SELECT c.subject, r.email FROM campaign_recipients r JOIN campaigns c ON c.id = r.campaign_id ORDER BY c.id'))[0], [
        { subject: 'old', email: `erased:${createHash('sha256').update('old-trial@example.org').digest('hex')}` },
        { subject: 'recent', email: 'recent-trial@example.org' },
      ]);
      assert.deepEqual((await db.query("SELECT detail FROM piracy_signals WHERE kind = 'trials_from_one_address'"))[0], [{ detail: 'recent' }]);
      assert.deepEqual((await db.query("SELECT detail FROM piracy_signals WHERE kind = 'clock_set_back'"))[0], [{ detail: 'names no address' }], 'a signal naming a license stays');
    } finally {
      await db.end();
      await server.close();
    }
  });
});

describe('the half-yearly export-compliance schedule', () => {
  it('files the half-year just ended, once', async () => {
    assert.deepEqual(previousHalfYear(new Date('2027-01-01T02:00:00Z')), { from: '2026-07-01', to: '2026-12-31' });
    assert.deepEqual(previousHalfYear(new Date('2026-07-01T02:00:00Z')), { from: '2026-01-01', to: '2026-06-30' });
    const server = await startServer();
    try {
      const first = await (await server.app.jobs.queues.exportReport.add({})).finished();
      const second = await (await server.app.jobs.queues.exportReport.add({})).finished();
      assert.equal(second.reportId, first.reportId);
      assert.equal(second.alreadyFiled, true);
    } finally {
      await server.close();
    }
  });

  it('reads the country from the address, else from the locale', () => {
    assert.equal(countryOf('81.2.69.160', 'de-DE'), 'GB');
    assert.equal(countryOf('127.0.0.1', 'de-AT'), 'AT');
    assert.equal(countryOf(null, 'zh-Hant-TW'), 'TW');
    assert.equal(countryOf(null, 'en'), 'ZZ');
  });
});
