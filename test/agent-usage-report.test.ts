import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Pool } from 'mysql2/promise';
import { chainGenesis, ed25519PublicKey, usageEventHash, verifyUsageSignature, type ChainedUse } from '../licensing/index.js';
import { Machine, type Run } from './support/ferry-machine.js';
import { openDb, startServer, type TestServer } from './support/server.js';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.js';

function expectExitCode(run: Run, code: number, what: string): void {
  assert.equal(run.code, code, `${what}: exit ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
}

function spoolLines(machine: Machine): string[] {
  const file = join(machine.home, 'usage-spool.jsonl');
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : [];
}

/** The built agent against a real server: what its signed usage reports look like when they arrive. */
describe('ferry\'s signed usage reports, end to end', () => {
  let server: TestServer;
  let db: Pool;
  let proxy: TcpProxy;
  before(async () => {
    server = await startServer();
    db = await openDb(server.config.databaseUrl);
    proxy = await startTcpProxy('127.0.0.1', Number(new URL(server.url).port));
  });
  after(async () => {
    await proxy.close();
    await db.end();
    await server.close();
  });

  const serverUrl = () => `http://127.0.0.1:${proxy.port}`;

  /** The stored events of the activation's current key, in counter order, checked to be one unbroken signed chain. */
  async function assertStoredChain(activationId: number): Promise<{ counter: number; kind: string }[]> {
    const [keys] = await db.query('SELECT device_key FROM activations WHERE id = ?', [activationId]);
    const raw = (keys as { device_key: Buffer }[])[0]!.device_key;
    assert.ok(raw, 'the activation has a device key');
    const [rows] = await db.query(
      `SELECT counter, kind, locale, DATE_FORMAT(occurred_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS at, prev_hash, signature, signed
         FROM usage_events WHERE chain_id = (SELECT id FROM usage_chains WHERE activation_id = ? AND device_key = ?) ORDER BY counter`,
      [activationId, raw],
    );
    const events = rows as { counter: number; kind: string; locale: string; at: string; prev_hash: Buffer; signature: Buffer; signed: number }[];
    let prev = chainGenesis(activationId, raw.toString('base64url'));
    const key = ed25519PublicKey(raw);
    events.forEach((e, i) => {
      assert.equal(e.signed, 1);
      assert.equal(Number(e.counter), i + 1, `no gap before ${e.counter}`);
      assert.equal(e.prev_hash.toString('base64url'), prev, `event ${e.counter} follows the one before`);
      // DATE_FORMAT's %f has six digits; the agent sent three.
      const event: ChainedUse = { at: e.at.replace(/(\.\d{3})\d{3}Z$/, '$1Z'), locale: e.locale, kind: e.kind, counter: Number(e.counter), prev, sig: e.signature.toString('base64url') };
      assert.ok(verifyUsageSignature(key, activationId, event), `event ${e.counter} verifies`);
      prev = usageEventHash(activationId, event);
    });
    const [flags] = await db.query("SELECT kind, detail FROM license_events e JOIN activations a ON a.license_id = e.license_id WHERE a.id = ? AND e.kind LIKE 'usage\\_%'", [activationId]);
    assert.deepEqual(flags, [], 'nothing flagged');
    return events.map((e) => ({ counter: Number(e.counter), kind: e.kind }));
  }

  it('makes one unbroken chain of commands run at the same time, accepted whole', async function () {
    this.timeout(300_000);
    const machine = new Machine();
    expectExitCode(await machine.run(['activate', '--trial', '--server', serverUrl()]), 0, 'activate');
    const runs = await Promise.all(Array.from({ length: 6 }, () => machine.run(['status'])));
    runs.forEach((run, i) => expectExitCode(run, 0, `status ${i}`));
    // A flush that found another running leaves its events to the next command.
    expectExitCode(await machine.run(['privacy']), 0, 'privacy');
    assert.deepEqual(spoolLines(machine), [], 'all sent');
    const stored = await assertStoredChain(machine.license().activationId);
    assert.deepEqual(stored.map((e) => e.counter), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(stored.map((e) => e.kind).sort(), ['activate', 'privacy', ...Array(6).fill('status')].sort());
  });

  it('keeps the signed events while the server is down, shows them exactly as queued, and sends them later with the chain intact', async function () {
    this.timeout(300_000);
    const machine = new Machine();
    expectExitCode(await machine.run(['activate', '--trial', '--server', serverUrl()]), 0, 'activate');
    await proxy.cut();
    try {
      expectExitCode(await machine.run(['status']), 0, 'status while the server is down');
      expectExitCode(await machine.run(['status']), 0, 'status again');
      const privacy = await machine.run(['privacy']);
      expectExitCode(privacy, 0, 'privacy while the server is down');
      const queued = spoolLines(machine);
      assert.equal(queued.length, 3, 'status, status, privacy');
      const shown = privacy.stdout.split('\n').filter((l) => l.startsWith('  {')).map((l) => l.slice(2));
      assert.deepEqual(shown, queued, 'privacy prints the queued lines exactly');
      assert.match(privacy.stdout, /waiting events: 3/);
      for (const field of ['at', 'locale', 'kind', 'counter', 'prev', 'sig']) assert.match(privacy.stdout, new RegExp(`^  ${field} +\\S`, 'm'), field);
      assert.deepEqual(queued.map((l) => (JSON.parse(l) as ChainedUse).counter), [2, 3, 4]);
    } finally {
      await proxy.restore();
    }
    expectExitCode(await machine.run(['status']), 0, 'status once the server is back');
    assert.deepEqual(spoolLines(machine), []);
    const stored = await assertStoredChain(machine.license().activationId);
    assert.deepEqual(stored.map((e) => e.kind), ['activate', 'status', 'status', 'privacy', 'status']);
  });

  it('starts a new chain, accepted without a signal, when the machine deactivates and activates again', async function () {
    this.timeout(300_000);
    const machine = new Machine();
    expectExitCode(await machine.run(['activate', '--trial', '--server', serverUrl()]), 0, 'activate');
    expectExitCode(await machine.run(['status']), 0, 'status');
    expectExitCode(await machine.run(['deactivate']), 0, 'deactivate');
    assert.ok(!existsSync(join(machine.home, 'usage-chain.json')), 'the chain went with the key');
    expectExitCode(await machine.run(['activate', '--trial', '--server', serverUrl()]), 0, 'activate again');
    expectExitCode(await machine.run(['status']), 0, 'status');
    assert.deepEqual((await assertStoredChain(machine.license().activationId)).map((e) => e.kind), ['activate', 'status']);
  });
});
