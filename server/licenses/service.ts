import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Pool } from 'mysql2/promise';
import {
  issueToken, keyDigest, KeyFormatError, leaseEnd, parseKey, POLICIES, TokenError, verifyToken,
  type Keyring, type LicenseClaims, type SignedStatement, type SigningKey,
} from '../../licensing/index.js';
import { AppError } from '../errors.js';
import {
  activations, inTransaction, isDuplicateKey, licenseEvents, licenses,
  type ActivationRow, type LicenseRow, type MachineFacts, type TrialRow,
} from './repository.js';
import type { LastSeenRecorder } from './last-seen.js';
import type { ActivationRequest, Licensed, License, Activation, TrialRequest } from './schemas.js';

/** How stale `last_validated_at` may get before a validation notes it again. */
const LAST_SEEN_RESOLUTION_MS = 3_600_000;
/** The longest any kind of token may be renewed after its lease ended. */
const LONGEST_GRACE_MS = Math.max(...Object.values(POLICIES).map((p) => p.offlineGraceMs));

const CLAIM_CODE_ALPHABET = '23456789ABCDEFGHJKMNPQRSTVWXYZ';

function newClaimCode(): string {
  let code = '';
  for (const byte of randomBytes(10)) code += CLAIM_CODE_ALPHABET[byte % CLAIM_CODE_ALPHABET.length];
  return code;
}

function secretDigest(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

function isTrialSecret(stored: Buffer | null, presented: string | undefined): boolean {
  if (stored === null || presented === undefined) return false;
  return timingSafeEqual(stored, secretDigest(presented));
}

export function licenseView(row: LicenseRow, options: { withClaimCode?: boolean } = {}): License {
  const view: License = {
    id: row.id,
    kind: row.kind,
    status: row.status,
    seats: row.seats,
    expiresAt: row.expires_at ? row.expires_at.toISOString() : null,
    createdAt: row.created_at.toISOString(),
  };
  if (options.withClaimCode && row.claim_code) view.claimCode = row.claim_code;
  if (row.key_hint) view.keyHint = row.key_hint;
  return view;
}

function activationView(row: ActivationRow): Activation {
  return { id: row.id, fingerprint: row.fingerprint, active: row.active === 1, createdAt: row.created_at.toISOString() };
}

/** A license that can no longer be used, whatever the activation: revoked, cancelled, or a trial past its end. */
function assertUsable(license: LicenseRow, now: Date): void {
  if (license.status === 'revoked') throw new AppError('LICENSE_REVOKED', 403, 'this license has been revoked');
  if (license.status === 'suspended') throw new AppError('LICENSE_SUSPENDED', 403, 'this license is suspended; contact support to have it reinstated');
  if (license.status === 'cancelled') throw new AppError('LICENSE_CANCELLED', 403, 'this license has been cancelled');
  if (license.expires_at && license.expires_at.getTime() <= now.getTime()) {
    throw new AppError('TRIAL_EXPIRED', 403, `the trial of this machine ended on ${license.expires_at.toISOString()}; enter a license key to go on`);
  }
}

/**
 * The token's license holds its activation, or the token is of a trial whose activation moved to
 * the permanent license it was upgraded to (orders.ts): that machine's next check-in gets a token of
 * the new license without anyone typing its key.
 */
function isOwnActivation(found: { license: LicenseRow; activation: ActivationRow }, claims: LicenseClaims): boolean {
  if (String(found.license.id) === claims.sub) return true;
  return claims.kind === 'trial' && found.activation.converted_from_license_id !== null && String(found.activation.converted_from_license_id) === claims.sub;
}

export function bearerToken(authorization: string | undefined): string {
  const token = /^Bearer ([A-Za-z0-9_.-]+)$/.exec(authorization ?? '')?.[1];
  if (!token) throw new AppError('TOKEN_MISSING', 401, 'this call needs Authorization: Bearer <license token>');
  return token;
}

export interface LicenseServiceDeps {
  db: Pool;
  signingKey: SigningKey;
  /** The root's certificate of `signingKey`: sent with every token, so that agents can check it offline. */
  certificate: SignedStatement;
  keyring: Keyring;
  trialLengthMs: number;
  lastSeen: LastSeenRecorder;
  now?: () => Date;
}

export type LicenseService = ReturnType<typeof createLicenseService>;

export function createLicenseService({ db, signingKey, certificate, keyring, trialLengthMs, lastSeen, now = () => new Date() }: LicenseServiceDeps) {
  function licensed(license: LicenseRow, activation: ActivationRow, at: Date): Licensed {
    const expiresAt = license.expires_at?.getTime() ?? null;
    const token = issueToken(
      {
        licenseId: license.id,
        activationId: activation.id,
        fingerprint: activation.fingerprint,
        kind: license.kind,
        leaseEndsAt: leaseEnd(license.kind, at.getTime(), expiresAt),
        licenseExpiresAt: expiresAt,
        now: at.getTime(),
      },
      signingKey,
    );
    return { license: licenseView(license, { withClaimCode: license.kind === 'trial' }), activation: activationView(activation), token, certificate };
  }

  /** Verifies a presented token; a lease may be renewed within its kind's offline grace. */
  function verifyPresented(token: string, at: Date): LicenseClaims {
    let claims: LicenseClaims;
    try {
      claims = verifyToken(token, keyring, { now: at.getTime(), acceptExpiredForMs: LONGEST_GRACE_MS }).claims;
    } catch (err) {
      if (err instanceof TokenError) throw new AppError(err.code, 401, err.message);
      throw err;
    }
    if (at.getTime() >= claims.exp * 1000 + POLICIES[claims.kind].offlineGraceMs) {
      throw new AppError('TOKEN_EXPIRED', 401, 'the license token has expired: activate again');
    }
    return claims;
  }

  /**
   * The one rule for every call made with a license token (`/v1/validate`, `/v1/usage`): a genuine
   * token whose activation still exists and is active, of a license still in force.
   */
  async function checkPresented(token: string, at: Date, verified?: LicenseClaims): Promise<{ claims: LicenseClaims; license: LicenseRow; activation: ActivationRow }> {
    const claims = verified ?? verifyPresented(token, at);
    const found = await activations.withLicense(db, claims.aid);
    if (!found || !isOwnActivation(found, claims) || found.activation.fingerprint !== claims.fp) {
      throw new AppError('TOKEN_UNKNOWN_ACTIVATION', 401, 'the activation of this token no longer exists: activate again');
    }
    const { license, activation } = found;
    assertUsable(license, at);
    if (activation.active !== 1) {
      throw new AppError('ACTIVATION_INACTIVE', 403, 'this machine has been deactivated; activate it again to use it');
    }
    return { claims, license, activation };
  }

  /**
   * A token of `trial` for this machine, signed by one of our keys, however old: the proof that a
   * request comes from where the trial was activated, for a trial without a secret.
   */
  function isTokenOfTrial(token: string | undefined, trial: TrialRow, fingerprint: string, at: Date): boolean {
    if (token === undefined) return false;
    try {
      const { claims } = verifyToken(token, keyring, { now: at.getTime(), acceptExpiredForMs: at.getTime(), fingerprint });
      return claims.kind === 'trial' && claims.sub === String(trial.id);
    } catch (err) {
      if (err instanceof TokenError) return false;
      throw err;
    }
  }

  /**
   * Only where a trial started may it be had again: the fingerprint is no secret (anyone who knows
   * the machine id can compute it), the activation secret is. A trial without one (from before
   * migration 005, or started by an agent too old to send one) takes the secret of the first request
   * that shows one of its tokens. Anything else learns that the trial exists and when it ends, and
   * gets nothing to act on it with.
   */
  async function assertTrialHolder(trial: TrialRow, request: TrialRequest, token: string | undefined, at: Date): Promise<void> {
    const secret = request.activationSecret;
    if (isTrialSecret(trial.trial_secret_hash, secret)) return;
    if (trial.trial_secret_hash === null && secret !== undefined && isTokenOfTrial(token, trial, request.fingerprint, at)) {
      if (await licenses.adoptTrialSecret(db, trial.id, secretDigest(secret))) return;
      // Another request of the same machine set one a moment ago: this one counts if it is the same.
      const current = await licenses.trialOfMachine(db, request.fingerprint);
      if (current && isTrialSecret(current.trial_secret_hash, secret)) return;
    }
    // For support, and for the owner in My data: someone asked for this trial without its secret.
    // No address is kept: it would be a stranger's, shown to the owner.
    await licenseEvents.record(db, trial.id, 'trial_repeat', request.fingerprint, null, at);
    const ends = trial.expires_at ? ` (it ends ${trial.expires_at.toISOString()})` : '';
    throw new AppError(
      'TRIAL_EXISTS', 409,
      `this machine already had its trial${ends}; only the installation that started it, which holds its activation secret, can activate it again`,
    );
  }

  /** Same machine, same trial: the trial already bound to this fingerprint, made usable again for its holder. */
  async function existingTrial(
    trial: TrialRow, request: TrialRequest, token: string | undefined, facts: MachineFacts, at: Date,
  ): Promise<Licensed> {
    assertUsable(trial, at);
    await assertTrialHolder(trial, request, token, at);
    let license: LicenseRow = trial;
    // Asking again with an email is how a trial user signs up for reminders.
    if (request.email !== undefined && request.email !== license.email) {
      await licenses.updateTrialContact(db, license.id, request.email, request.marketingOptIn ?? false);
      license = { ...license, email: request.email };
    }
    let activation = await activations.ofMachine(db, license.id, request.fingerprint);
    if (!activation) {
      await activations.insert(db, license.id, request.fingerprint, facts, at).catch((err) => {
        if (!isDuplicateKey(err)) throw err;
      });
      activation = (await activations.ofMachine(db, license.id, request.fingerprint))!;
    } else if (activation.active !== 1) {
      await activations.reactivate(db, activation.id, facts, at);
      activation = { ...activation, active: 1 };
    }
    return licensed(license, activation, at);
  }

  return {
    verifyPresented,

    /**
     * `POST /v1/trials`: one trial per machine, ever; concurrent requests from one machine make one.
     * `token`: the Bearer token the request came with, if any (it can vouch for a trial from before
     * activation secrets).
     */
    async startTrial(request: TrialRequest, ip: string, token?: string): Promise<{ created: boolean; result: Licensed }> {
      const at = now();
      const facts: MachineFacts = { ...request, ip };
      // The agent makes the secret, so that a retry after a lost answer is the same request.
      const secretHash = request.activationSecret === undefined ? null : secretDigest(request.activationSecret);
      for (let attempt = 0; attempt < 3; attempt++) {
        const existing = await licenses.trialOfMachine(db, request.fingerprint);
        if (existing) return { created: false, result: await existingTrial(existing, request, token, facts, at) };
        try {
          const result = await inTransaction(db, async (tx) => {
            const licenseId = await licenses.insertTrial(tx, {
              fingerprint: request.fingerprint,
              secretHash,
              expiresAt: new Date(at.getTime() + trialLengthMs),
              email: request.email ?? null,
              marketingOptIn: request.email !== undefined && (request.marketingOptIn ?? false),
              claimCode: newClaimCode(),
              now: at,
            });
            await activations.insert(tx, licenseId, request.fingerprint, facts, at);
            return licenseId;
          });
          const license = (await licenses.byId(db, result))!;
          const activation = (await activations.ofMachine(db, result, request.fingerprint))!;
          return { created: true, result: licensed(license, activation, at) };
        } catch (err) {
          // Another request from this machine won the race (go round and return its trial), or the
          // random claim code collided (go round with a new one).
          if (!isDuplicateKey(err)) throw err;
        }
      }
      throw new AppError('TRIAL_CONFLICT', 409, 'the trial could not be started; try again');
    },

    /** `POST /v1/activations`: takes a seat in a transaction that locks the license row. */
    async activate(request: ActivationRequest, ip: string): Promise<{ created: boolean; result: Licensed }> {
      let canonical: string;
      try {
        canonical = parseKey(request.key);
      } catch (err) {
        if (err instanceof KeyFormatError) throw new AppError('KEY_FORMAT', 400, err.message);
        throw err;
      }
      const at = now();
      const facts: MachineFacts = { ...request, ip };
      type Outcome = { created: boolean; license: LicenseRow; activation: ActivationRow } | { refused: LicenseRow };
      const outcome = await inTransaction(db, async (tx): Promise<Outcome> => {
        const license = await licenses.byKeyDigestForUpdate(tx, keyDigest(canonical));
        if (!license) throw new AppError('LICENSE_NOT_FOUND', 404, 'no license has this key');
        assertUsable(license, at);
        const existing = await activations.ofMachine(tx, license.id, request.fingerprint);
        if (existing?.active === 1) return { created: false, license, activation: existing };
        const used = await activations.countActive(tx, license.id);
        if (used >= license.seats) return { refused: license };
        if (existing) {
          await activations.reactivate(tx, existing.id, facts, at);
          return { created: false, license, activation: { ...existing, active: 1 } };
        }
        const id = await activations.insert(tx, license.id, request.fingerprint, facts, at);
        return { created: true, license, activation: (await activations.byId(tx, id))! };
      });
      if ('refused' in outcome) {
        await licenseEvents.record(db, outcome.refused.id, 'seat_refused', request.fingerprint, ip, at);
        throw new AppError(
          'SEATS_EXHAUSTED', 409,
          `all ${outcome.refused.seats} seats of this license are in use; deactivate another machine first`,
        );
      }
      return { created: outcome.created, result: licensed(outcome.license, outcome.activation, at) };
    },

    checkPresented,

    /** `POST /v1/validate`: checks the activation and license now, and renews the lease. */
    async validate(token: string, presentedBy: string | undefined, ip: string): Promise<Licensed> {
      const at = now();
      const claims = verifyPresented(token, at);
      if (presentedBy !== undefined && presentedBy !== claims.fp) {
        await licenseEvents.record(db, Number(claims.sub), 'wrong_machine', presentedBy, ip, at);
        throw new AppError('TOKEN_WRONG_MACHINE', 403, 'this license token belongs to another machine');
      }
      const { license, activation } = await checkPresented(token, at, claims);
      if (!activation.last_validated_at || at.getTime() - activation.last_validated_at.getTime() > LAST_SEEN_RESOLUTION_MS) {
        lastSeen.record(activation.id);
      }
      return licensed(license, activation, at);
    },

    /** `DELETE /v1/activations/:id`: frees the seat. Only the activation's own token may do it. */
    async deactivate(token: string, activationId: number, ip: string): Promise<void> {
      const at = now();
      const claims = verifyPresented(token, at);
      if (claims.aid !== activationId) {
        throw new AppError('TOKEN_NOT_FOR_ACTIVATION', 403, 'a token can deactivate only its own activation');
      }
      const activation = await activations.byId(db, activationId);
      if (!activation || String(activation.license_id) !== claims.sub) {
        throw new AppError('ACTIVATION_NOT_FOUND', 404, 'no such activation');
      }
      if (activation.active === 1) {
        await activations.deactivate(db, activationId, at);
        await licenseEvents.record(db, activation.license_id, 'deactivated', activation.fingerprint, ip, at);
      }
    },
  };
}
