import assert from 'node:assert/strict';
import { certifySigningKey, generateRootKey, generateSigningKey, POLICIES, signTime } from '../licensing/index.js';
import { judgeClock } from '../agent/clock.js';
import { assessLicense, type Assessment } from '../agent/license-assess.js';
import { DAY, HOUR, newMachineId, tokenFor } from './support/agent-fixtures.js';

const root = generateRootKey();
const key = generateSigningKey();
const certificate = certifySigningKey(root.privateKey, key, 0);
const machine = newMachineId();
const T = Date.UTC(2025, 5, 1, 12, 0, 0);

function trialToken(issuedAt: number, trialEndsAt: number): string {
  return tokenFor({
    key, fingerprint: machine.fingerprint, kind: 'trial', issuedAt,
    leaseEndsAt: Math.min(issuedAt + POLICIES.trial.leaseMs, trialEndsAt), licenseExpiresAt: trialEndsAt,
  });
}

function permanentToken(issuedAt: number): string {
  return tokenFor({ key, fingerprint: machine.fingerprint, kind: 'permanent', issuedAt, leaseEndsAt: issuedAt + POLICIES.permanent.leaseMs });
}

function assess(token: string, now: number, fingerprint = machine.fingerprint, cert: unknown = certificate, timeStatement?: unknown): Assessment {
  return assessLicense({ token, certificate: cert, root: root.publicKey, fingerprint, now, timeStatement });
}

describe('offline license decisions', () => {
  it('works with a fresh lease and does not call the server', () => {
    const a = assess(trialToken(T, T + 30 * DAY), T + HOUR);
    assert.equal(a.verdict, 'usable');
    assert.equal(a.verdict === 'usable' && a.renewDue, false);
  });

  it('renews a trial lease once less than 12 hours are left', () => {
    const token = trialToken(T, T + 30 * DAY);
    const justBefore = assess(token, T + POLICIES.trial.leaseMs - POLICIES.trial.renewWhenLeftMs - 1000);
    const after = assess(token, T + POLICIES.trial.leaseMs - POLICIES.trial.renewWhenLeftMs + 1000);
    assert.equal(justBefore.verdict === 'usable' && justBefore.renewDue, false);
    assert.equal(after.verdict === 'usable' && after.renewDue, true);
  });

  it('stops a trial at its lease end when it cannot renew: trials have no offline grace', () => {
    const a = assess(trialToken(T, T + 30 * DAY), T + POLICIES.trial.leaseMs + 1000);
    assert.equal(a.verdict, 'lease-ended');
  });

  it('keeps a permanent license working offline for its grace after the lease ends', () => {
    const token = permanentToken(T);
    const inGrace = assess(token, T + POLICIES.permanent.leaseMs + DAY);
    assert.equal(inGrace.verdict, 'usable');
    assert.ok(inGrace.verdict === 'usable' && inGrace.inGrace && inGrace.renewDue);
    assert.equal(inGrace.verdict === 'usable' && inGrace.usableUntil, T + POLICIES.permanent.leaseMs + POLICIES.permanent.offlineGraceMs);
    const pastGrace = assess(token, T + POLICIES.permanent.leaseMs + POLICIES.permanent.offlineGraceMs);
    assert.equal(pastGrace.verdict, 'lease-ended');
  });

  it('ends a trial at its end date even offline and with a lease left', () => {
    // A lease issued just before the trial's end ends with it; with a clock past the end, the trial is over.
    const a = assess(trialToken(T, T + HOUR), T + HOUR);
    assert.equal(a.verdict, 'trial-ended');
    assert.equal(a.verdict === 'trial-ended' && a.trialEndsAt, T + HOUR);
  });

  it('does not give a trial more time when the clock is set back', () => {
    const token = trialToken(T, T + 30 * DAY);
    const sawEnd = judgeClock(T + 31 * DAY, { highWater: T, skewMs: 0 }); // a command ran after the end…
    assert.equal(assess(token, sawEnd.reading.now).verdict, 'trial-ended');
    const setBack = judgeClock(T + 2 * DAY, sawEnd.next); // …then the clock went back a month
    assert.equal(setBack.reading.setBack, true);
    assert.equal(assess(token, setBack.reading.now).verdict, 'trial-ended');
  });

  it('does not stretch a lease for as long as the clock stays back', () => {
    const token = trialToken(T, T + 30 * DAY);
    const back = judgeClock(T - 300 * DAY, { highWater: T + HOUR, skewMs: 0 });
    const twoDaysLater = judgeClock(T - 298 * DAY, back.next);
    assert.equal(assess(token, twoDaysLater.reading.now).verdict, 'lease-ended');
  });

  it('never counts time from before the server issued the token, even without a high-water mark', () => {
    const token = trialToken(T, T + 30 * DAY);
    const a = assess(token, T - 365 * DAY);
    assert.equal(a.verdict, 'usable');
    assert.equal(a.verdict === 'usable' && a.leaseEndsAt, T + POLICIES.trial.leaseMs);
  });

  it('refuses a token of another machine (a copied FERRY_HOME)', () => {
    const a = assess(permanentToken(T), T, newMachineId().fingerprint);
    assert.equal(a.verdict, 'invalid');
    assert.match(a.verdict === 'invalid' ? a.reason : '', /another machine/);
    assert.equal(a.verdict === 'invalid' && a.untrusted, false);
  });

  it('refuses a token whose claims were edited (a longer trial)', () => {
    const [header, payload, signature] = trialToken(T, T + 30 * DAY).split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    claims.lic_exp += 365 * 24 * 3600;
    const forged = [header, Buffer.from(JSON.stringify(claims)).toString('base64url'), signature].join('.');
    assert.equal(assess(forged, T).verdict, 'invalid');
  });

  it('refuses a token signed by another key than the certified one', () => {
    const other = tokenFor({ key: generateSigningKey(), fingerprint: machine.fingerprint, kind: 'permanent', issuedAt: T, leaseEndsAt: T + DAY });
    const a = assess(other, T);
    assert.equal(a.verdict, 'invalid');
    assert.match(a.verdict === 'invalid' ? a.reason : '', /does not know/);
    assert.equal(a.verdict === 'invalid' && a.untrusted, true);
  });

  it('refuses a certificate of another root, an edited one, and a token older than its key', () => {
    const foreign = certifySigningKey(generateRootKey().privateKey, key, 0);
    assert.match((assess(permanentToken(T), T, machine.fingerprint, foreign) as { reason: string }).reason, /not the trust root's/);
    const edited = { ...certificate, payload: certificate.payload.replace('"notBefore":0', '"notBefore":1') };
    assert.equal(assess(permanentToken(T), T, machine.fingerprint, edited).verdict, 'invalid');
    const later = certifySigningKey(root.privateKey, key, T + DAY);
    assert.match((assess(permanentToken(T), T + 2 * DAY, machine.fingerprint, later) as { reason: string }).reason, /before its signing key was certified/);
  });

  it('refuses garbage where the token should be', () => {
    assert.equal(assess('not.a.token', T).verdict, 'invalid');
  });

  it('judges by a check-in\'s signed time when it is later than the clock: a trial past its end by it is over', () => {
    const token = trialToken(T, T + 2 * DAY);
    const checkedIn = signTime(key, T + 2 * DAY + HOUR);
    const a = assess(token, T + HOUR, machine.fingerprint, certificate, checkedIn);
    assert.equal(a.verdict, 'trial-ended');
    assert.ok('trustedTime' in a && a.trustedTime === T + 2 * DAY + HOUR && a.trustedFrom === 'check-in' && a.judgedAt === T + 2 * DAY + HOUR);
    // Without it, the token's issue time is the trusted time.
    const b = assess(token, T - DAY);
    assert.ok('trustedTime' in b && b.trustedTime === T && b.trustedFrom === 'token' && b.judgedAt === T);
  });

  it('ignores a signed time that is edited or signed by another key, and does not refuse the license for it', () => {
    const token = trialToken(T, T + 2 * DAY);
    const genuine = signTime(key, T + 3 * DAY);
    const edited = { ...genuine, payload: genuine.payload.replace(/"t":\d+/, `"t":${T + 4 * DAY}`) };
    const stranger = signTime(generateSigningKey(), T + 3 * DAY);
    for (const statement of [edited, stranger, { t: T + 3 * DAY }, 'soon']) {
      const a = assess(token, T + HOUR, machine.fingerprint, certificate, statement);
      assert.equal(a.verdict, 'usable');
      assert.ok('trustedTime' in a && a.trustedTime === T && a.trustedFrom === 'token');
    }
  });
});
