import assert from 'node:assert/strict';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import type { Pool } from 'mysql2/promise';
import { canonicalUsageBytes, chainGenesis, usageEventHash, type ChainedUse } from '../licensing/index.js';
import { request } from './support/http.js';
import { newMachine } from './support/machines.js';
import { PortalClient, text } from './support/portal.js';
import { startServerWorld, type ServerWorld, type TestServer } from './support/server.js';

/**
 * Crafted reports of an activation whose device key this test holds: what an attacker with a copy of
 * the key (a cloned ferry home) or an edited spool could send, each case on a trial of its own.
 */
class Device {
  readonly privateKey: KeyObject;
  readonly publicKey: string;
  activationId = 0;
  licenseId = 0;
  token = '';
  private counter = 0;
  private prev = '';

  constructor() {
    const pair = generateKeyPairSync('ed25519');
    this.privateKey = pair.privateKey;
    this.publicKey = pair.publicKey.export({ format: 'jwk' }).x!;
  }

  async start(server: TestServer): Promise<this> {
    const trial = await request(`${server.url}/v1/trials`, { body: { fingerprint: newMachine(), devicePublicKey: this.publicKey } });
    assert.equal(trial.status, 201, JSON.stringify(trial.body));
    this.activationId = trial.body.activation.id;
    this.licenseId = Number(trial.body.license.id);
    this.token = trial.body.token;
    this.prev = chainGenesis(this.activationId, this.publicKey);
    return this;
  }

  /** An event signed by `signer` (the device key unless given) with the fields given, as is. */
  event(fields: { counter: number; prev: string; kind?: string; at?: Date }, signer: KeyObject = this.privateKey): ChainedUse {
    const unsigned = { at: (fields.at ?? new Date()).toISOString(), locale: 'en-US', kind: fields.kind ?? 'status', counter: fields.counter, prev: fields.prev };
    return { ...unsigned, sig: sign(null, canonicalUsageBytes(this.activationId, unsigned), signer).toString('base64url') };
  }

  /** The next event of the honest chain. */
  next(kind = 'status', at = new Date()): ChainedUse {
    const event = this.event({ counter: ++this.counter, prev: this.prev, kind, at });
    this.prev = this.hash(event);
    return event;
  }

  hash(event: ChainedUse): string {
    return usageEventHash(this.activationId, event);
  }
}

describe('POST /v1/usage with signed, chained events', () => {
  let server: TestServer;
  let db: Pool;
  let world: ServerWorld;
  before(async () => {
    world = await startServerWorld();
    ({ server, db } = world);
  });
  after(() => world?.close());

  const report = (device: Device, events: unknown[]) => request(`${server.url}/v1/usage`, { body: { events }, token: device.token });
  const device = () => new Device().start(server);

  async function signals(licenseId: number): Promise<{ kind: string; detail: string }[]> {
    const [rows] = await db.query("SELECT kind, detail FROM license_events WHERE license_id = ? AND kind LIKE 'usage\\_%' ORDER BY id", [licenseId]);
    return rows as { kind: string; detail: string }[];
  }

  async function storedCounters(activationId: number): Promise<number[]> {
    const [rows] = await db.query('SELECT counter FROM usage_events WHERE activation_id = ? AND signed ORDER BY counter', [activationId]);
    return (rows as { counter: number }[]).map((r) => Number(r.counter));
  }

  it('stores an honest chain once, each event signed, and counts a resent batch as duplicates', async () => {
    const d = await device();
    const events = [d.next('activate'), d.next('put'), d.next('get')];
    const first = await report(d, events);
    assert.deepEqual([first.status, first.body], [202, { accepted: 3, duplicates: 0, rejected: 0, refusals: [] }]);
    const again = await report(d, [...events, d.next('sync')]);
    assert.deepEqual(again.body, { accepted: 1, duplicates: 3, rejected: 0, refusals: [] });
    assert.deepEqual(await storedCounters(d.activationId), [1, 2, 3, 4]);
    const [rows] = await db.query('SELECT signed, HEX(hash) AS hash FROM usage_events WHERE activation_id = ? ORDER BY counter', [d.activationId]);
    assert.ok((rows as { signed: number }[]).every((r) => r.signed === 1));
    assert.equal((rows as { hash: string }[])[2]!.hash, Buffer.from(d.hash(events[2]!), 'base64url').toString('hex').toUpperCase(), 'the hash both sides compute');
    const [[chain]] = (await db.query('SELECT head_counter FROM usage_chains WHERE activation_id = ?', [d.activationId])) as unknown as [{ head_counter: number }[]];
    assert.equal(Number(chain!.head_counter), 4);
    assert.deepEqual(await signals(d.licenseId), [], 'nothing to flag');
  });

  it('refuses and flags as forged an event not signed by the activation\'s key, and an unsigned one', async () => {
    const d = await device();
    const good = d.next('put');
    const stranger = generateKeyPairSync('ed25519').privateKey;
    const forged = d.event({ counter: 2, prev: d.hash(good), kind: 'get' }, stranger);
    const edited = { ...d.next('sync'), kind: 'ls' }; // signed as sync, sent as ls
    const res = await report(d, [good, forged, edited, { at: new Date().toISOString(), locale: 'en-US', kind: 'put' }]);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.equal(res.body.accepted, 1);
    assert.deepEqual(res.body.refusals.map((r: { index: number; code: string }) => [r.index, r.code]), [
      [1, 'USAGE_SIGNATURE_INVALID'], [2, 'USAGE_SIGNATURE_INVALID'], [3, 'USAGE_UNSIGNED'],
    ]);
    assert.deepEqual((await signals(d.licenseId)).map((s) => s.kind), ['usage_forged', 'usage_forged', 'usage_forged']);
    // A batch of nothing but forgeries: 400, so that an agent drops it.
    const allForged = await report(d, [forged]);
    assert.deepEqual([allForged.status, allForged.body.error.code], [400, 'USAGE_SIGNATURE_INVALID']);
    assert.deepEqual(await storedCounters(d.activationId), [1]);
  });

  it('refuses and flags a fork: another event after the same predecessor', async () => {
    const d = await device();
    const [one, two] = [d.next('put'), d.next('get')];
    assert.equal((await report(d, [one, two])).body.accepted, 2);
    const other = d.event({ counter: 2, prev: d.hash(one), kind: 'sync' }); // a copy of the home, elsewhere
    const res = await report(d, [other]);
    assert.deepEqual([res.status, res.body.error.code], [400, 'USAGE_FORK']);
    const flagged = await signals(d.licenseId);
    assert.deepEqual(flagged.map((s) => s.kind), ['usage_fork']);
    assert.match(flagged[0]!.detail, /event 2 follows the same event as the stored event 2/);
    assert.deepEqual(await storedCounters(d.activationId), [1, 2]);
  });

  it('refuses and flags a replay: a counter used again by an event of another history', async () => {
    const d = await device();
    const honest = Array.from({ length: 5 }, () => d.next('put'));
    assert.equal((await report(d, honest)).body.accepted, 5);
    // A clone copied at event 3 makes its own 4 (a fork) and then its own 5, which the server has.
    const clone4 = d.event({ counter: 4, prev: d.hash(honest[2]!), kind: 'get' });
    const clone5 = d.event({ counter: 5, prev: d.hash(clone4), kind: 'get' });
    const res = await report(d, [clone5]);
    assert.deepEqual([res.status, res.body.error.code], [400, 'USAGE_REPLAY']);
    // The honest resend of the same event 5 is a duplicate, not a replay.
    assert.deepEqual((await report(d, [honest[4]!])).body, { accepted: 0, duplicates: 1, rejected: 0, refusals: [] });
    assert.deepEqual((await signals(d.licenseId)).map((s) => s.kind), ['usage_replay']);
  });

  it('refuses and flags a counter going back', async () => {
    const d = await device();
    const events = [d.next(), d.next(), d.next()];
    await report(d, events);
    const back = d.event({ counter: 2, prev: d.hash(events[2]!) });
    const res = await report(d, [back]);
    assert.deepEqual([res.status, res.body.error.code], [400, 'USAGE_COUNTER_BACK']);
    assert.deepEqual((await signals(d.licenseId)).map((s) => s.kind), ['usage_counter_back']);
  });

  it('stores but flags a gap (events missing), and takes the missing ones when they come after all', async () => {
    const d = await device();
    const events = [d.next('put'), d.next('get'), d.next('ls'), d.next('sync')];
    const first = await report(d, [events[0], events[3]]);
    assert.deepEqual(first.body, { accepted: 2, duplicates: 0, rejected: 0, refusals: [] });
    const flagged = await signals(d.licenseId);
    assert.deepEqual(flagged.map((s) => s.kind), ['usage_gap']);
    assert.match(flagged[0]!.detail, /event 4 arrived without event 3/);
    // A counter that jumps while naming its predecessor is a gap too.
    const jump = d.event({ counter: 9, prev: d.hash(events[3]!) });
    assert.equal((await report(d, [jump])).body.accepted, 1);
    assert.match((await signals(d.licenseId))[1]!.detail, /jumps from 4 to 9: 4 event\(s\) missing/);
    assert.deepEqual((await report(d, [events[1], events[2]])).body, { accepted: 2, duplicates: 0, rejected: 0, refusals: [] });
    assert.equal((await signals(d.licenseId)).length, 2, 'a late fill adds no signal');
    assert.deepEqual(await storedCounters(d.activationId), [1, 2, 3, 4, 9]);
  });

  it('stores but flags time going back along the chain', async () => {
    const d = await device();
    const now = Date.now();
    const res = await report(d, [d.next('put', new Date(now)), d.next('get', new Date(now - 3_600_000))]);
    assert.equal(res.body.accepted, 2);
    const flagged = await signals(d.licenseId);
    assert.deepEqual(flagged.map((s) => s.kind), ['usage_time_back']);
    assert.match(flagged[0]!.detail, /event 2 is dated .* before its predecessor's/);
  });

  it('refuses and flags an event dated before the trial existed (2020-01-01)', async () => {
    const d = await device();
    const res = await report(d, [d.next('put', new Date('2020-01-01T00:00:00Z'))]);
    assert.deepEqual([res.status, res.body.error.code], [400, 'EVENT_BEFORE_TRIAL']);
    assert.deepEqual((await signals(d.licenseId)).map((s) => s.kind), ['usage_before_trial']);
    // Unsigned (an activation from before device keys): refused and flagged alike.
    const old = await request(`${server.url}/v1/trials`, { body: { fingerprint: newMachine() } });
    const unsigned = await request(`${server.url}/v1/usage`, { token: old.body.token, body: { events: [{ at: '2020-01-01T00:00:00.000Z', locale: 'en-US', kind: 'put' }] } });
    assert.deepEqual([unsigned.status, unsigned.body.error.code], [400, 'EVENT_BEFORE_TRIAL']);
    assert.deepEqual((await signals(Number(old.body.license.id))).map((s) => s.kind), ['usage_before_trial']);
  });

  it('refuses with 400 an event with only part of its chain fields', async () => {
    const d = await device();
    const { sig: _sig, ...unsignedPart } = d.next('put');
    const res = await report(d, [unsignedPart]);
    assert.deepEqual([res.status, res.body.error.code], [400, 'VALIDATION_FAILED']);
  });

  it('stores the events of an activation without a device key as unsigned', async () => {
    const old = await request(`${server.url}/v1/trials`, { body: { fingerprint: newMachine() } });
    const res = await request(`${server.url}/v1/usage`, { token: old.body.token, body: { events: [{ at: new Date().toISOString(), locale: 'en-US', kind: 'put' }] } });
    assert.equal(res.body.accepted, 1);
    const [rows] = await db.query('SELECT signed, counter, hash FROM usage_events WHERE activation_id = ?', [old.body.activation.id]);
    assert.deepEqual(rows, [{ signed: 0, counter: 0, hash: null }]);
  });

  it('judges batches of one chain sent at once one after the other: each event stored once, nothing flagged', async () => {
    const d = await device();
    const events = Array.from({ length: 20 }, () => d.next('put'));
    assert.equal((await report(d, events.slice(0, 1))).body.accepted, 1, 'the chain exists');
    const rest = events.slice(1);
    const answers = await Promise.all([report(d, rest), report(d, rest), report(d, rest), report(d, rest.slice(9))]);
    assert.ok(answers.every((a) => a.status === 202), JSON.stringify(answers.map((a) => a.body)));
    assert.equal(answers.reduce((n, a) => n + a.body.accepted, 0), 19);
    assert.deepEqual(await storedCounters(d.activationId), Array.from({ length: 20 }, (_, i) => i + 1));
    assert.deepEqual(await signals(d.licenseId), [], 'no gap for the batch that came first with the later half');
  });

  it('shows staff each new signal with its reason in /admin', async () => {
    const d = await device();
    const [one, two] = [d.next('put'), d.next('get')];
    await report(d, [one, two]);
    await report(d, [d.event({ counter: 2, prev: d.hash(one), kind: 'sync' })]);
    const day = new Date().toISOString().slice(0, 10);
    await (await server.app.jobs.queues.usageRollup.add({ day })).finished();
    const [rows] = await db.query('SELECT kind, count, detail FROM piracy_signals WHERE day = ? AND subject = ?', [day, `license:${d.licenseId}`]);
    assert.deepEqual((rows as { kind: string }[]).map((r) => r.kind), ['usage_fork']);

    const client = new PortalClient(server.url);
    assert.equal((await client.post('/admin/login', { token: server.adminToken })).status, 303);
    const page = await client.get('/admin/statistics');
    assert.equal(page.status, 200);
    const row = text(page.html).split('\n').find((line) => line.includes(`license ${d.licenseId}`));
    assert.ok(row, 'a row for the license');
    assert.match(text(page.html), /usage fork/);
    assert.match(text(page.html), /1 event\(s\), e\.g\. event 2 follows the same event as the stored event 2/);
    const license = await client.get(`/admin/licenses/${d.licenseId}`);
    assert.match(text(license.html), /usage_fork\s*event 2 follows the same event as the stored event 2/);
  });
});

