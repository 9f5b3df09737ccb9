import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chainGenesis, ed25519PublicKey, usageEventHash, verifyUsageSignature, type ChainedUse } from '../licensing/index.js';
import { deviceKey } from '../agent/device-key.js';
import { recordChained } from '../agent/usage-chain.js';
import { tempDir } from './support/agent-fixtures.js';

const CHAIN_MODULE = fileURLToPath(new URL('../agent/usage-chain.js', import.meta.url));
const KEY_MODULE = fileURLToPath(new URL('../agent/device-key.js', import.meta.url));
const ACTIVATION = 4711;

function spooled(spool: string): ChainedUse[] {
  if (!existsSync(spool)) return [];
  return readFileSync(spool, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as ChainedUse);
}

/** Checks that `events` are one unbroken chain from the genesis, each signed by the key; returns the counters. */
function assertOneChain(events: ChainedUse[], publicKey: string): void {
  const key = ed25519PublicKey(Buffer.from(publicKey, 'base64url'));
  let prev = chainGenesis(ACTIVATION, publicKey);
  events.forEach((e, i) => {
    assert.equal(e.counter, i + 1, `event ${i} has counter ${i + 1}`);
    assert.equal(e.prev, prev, `event ${e.counter} names the one before it`);
    assert.ok(verifyUsageSignature(key, ACTIVATION, e), `event ${e.counter} is signed by the device key`);
    prev = usageEventHash(ACTIVATION, e);
  });
}

function use(kind: string, ms = Date.UTC(2026, 0, 1)) {
  return { at: new Date(ms).toISOString(), locale: 'en-US', kind };
}

/** Another process recording `count` uses one by one in the same home, as a ferry command does. */
function recorder(home: string, count: number): Promise<number | null> {
  const script = `
    const { recordChained } = await import(${JSON.stringify(CHAIN_MODULE)});
    const { deviceKey } = await import(${JSON.stringify(KEY_MODULE)});
    const key = await deviceKey(${JSON.stringify(join(home, 'device-key.pem'))});
    for (let i = 0; i < ${count}; i++) {
      const ok = await recordChained(${JSON.stringify(join(home, 'usage-chain.json'))}, ${JSON.stringify(join(home, 'usage-spool.jsonl'))},
        { activationId: ${ACTIVATION}, key }, [{ at: new Date().toISOString(), locale: 'en-US', kind: 'status' }]);
      if (!ok) process.exit(3);
    }`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', (code) => resolve(code));
  });
}

describe('usage chain (the agent side)', () => {
  it('makes one unbroken signed chain from commands recording at the same time in other processes', async function () {
    this.timeout(120_000);
    const home = tempDir();
    const key = await deviceKey(join(home, 'device-key.pem'));
    const processes = 6;
    const each = 8;
    const codes = await Promise.all(Array.from({ length: processes }, () => recorder(home, each)));
    assert.deepEqual(codes, Array(processes).fill(0));
    const events = spooled(join(home, 'usage-spool.jsonl'));
    assert.equal(events.length, processes * each);
    assertOneChain(events, key.publicKey);
    assert.equal(new Set(events.map((e) => e.prev)).size, events.length, 'no two events name the same predecessor');
    assert.ok(!existsSync(join(home, 'usage-chain.json.lock')), 'the lock is released');
  });

  it('signs the clock_set_back event and the use together, in order', async () => {
    const home = tempDir();
    const key = await deviceKey(join(home, 'device-key.pem'));
    await recordChained(join(home, 'usage-chain.json'), join(home, 'usage-spool.jsonl'), { activationId: ACTIVATION, key }, [use('clock_set_back'), use('put')]);
    const events = spooled(join(home, 'usage-spool.jsonl'));
    assert.deepEqual(events.map((e) => e.kind), ['clock_set_back', 'put']);
    assertOneChain(events, key.publicKey);
  });

  it('takes over a lock left by a process that died, and one held far too long', async () => {
    const home = tempDir();
    const key = await deviceKey(join(home, 'device-key.pem'));
    const head = join(home, 'usage-chain.json');
    const spool = join(home, 'usage-spool.jsonl');
    // A pid that is not running (beyond the kernel's pid range), then a live one (ours) from long ago.
    writeFileSync(`${head}.lock`, `4194999 deadbeef ${Date.now()}\n`);
    assert.equal(await recordChained(head, spool, { activationId: ACTIVATION, key }, [use('status')]), true);
    writeFileSync(`${head}.lock`, `${process.pid} cafebabe ${Date.now() - 3_600_000}\n`);
    assert.equal(await recordChained(head, spool, { activationId: ACTIVATION, key }, [use('status')]), true);
    assertOneChain(spooled(spool), key.publicKey);
    assert.ok(!existsSync(`${head}.lock`));
  });

  it('after a crash between the head and the spool, spools the events the head names before making new ones', async () => {
    const home = tempDir();
    const key = await deviceKey(join(home, 'device-key.pem'));
    const head = join(home, 'usage-chain.json');
    const spool = join(home, 'usage-spool.jsonl');
    await recordChained(head, spool, { activationId: ACTIVATION, key }, [use('status')]);
    await recordChained(head, spool, { activationId: ACTIVATION, key }, [use('put')]);
    // As if the process died right after writing the head for event 2: the spool has only event 1.
    const lines = readFileSync(spool, 'utf8').split('\n').filter((l) => l !== '');
    const state = JSON.parse(readFileSync(head, 'utf8')) as { pending: string[] | null };
    writeFileSync(head, JSON.stringify({ ...state, pending: [lines[1]] }));
    writeFileSync(spool, `${lines[0]}\n`);
    await recordChained(head, spool, { activationId: ACTIVATION, key }, [use('get')]);
    const events = spooled(spool);
    assert.deepEqual(events.map((e) => e.kind), ['status', 'put', 'get']);
    assertOneChain(events, key.publicKey);
  });

  it('starts a new chain at counter 1 for a new device key', async () => {
    const home = tempDir();
    const head = join(home, 'usage-chain.json');
    const first = await deviceKey(join(home, 'device-key.pem'));
    await recordChained(head, join(home, 'a.jsonl'), { activationId: ACTIVATION, key: first }, [use('status'), use('put')]);
    const second = await deviceKey(join(home, 'other-key.pem'));
    await recordChained(head, join(home, 'b.jsonl'), { activationId: ACTIVATION, key: second }, [use('status')]);
    assertOneChain(spooled(join(home, 'b.jsonl')), second.publicKey);
  });
});
