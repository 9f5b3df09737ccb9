import assert from 'node:assert/strict';
import { USAGE_BATCH_MAX } from '../licensing/index.js';
import { issueLicense } from './support/admin.js';
import { request } from './support/http.js';
import { newMachine } from './support/machines.js';
import { openDb, startServer, type TestServer } from './support/server.js';

describe('POST /v1/usage', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  const report = (token: string, events: unknown[]) => request(`${server.url}/v1/usage`, { body: { events }, token });

  it('stores a trial\'s events with the address the server saw, and a resent batch only once', async () => {
    const fingerprint = newMachine();
    const trial = await request(`${server.url}/v1/trials`, { body: { fingerprint } });
    const start = Date.parse(trial.body.license.createdAt);
    const events = [
      { at: new Date(start + 1_000).toISOString(), locale: 'en-US', kind: 'put' },
      { at: new Date(start + 1_250).toISOString(), locale: 'en-US', kind: 'get' },
    ];
    const first = await report(trial.body.token, events);
    assert.equal(first.status, 202);
    assert.deepEqual(first.body, { accepted: 2, duplicates: 0, rejected: 0, refusals: [] });
    const retried = await report(trial.body.token, [...events, { at: new Date(start + 60_000).toISOString(), locale: 'de-DE', kind: 'sync' }]);
    assert.deepEqual(retried.body, { accepted: 1, duplicates: 2, rejected: 0, refusals: [] });
    const db = await openDb(server.config.databaseUrl);
    try {
      const [rows] = await db.query('SELECT kind, locale, ip, fingerprint, occurred_at FROM usage_events WHERE fingerprint = ? ORDER BY occurred_at', [fingerprint]);
      const stored = rows as { kind: string; locale: string; ip: string; fingerprint: string; occurred_at: Date }[];
      assert.deepEqual(stored.map((r) => r.kind), ['put', 'get', 'sync']);
      assert.ok(stored.every((r) => r.ip === '127.0.0.1'));
      assert.equal(stored[1]!.occurred_at.toISOString(), events[1]!.at);
    } finally {
      await db.end();
    }
  });

  it('refuses reports from a permanent license: 403 NOT_A_TRIAL', async () => {
    const license = await issueLicense(server, 1);
    const activated = await request(`${server.url}/v1/activations`, { body: { key: license.key, fingerprint: newMachine() } });
    const res = await report(activated.body.token, [{ at: new Date().toISOString(), locale: 'en-US', kind: 'put' }]);
    assert.equal(res.status, 403);
    assert.equal(res.body.error.code, 'NOT_A_TRIAL');
  });

  it(`takes batches of up to ${USAGE_BATCH_MAX} events and refuses larger ones with 400`, async () => {
    const trial = await request(`${server.url}/v1/trials`, { body: { fingerprint: newMachine() } });
    const batch = (n: number) => Array.from({ length: n }, (_, i) => ({ at: new Date(Date.now() - 60_000 + i).toISOString(), locale: 'en-GB', kind: 'ls' }));
    const full = await report(trial.body.token, batch(USAGE_BATCH_MAX));
    assert.equal(full.status, 202);
    assert.equal(full.body.accepted, USAGE_BATCH_MAX);
    const over = await report(trial.body.token, batch(USAGE_BATCH_MAX + 1));
    assert.equal(over.status, 400);
    assert.equal(over.body.error.code, 'VALIDATION_FAILED');
  });

  it('refuses events that carry more than the kind of command, or a bogus time', async () => {
    const trial = await request(`${server.url}/v1/trials`, { body: { fingerprint: newMachine() } });
    const at = new Date().toISOString();
    for (const event of [
      { at, locale: 'en-US', kind: 'put /etc/passwd' },
      { at: 'yesterday', locale: 'en-US', kind: 'put' },
      { at: new Date(Date.now() + 3 * 86_400_000).toISOString(), locale: 'en-US', kind: 'put' },
    ]) {
      const res = await report(trial.body.token, [event]);
      assert.equal(res.status, 400, JSON.stringify(event));
    }
    const unauth = await request(`${server.url}/v1/usage`, { body: { events: [{ at, locale: 'en-US', kind: 'put' }] } });
    assert.equal(unauth.status, 401);
  });

  it('refuses, event by event, times that are no real instant or lie outside the trial, and stores none of them', async () => {
    const fingerprint = newMachine();
    const trial = await request(`${server.url}/v1/trials`, { body: { fingerprint } });
    const today = new Date().toISOString().slice(0, 10);
    const good = { at: new Date(Date.now() - 1_000).toISOString(), locale: 'en-US', kind: 'put' };
    const bad = [
      `${today}T23:59:60Z`, // a leap second: no JavaScript instant, stored as 0000-00-00 before
      '0000-06-01T12:00:00Z', // no MySQL DATETIME
      '1969-12-31T23:59:59Z', // before any trial
      new Date(Date.now() + 3 * 86_400_000).toISOString(), // days ahead of the server
    ];
    const res = await report(trial.body.token, [good, ...bad.map((at) => ({ at, locale: 'en-US', kind: 'get' }))]);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.equal(res.body.accepted, 1);
    assert.equal(res.body.rejected, bad.length);
    assert.deepEqual(res.body.refusals.map((r: { index: number }) => r.index), bad.map((_, i) => i + 1));
    assert.deepEqual(
      res.body.refusals.map((r: { code: string }) => r.code),
      ['EVENT_TIME_INVALID', 'EVENT_BEFORE_TRIAL', 'EVENT_BEFORE_TRIAL', 'EVENT_IN_FUTURE'],
    );
    // A batch of nothing but bad times: 400, so that the agent drops it rather than resending it.
    const allBad = await report(trial.body.token, [{ at: `${today}T23:59:60Z`, locale: 'en-US', kind: 'ls' }]);
    assert.equal(allBad.status, 400);
    assert.equal(allBad.body.error.code, 'EVENT_TIME_INVALID');
    const db = await openDb(server.config.databaseUrl);
    try {
      const [rows] = await db.query({ sql: 'SELECT kind, CAST(occurred_at AS CHAR) AS at FROM usage_events WHERE fingerprint = ?', values: [fingerprint] });
      const stored = rows as { kind: string; at: string }[];
      assert.deepEqual(stored.map((r) => r.kind), ['put']);
      assert.ok(!stored.some((r) => r.at.startsWith('0000')), 'no zero date stored');
    } finally {
      await db.end();
    }
  });

  it('refuses reports of a deactivated machine or a revoked license, as /v1/validate does', async () => {
    const event = () => [{ at: new Date().toISOString(), locale: 'en-US', kind: 'put' }];
    const db = await openDb(server.config.databaseUrl);
    try {
      const stored = async (activationId: number) => {
        const [rows] = await db.query('SELECT COUNT(*) AS n FROM usage_events WHERE activation_id = ?', [activationId]);
        return Number((rows as { n: number }[])[0]!.n);
      };
      const deactivated = await request(`${server.url}/v1/trials`, { body: { fingerprint: newMachine() } });
      const gone = await request(`${server.url}/v1/activations/${deactivated.body.activation.id}`, { method: 'DELETE', token: deactivated.body.token });
      assert.equal(gone.status, 204);
      const revoked = await request(`${server.url}/v1/trials`, { body: { fingerprint: newMachine() } });
      const revoke = await request(`${server.url}/v1/admin/licenses/${revoked.body.license.id}/revoke`, { method: 'POST', token: server.adminToken });
      assert.equal(revoke.status, 200, JSON.stringify(revoke.body));
      for (const [trial, code] of [[deactivated, 'ACTIVATION_INACTIVE'], [revoked, 'LICENSE_REVOKED']] as const) {
        const validate = await request(`${server.url}/v1/validate`, { body: {}, token: trial.body.token });
        const usage = await report(trial.body.token, event());
        assert.deepEqual([validate.status, validate.body.error?.code], [403, code], 'validate');
        assert.deepEqual([usage.status, usage.body.error?.code], [403, code], 'usage');
        assert.equal(await stored(trial.body.activation.id), 0, `${code}: nothing stored`);
      }
    } finally {
      await db.end();
    }
  });
});
