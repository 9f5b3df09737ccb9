import assert from 'node:assert/strict';
import {
  certifiedKey, certifySigningKey, generateRootKey, generateSigningKey, signTime, TrustError, verifyTime,
} from '../licensing/index.js';
import { createTimeBeacon } from '../server/licenses/trusted-time.js';

const root = generateRootKey();
const key = generateSigningKey();
const T = Date.UTC(2025, 5, 1, 12, 0, 0);
const certified = certifiedKey(root.publicKey, certifySigningKey(root.privateKey, key, T - 1000));

const refused = (pattern: RegExp) => (err: unknown) => err instanceof TrustError && pattern.test(err.message);

describe('signed times', () => {
  it('carry the time under the certified key', () => {
    assert.equal(verifyTime(signTime(key, T), certified), T);
  });

  it('refuse an edited time, another key, another kind of statement, and garbage', () => {
    const genuine = signTime(key, T);
    const later = { ...genuine, payload: genuine.payload.replace(`"t":${T}`, `"t":${T + 86_400_000}`) };
    assert.throws(() => verifyTime(later, certified), refused(/signature/));
    // Another key that borrows the certified key's name: its signature does not verify.
    const stranger = generateSigningKey();
    assert.throws(() => verifyTime(signTime({ kid: key.kid, privateKey: stranger.privateKey }, T), certified), refused(/signature/));
    assert.throws(() => verifyTime(signTime(stranger, T), certified), refused(/another key/));
    const certificate = certifySigningKey(root.privateKey, key, 0);
    assert.throws(() => verifyTime(certificate, certified), refused(/not a ferry-time/));
    for (const garbage of [null, 'time', { payload: 1, signature: 'x' }, { t: T }]) {
      assert.throws(() => verifyTime(garbage, certified), refused(/not a signed statement/));
    }
  });

  it('refuse a time from before the key was certified', () => {
    assert.throws(() => verifyTime(signTime(key, T - 60_000), certified), refused(/before its key was certified/));
  });
});

describe('the time beacon', () => {
  it('signs once per second and hands the same statement to every answer until then', () => {
    let now = T;
    const beacon = createTimeBeacon(key, { now: () => now });
    const first = beacon.current();
    now = T + 999;
    assert.equal(beacon.current(), first, 'within the second: the same statement, no new signature');
    now = T + 1000;
    const second = beacon.current();
    assert.notEqual(second, first);
    assert.equal(verifyTime(second, certified), T + 1000);
  });

  it('signs afresh when the server clock steps back, rather than keep a time ahead of it', () => {
    let now = T + 5000;
    const beacon = createTimeBeacon(key, { now: () => now });
    beacon.current();
    now = T + 2000;
    assert.equal(verifyTime(beacon.current(), certified), T + 2000);
  });
});
