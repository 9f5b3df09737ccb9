import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLOCK_SET_BACK_TOLERANCE_MS, judgeClock, judgeTrustedTime, noteTrustedTime, parseFerryNow, readClock } from '../agent/clock.js';
import { AgentError } from '../agent/errors.js';
import { DAY, HOUR, tempDir } from './support/agent-fixtures.js';

const T = Date.UTC(2025, 5, 1, 12, 0, 0);

describe('clock high-water mark', () => {
  it('takes the clock as it is the first time', () => {
    const { reading, next } = judgeClock(T, null);
    assert.deepEqual(reading, { wallNow: T, now: T, highWater: null, setBack: false, newlySetBack: false });
    assert.deepEqual(next, { highWater: T, skewMs: 0 });
  });

  it('follows a clock that moves forward', () => {
    const { reading, next } = judgeClock(T + HOUR, { highWater: T, skewMs: 0 });
    assert.equal(reading.now, T + HOUR);
    assert.equal(reading.setBack, false);
    assert.deepEqual(next, { highWater: T + HOUR, skewMs: 0 });
  });

  it('does not call a few minutes of drift (an NTP correction) a clock set back', () => {
    const { reading } = judgeClock(T - CLOCK_SET_BACK_TOLERANCE_MS + 1, { highWater: T, skewMs: 0 });
    assert.equal(reading.setBack, false);
    assert.equal(reading.now, T, 'time still never goes back for the license');
  });

  it('detects a clock set back and goes on from the highest time seen', () => {
    const { reading, next } = judgeClock(T - 10 * DAY, { highWater: T, skewMs: 0 });
    assert.deepEqual(reading, { wallNow: T - 10 * DAY, now: T, highWater: T, setBack: true, newlySetBack: true });
    assert.deepEqual(next, { highWater: T, skewMs: 10 * DAY });
  });

  it('lets license time run on at the clock\'s pace while the clock stays back, and reports the set-back once', () => {
    const first = judgeClock(T - 10 * DAY, { highWater: T, skewMs: 0 });
    const dayLater = judgeClock(T - 9 * DAY, first.next);
    assert.equal(dayLater.reading.now, T + DAY, 'a day on the clock is a day for the license');
    assert.equal(dayLater.reading.setBack, true);
    assert.equal(dayLater.reading.newlySetBack, false);
  });

  it('finds a second set-back on top of the first', () => {
    const first = judgeClock(T - 10 * DAY, { highWater: T, skewMs: 0 });
    const again = judgeClock(T - 20 * DAY, first.next);
    assert.equal(again.reading.newlySetBack, true);
    assert.equal(again.reading.now, T);
  });

  it('trusts the clock again once it is past every time seen', () => {
    const back = judgeClock(T - 10 * DAY, { highWater: T, skewMs: 0 });
    const fixed = judgeClock(T + HOUR, back.next);
    assert.equal(fixed.reading.now, T + HOUR);
    assert.equal(fixed.reading.setBack, false);
    assert.deepEqual(fixed.next, { highWater: T + HOUR, skewMs: 0 });
  });

  it('remembers the mark and the skew across commands', async () => {
    const file = join(tempDir(), 'clock.json');
    assert.equal((await readClock(file, T)).setBack, false);
    assert.equal((await readClock(file, T + HOUR)).now, T + HOUR);
    const back = await readClock(file, T);
    assert.equal(back.setBack, true);
    assert.equal(back.now, T + HOUR);
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { highWater: new Date(T + HOUR).toISOString(), skewMs: HOUR });
    const later = await readClock(file, T + 30 * 60_000);
    assert.equal(later.now, T + HOUR + 30 * 60_000);
    assert.equal(later.newlySetBack, false);
  });

  it('starts over from the clock when clock.json is damaged', async () => {
    const file = join(tempDir(), 'clock.json');
    writeFileSync(file, 'not json');
    const reading = await readClock(file, T);
    assert.deepEqual(reading, { wallNow: T, now: T, highWater: null, setBack: false, newlySetBack: false });
  });

  it('knows the clock is behind a time the server signed, even with no mark, and goes on from that time', () => {
    const { reading } = judgeClock(T - 2 * DAY, null);
    const trusted = judgeTrustedTime(reading, { highWater: T - 2 * DAY, skewMs: 0 }, T)!;
    assert.equal(trusted.reading.now, T);
    assert.equal(trusted.reading.setBack, true);
    assert.equal(trusted.reading.newlySetBack, true);
    assert.deepEqual(trusted.next, { highWater: T, skewMs: 2 * DAY });
    // A day later by the clock that stays behind: a day later for the license too, not two days before.
    assert.equal(judgeClock(T - DAY, trusted.next).reading.now, T + DAY);
  });

  it('takes a server a little ahead (within the tolerance) as time seen, not as a clock set back', () => {
    const { reading } = judgeClock(T, { highWater: T, skewMs: 0 });
    const trusted = judgeTrustedTime(reading, { highWater: T, skewMs: 0 }, T + 60_000)!;
    assert.equal(trusted.reading.now, T + 60_000);
    assert.equal(trusted.reading.setBack, false);
    assert.deepEqual(trusted.next, { highWater: T + 60_000, skewMs: 0 });
  });

  it('moves nothing for a signed time at or before license time: trusted time only moves forward', async () => {
    const { reading } = judgeClock(T, { highWater: T, skewMs: 0 });
    assert.equal(judgeTrustedTime(reading, { highWater: T, skewMs: 0 }, T - DAY), null);
    const file = join(tempDir(), 'clock.json');
    const now = await readClock(file, T);
    assert.equal(await noteTrustedTime(file, now, T - DAY), now);
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { highWater: new Date(T).toISOString(), skewMs: 0 });
    const raised = await noteTrustedTime(file, now, T + 2 * DAY);
    assert.equal(raised.now, T + 2 * DAY);
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { highWater: new Date(T + 2 * DAY).toISOString(), skewMs: 2 * DAY });
  });

  it('counts on with the time since boot while the clock is held at one time, on the same boot only', () => {
    const boot = (uptimeMs: number, bootId = 'boot-1') => ({ bootId, uptimeMs });
    const first = judgeClock(T, null, boot(0));
    assert.deepEqual(first.next, { highWater: T, skewMs: 0, boot: boot(0) });
    // Two hours of uptime later, the clock says T again: it is held back, and license time went on.
    const held = judgeClock(T, first.next, boot(2 * HOUR));
    assert.equal(held.reading.now, T + 2 * HOUR);
    assert.equal(held.reading.setBack, true);
    assert.equal(held.reading.newlySetBack, true);
    assert.equal(judgeClock(T, held.next, boot(3 * HOUR)).reading.now, T + 3 * HOUR);
    // After a reboot the time since boot says nothing about before: the mark holds, as without one.
    assert.equal(judgeClock(T, held.next, boot(5 * HOUR, 'boot-2')).reading.now, T + 2 * HOUR);
  });

  it('reads FERRY_NOW as an ISO date or as milliseconds, and refuses anything else', () => {
    assert.equal(parseFerryNow('2025-06-01T12:00:00Z'), T);
    assert.equal(parseFerryNow(String(T)), T);
    assert.throws(() => parseFerryNow('tomorrow'), (err: AgentError) => err.exit === 'USAGE' && /FERRY_NOW/.test(err.message));
  });
});
