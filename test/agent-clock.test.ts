import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLOCK_SET_BACK_TOLERANCE_MS, judgeClock, parseFerryNow, readClock } from '../agent/clock.js';
import { AgentError } from '../agent/errors.js';
import { HOUR, tempDir } from './agent-fixtures.js';

const T = Date.UTC(2025, 5, 1, 12, 0, 0);

describe('clock high-water mark', () => {
  it('takes the clock as it is the first time', () => {
    assert.deepEqual(judgeClock(T, null), { wallNow: T, now: T, highWater: null, setBack: false });
  });

  it('follows a clock that moves forward', () => {
    assert.deepEqual(judgeClock(T + HOUR, T), { wallNow: T + HOUR, now: T + HOUR, highWater: T, setBack: false });
  });

  it('does not call a few minutes of drift (an NTP correction) a clock set back', () => {
    const reading = judgeClock(T - CLOCK_SET_BACK_TOLERANCE_MS + 1, T);
    assert.equal(reading.setBack, false);
    assert.equal(reading.now, T, 'time still never goes back for the license');
  });

  it('detects a clock set back and keeps counting from the highest time seen', () => {
    const reading = judgeClock(T - 10 * 24 * HOUR, T);
    assert.equal(reading.setBack, true);
    assert.equal(reading.now, T);
    assert.equal(reading.wallNow, T - 10 * 24 * HOUR);
  });

  it('remembers the highest time across commands, and not a lower one', async () => {
    const file = join(tempDir(), 'clock.json');
    assert.equal((await readClock(file, T)).setBack, false);
    assert.equal((await readClock(file, T + HOUR)).now, T + HOUR);
    const back = await readClock(file, T);
    assert.equal(back.setBack, true);
    assert.equal(back.now, T + HOUR);
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).highWater, new Date(T + HOUR).toISOString());
  });

  it('starts over from the clock when clock.json is damaged', async () => {
    const file = join(tempDir(), 'clock.json');
    writeFileSync(file, 'not json');
    const reading = await readClock(file, T);
    assert.deepEqual(reading, { wallNow: T, now: T, highWater: null, setBack: false });
  });

  it('reads FERRY_NOW as an ISO date or as milliseconds, and refuses anything else', () => {
    assert.equal(parseFerryNow('2025-06-01T12:00:00Z'), T);
    assert.equal(parseFerryNow(String(T)), T);
    assert.throws(() => parseFerryNow('tomorrow'), (err: AgentError) => err.exit === 'USAGE' && /FERRY_NOW/.test(err.message));
  });
});
