import assert from 'node:assert/strict';
import { appendFileSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { USAGE_BATCH_MAX } from '../licensing/index.js';
import { countSpooled, discardSpool, flushSpool, spoolEvents, type BatchOutcome, type UsageEvent } from '../agent/usage-spool.js';
import { tempDir } from './support/agent-fixtures.js';

function events(count: number, startMs = Date.UTC(2025, 0, 1)): UsageEvent[] {
  return Array.from({ length: count }, (_, i) => ({ at: new Date(startMs + i).toISOString(), locale: 'en-US', kind: 'status' as const }));
}

function spoolFile(): string {
  return join(tempDir(), 'usage-spool.jsonl');
}

function linesOf(file: string): UsageEvent[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as UsageEvent);
}

describe('usage spool', () => {
  it('keeps events on disk, one JSON line each, in a 0600 file', async () => {
    const spool = spoolFile();
    await spoolEvents(spool, events(2));
    await spoolEvents(spool, events(1, Date.UTC(2025, 1, 1)));
    assert.equal(linesOf(spool).length, 3);
    assert.equal(statSync(spool).mode & 0o777, 0o600);
    assert.equal(await countSpooled(spool), 3);
  });

  it(`sends a long spool in batches of at most ${USAGE_BATCH_MAX} and removes what the server took`, async () => {
    const spool = spoolFile();
    await spoolEvents(spool, events(1201));
    const batches: number[] = [];
    const result = await flushSpool(spool, async (batch) => {
      batches.push(batch.length);
      return 'sent';
    });
    assert.deepEqual(batches, [500, 500, 201]);
    assert.deepEqual(result, { sent: 1201, kept: 0, dropped: 0 });
    assert.equal(await countSpooled(spool), 0);
    assert.deepEqual(readdirSync(join(spool, '..')), []);
  });

  it('keeps everything not yet sent when the server goes away in the middle', async () => {
    const spool = spoolFile();
    const all = events(1100);
    await spoolEvents(spool, all);
    let calls = 0;
    const result = await flushSpool(spool, async (): Promise<BatchOutcome> => (++calls === 1 ? 'sent' : 'keep'));
    assert.equal(calls, 2, 'stops trying at the first batch the server did not take');
    assert.deepEqual(result, { sent: 500, kept: 600, dropped: 0 });
    assert.deepEqual(linesOf(spool), all.slice(500));
  });

  it('keeps the spool when sending throws (network down), and sends it all on the next try', async () => {
    const spool = spoolFile();
    await spoolEvents(spool, events(3));
    await flushSpool(spool, async () => {
      throw new Error('ECONNREFUSED');
    });
    assert.equal(await countSpooled(spool), 3);
    const sent: UsageEvent[] = [];
    await flushSpool(spool, async (batch) => {
      sent.push(...batch);
      return 'sent';
    });
    assert.equal(sent.length, 3);
    assert.equal(await countSpooled(spool), 0);
  });

  it('drops batches the server will never take, and goes on with the rest', async () => {
    const spool = spoolFile();
    await spoolEvents(spool, events(700));
    let calls = 0;
    const result = await flushSpool(spool, async (): Promise<BatchOutcome> => (++calls === 1 ? 'drop' : 'sent'), 500);
    assert.deepEqual(result, { sent: 200, kept: 0, dropped: 500 });
    assert.equal(await countSpooled(spool), 0);
  });

  it('loses no event recorded by another command while a flush is sending', async () => {
    const spool = spoolFile();
    await spoolEvents(spool, events(5));
    const during = events(2, Date.UTC(2026, 0, 1));
    await flushSpool(spool, async () => {
      await spoolEvents(spool, during); // a concurrent `ferry status` records its use now
      return 'sent';
    });
    assert.deepEqual(linesOf(spool), during);
  });

  it('sends what a crashed flush had claimed, once per event', async () => {
    const spool = spoolFile();
    const claimedByCrash = events(3);
    writeFileSync(`${spool}.sending-4242-deadbeef`, claimedByCrash.map((e) => JSON.stringify(e)).join('\n') + '\n', { mode: 0o600 });
    await spoolEvents(spool, [...claimedByCrash.slice(0, 1), ...events(1, Date.UTC(2026, 5, 1))]);
    assert.equal(await countSpooled(spool), 4, 'waiting: each event once, as it will be sent');
    const sent: UsageEvent[] = [];
    await flushSpool(spool, async (batch) => {
      sent.push(...batch);
      return 'sent';
    });
    assert.equal(sent.length, 4, 'the event in both files is sent once');
    assert.deepEqual(readdirSync(join(spool, '..')), []);
  });

  it('skips a line cut short by a crash and keeps the good ones', async () => {
    const spool = spoolFile();
    await spoolEvents(spool, events(2));
    appendFileSync(spool, '{"at":"2025-01-01T00:00:0');
    assert.equal(await countSpooled(spool), 2);
    const sent: UsageEvent[] = [];
    await flushSpool(spool, async (batch) => {
      sent.push(...batch);
      return 'sent';
    });
    assert.equal(sent.length, 2);
  });

  it('sends nothing from a second flush while one is sending, and loses nothing', async () => {
    const spool = spoolFile();
    await spoolEvents(spool, events(3));
    const second: number[] = [];
    const first = await flushSpool(spool, async (batch) => {
      await spoolEvents(spool, events(1, Date.UTC(2026, 0, 1)));
      const inner = await flushSpool(spool, async (b) => {
        second.push(b.length);
        return 'sent';
      });
      assert.deepEqual(inner, { sent: 0, kept: 0, dropped: 0 });
      return batch.length === 3 ? 'sent' : 'keep';
    });
    assert.deepEqual(second, [], 'the second flush left the events to the first or the next');
    assert.equal(first.sent, 3);
    assert.equal(await countSpooled(spool), 1, 'the event recorded meanwhile waits');
  });

  it('sends signed events in counter order, also after a flush put some back behind newer ones', async () => {
    const spool = spoolFile();
    const signed = (counter: number): UsageEvent => ({ ...events(1, Date.UTC(2026, 0, 1) + counter)[0]!, counter, prev: 'p'.repeat(43), sig: 's'.repeat(86) });
    await spoolEvents(spool, [signed(3), signed(4)]);
    await spoolEvents(spool, [signed(1), signed(2), signed(2)]);
    const sent: number[] = [];
    await flushSpool(spool, async (batch) => {
      sent.push(...batch.map((e) => e.counter!));
      return 'sent';
    });
    assert.deepEqual(sent, [1, 2, 3, 4], 'in order, the line spooled twice once');
  });

  it('can be discarded whole, claimed files included', async () => {
    const spool = spoolFile();
    await spoolEvents(spool, events(2));
    writeFileSync(`${spool}.sending-1-00000000`, JSON.stringify(events(1)[0]) + '\n');
    await discardSpool(spool);
    assert.equal(await countSpooled(spool), 0);
  });
});
