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
    const events = [
      { at: '2026-11-20T10:00:00.000Z', locale: 'en-US', kind: 'put' },
      { at: '2026-11-20T10:00:01.250Z', locale: 'en-US', kind: 'get' },
    ];
    const first = await report(trial.body.token, events);
    assert.equal(first.status, 202);
    assert.deepEqual(first.body, { accepted: 2, duplicates: 0 });
    const retried = await report(trial.body.token, [...events, { at: '2026-11-21T08:00:00.000Z', locale: 'de-DE', kind: 'sync' }]);
    assert.deepEqual(retried.body, { accepted: 1, duplicates: 2 });
    const db = await openDb(server.config.databaseUrl);
    try {
      const [rows] = await db.query('SELECT kind, locale, ip, fingerprint, occurred_at FROM usage_events WHERE fingerprint = ? ORDER BY occurred_at', [fingerprint]);
      const stored = rows as { kind: string; locale: string; ip: string; fingerprint: string; occurred_at: Date }[];
      assert.deepEqual(stored.map((r) => r.kind), ['put', 'get', 'sync']);
      assert.ok(stored.every((r) => r.ip === '127.0.0.1'));
      assert.equal(stored[1]!.occurred_at.toISOString(), '2026-11-20T10:00:01.250Z');
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
    const batch = (n: number) => Array.from({ length: n }, (_, i) => ({ at: new Date(Date.UTC(2026, 10, 1) + i).toISOString(), locale: 'en-GB', kind: 'ls' }));
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
});
