import { createPublicKey, randomBytes, verify } from 'node:crypto';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import type { Redis } from 'ioredis';
import { rebindStatement, TokenError, verifyToken, type Keyring, type LicenseClaims } from '../../licensing/index.js';
import { AppError } from '../errors.js';
import type { LicenseChanges } from './license-changes.js';
import { activations, inTransaction, licenseEvents, licenses, type ActivationRow, type LicenseRow } from './repository.js';
import { rebinds, REBIND_WINDOW_MS, type RebindRefusal } from './rebinds-repository.js';
import type { Licensed } from './schemas.js';
import { assertUsable } from './service.js';

/**
 * Rebinds: a machine whose id changed (a kernel upgrade, a VM move, WSL) has a new fingerprint,
 * and its token, bound to the old one, no longer counts. Rather than a new seat or a new trial, its
 * activation moves to the new fingerprint, when the request is signed by the activation's device
 * key (which only the installation holding the activation has) over a challenge this server issued
 * for the move (so a signature cannot be used twice), within the license's budget of moves per
 * rolling year. The activation keeps its seat, its id and its trial's end; the old fingerprint's
 * token stops working (every server drops its cached copy), and a trial's new fingerprint counts
 * as having had the trial.
 */

/** How long a challenge may wait for its rebind: long enough for a slow link, too short to hoard. */
export const CHALLENGE_TTL_MS = 120_000;

export interface RebindRequest {
  fingerprint: string;
  challenge: string;
  signature: string;
}

export interface Rebound extends Licensed {
  rebinds: { used: number; budget: number; left: number };
}

export interface RebindDeps {
  db: Pool;
  redis: Pick<Redis, 'set' | 'getdel'>;
  redisPrefix: string;
  keyring: Keyring;
  /** REBIND_BUDGET: moves per license and rolling year, unless staff set the license's own. */
  defaultBudget: number;
  changes: LicenseChanges;
  /** The license service's token issuing (it records the token's digest, as for every token). */
  issue(license: LicenseRow, activation: ActivationRow, at: Date): Promise<Licensed>;
  now?: () => Date;
}

/** What a refusal tells the caller; the reason is what is recorded. */
class Refused extends AppError {
  constructor(readonly reason: RebindRefusal, code: string, status: number, message: string) {
    super(code, status, message);
  }
}

function isDeviceSignature(deviceKey: Buffer, statement: string, signature: string): boolean {
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: deviceKey.toString('base64url') }, format: 'jwk' });
  try {
    return verify(null, Buffer.from(statement, 'utf8'), key, Buffer.from(signature, 'base64url'));
  } catch {
    return false;
  }
}

const day = (d: Date) => d.toISOString().slice(0, 10);

export type Rebinds = ReturnType<typeof createRebinds>;

export function createRebinds({ db, redis, redisPrefix, keyring, defaultBudget, changes, issue, now = () => new Date() }: RebindDeps) {
  const challengeKey = (challenge: string) => `${redisPrefix}:rebind-challenge:${challenge}`;

  /**
   * A token of ours for this activation, however old: a machine may have been away for months
   * when its id changed. The device key's signature is the proof; the token names the move's start.
   */
  function tokenFor(token: string, activationId: number, at: Date): LicenseClaims {
    let claims: LicenseClaims;
    try {
      claims = verifyToken(token, keyring, { now: at.getTime(), acceptExpiredForMs: at.getTime() }).claims;
    } catch (err) {
      if (err instanceof TokenError) throw new AppError(err.code, 401, err.message);
      throw err;
    }
    if (claims.aid !== activationId) throw new AppError('TOKEN_NOT_FOR_ACTIVATION', 403, 'a token can move only its own activation');
    return claims;
  }

  async function activationOf(claims: LicenseClaims): Promise<ActivationRow> {
    const activation = await activations.byId(db, claims.aid);
    if (!activation || String(activation.license_id) !== claims.sub) throw new AppError('ACTIVATION_NOT_FOUND', 404, 'no such activation');
    return activation;
  }

  async function budgetOf(licenseId: number): Promise<number> {
    return (await rebinds.ownBudget(db, licenseId)) ?? defaultBudget;
  }

  /** Takes the challenge: true once, for the activation it was issued to, within its time. */
  async function takeChallenge(challenge: string, activationId: number): Promise<boolean> {
    return (await redis.getdel(challengeKey(challenge))) === String(activationId);
  }

  /** The move itself, in a transaction on the locked license row: budget and conflicts are exact under concurrency. */
  async function move(activation: ActivationRow, to: string, ip: string, at: Date): Promise<{ license: LicenseRow; used: number; budget: number }> {
    return inTransaction(db, async (tx) => {
      const [locked] = await tx.execute<RowDataPacket[]>('SELECT id FROM licenses WHERE id = ? FOR UPDATE', [activation.license_id]);
      if (locked.length === 0) throw new AppError('ACTIVATION_NOT_FOUND', 404, 'no such activation');
      const license = (await licenses.byId(tx, activation.license_id))!;
      try {
        assertUsable(license, at);
      } catch (err) {
        if (err instanceof AppError) throw new Refused('license_not_usable', err.code, err.statusCode, err.message);
        throw err;
      }
      const current = await activations.byId(tx, activation.id);
      if (!current || current.active !== 1) {
        throw new Refused('activation_inactive', 'ACTIVATION_INACTIVE', 403, 'this machine has been deactivated; activate it again to use it');
      }
      if (current.fingerprint !== activation.fingerprint) {
        throw new Refused('stale_token', 'REBIND_STALE', 409, 'this activation has moved to another machine id since this token was issued');
      }
      const budget = (await rebinds.ownBudget(tx, license.id)) ?? defaultBudget;
      const { used, oldest } = await rebinds.used(tx, license.id, at);
      if (used >= budget) {
        const next = oldest ? ` The next move is possible from ${day(new Date(oldest.getTime() + REBIND_WINDOW_MS))}.` : '';
        throw new Refused(
          'budget_exhausted', 'REBIND_BUDGET_EXHAUSTED', 403,
          `this license's machines have moved to a new machine id ${used} times in the last 365 days, its whole budget (${budget} a year).${next}`
            + ' Deactivate a machine that no longer uses it and activate this one, or contact support: staff can allow more moves',
        );
      }
      if (await activations.ofMachine(tx, license.id, to)) {
        throw new Refused('fingerprint_in_use', 'REBIND_CONFLICT', 409, 'this license already has an activation for the new machine id: use that one, or deactivate it first');
      }
      if (license.kind === 'trial' && (await rebinds.otherTrialOf(tx, to, license.id)) !== null) {
        throw new Refused('trial_of_other_machine', 'TRIAL_EXISTS', 409, 'the new machine id already had a trial of its own; a trial cannot move onto it');
      }
      await tx.execute('UPDATE activations SET fingerprint = ?, ip = ? WHERE id = ?', [to, ip, activation.id]);
      // One trial per machine, ever: the machine it moved to has had it (the one it left still has).
      if (license.kind === 'trial') await rebinds.addTrialMachine(tx, license.id, to, at);
      await rebinds.record(tx, { licenseId: license.id, activationId: activation.id, from: activation.fingerprint, to, ip, outcome: 'rebound', reason: null, at });
      await licenseEvents.record(tx, license.id, 'rebound', to, ip, at, `activation ${activation.id} moved from ${activation.fingerprint.slice(0, 12)}… (${used + 1} of ${budget} this year)`);
      return { license, used: used + 1, budget };
    });
  }

  return {
    /** `POST /v1/activations/:id/rebind-challenge`: a challenge for one move of this activation, good for two minutes. */
    async challenge(token: string, activationId: number): Promise<{ challenge: string; expiresAt: string }> {
      const at = now();
      const claims = tokenFor(token, activationId, at);
      await activationOf(claims);
      const challenge = randomBytes(32).toString('base64url');
      await redis.set(challengeKey(challenge), String(activationId), 'PX', CHALLENGE_TTL_MS);
      return { challenge, expiresAt: new Date(at.getTime() + CHALLENGE_TTL_MS).toISOString() };
    },

    /** `POST /v1/activations/:id/rebind`: moves the activation to `request.fingerprint`, or refuses and records why. */
    async rebind(token: string, activationId: number, request: RebindRequest, ip: string): Promise<Rebound> {
      const at = now();
      const claims = tokenFor(token, activationId, at);
      const activation = await activationOf(claims);
      const from = claims.fp;
      const to = request.fingerprint;
      try {
        // Taken before anything else is looked at: a challenge answers one attempt, right or wrong.
        if (!(await takeChallenge(request.challenge, activationId))) {
          throw new Refused('challenge_unknown', 'REBIND_CHALLENGE_INVALID', 401, 'the rebind challenge is unknown, used already or expired: ask for a new one');
        }
        const deviceKey = await activations.deviceKey(db, activationId);
        if (deviceKey === null) {
          throw new Refused('no_device_key', 'REBIND_NO_DEVICE_KEY', 403, 'this activation was made by a ferry without device keys, which cannot prove a move: activate again');
        }
        if (!isDeviceSignature(deviceKey, rebindStatement({ activationId, fromFingerprint: from, toFingerprint: to, challenge: request.challenge }), request.signature)) {
          throw new Refused('bad_signature', 'REBIND_SIGNATURE_INVALID', 403, "the rebind is not signed by this activation's device key");
        }
        if (activation.fingerprint === to) {
          // Moved already (the answer to an earlier rebind was lost): the token of the move again, no second move counted.
          const license = (await licenses.byId(db, activation.license_id))!;
          assertUsable(license, at);
          const budget = await budgetOf(license.id);
          const { used } = await rebinds.used(db, license.id, at);
          return { ...(await issue(license, activation, at)), rebinds: { used, budget, left: Math.max(0, budget - used) } };
        }
        if (activation.fingerprint !== from) {
          throw new Refused('stale_token', 'REBIND_STALE', 409, 'this activation has moved to another machine id since this token was issued');
        }
        const { license, used, budget } = await move(activation, to, ip, at);
        // Every server drops what it cached of the activation: the old fingerprint's token is refused everywhere.
        await changes.activationChanged(activation.id);
        const issued = await issue(license, { ...activation, fingerprint: to }, at);
        return { ...issued, rebinds: { used, budget, left: Math.max(0, budget - used) } };
      } catch (err) {
        if (err instanceof Refused) {
          await rebinds.record(db, { licenseId: activation.license_id, activationId, from, to, ip, outcome: 'refused', reason: err.reason, at });
          await licenseEvents.record(db, activation.license_id, 'rebind_refused', to, ip, at, err.reason);
          throw new AppError(err.code, err.statusCode, err.message);
        }
        throw err;
      }
    },

    /** For /admin: the license's budget, its own or the default, and what is used of it now. */
    async budget(licenseId: number): Promise<{ budget: number; own: boolean; used: number; left: number }> {
      const own = await rebinds.ownBudget(db, licenseId);
      const budget = own ?? defaultBudget;
      const { used } = await rebinds.used(db, licenseId, now());
      return { budget, own: own !== null, used, left: Math.max(0, budget - used) };
    },

    defaultBudget,
  };
}
