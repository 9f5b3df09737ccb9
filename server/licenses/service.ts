import { createHash, hash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Pool } from 'mysql2/promise';
import {
  issueToken, keyDigest, KeyFormatError, leaseEnd, parseKey, peekClaims, POLICIES, TokenError, verifyToken,
  type Keyring, type LicenseClaims, type SignedStatement, type SigningKey,
} from '../../licensing/index.js';
import { AppError } from '../errors.js';
import {
  activations, inTransaction, isDuplicateKey, licenseEvents, licenses,
  type ActivationRow, type LicenseFacts, type LicenseRow, type MachineFacts, type TrialRow,
} from './repository.js';
import type { LastSeenRecorder } from './last-seen.js';
import type { ActivationFacts, ActivationState, HeldActivation } from './activation-state.js';
import type { LicenseChanges } from './license-changes.js';
import { rebinds } from './rebinds-repository.js';
import type { PaceRefusal, Velocity } from './velocity.js';
import type { ActivationRequest, Licensed, License, Activation, TrialRequest, Validated } from './schemas.js';

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

/** The last header seen and its `kid`: every token under one key has the same header, so it is parsed once. */
let lastHeader: { segment: string; kid: string | undefined } = { segment: '', kid: undefined };

/** The `kid` in a token's header: a token under a key other than the active one is renewed (rotation). */
function signingKid(token: string): string | undefined {
  const segment = token.slice(0, token.indexOf('.'));
  if (segment === lastHeader.segment) return lastHeader.kid;
  let kid: string | undefined;
  try {
    const header = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as { kid?: unknown };
    kid = typeof header.kid === 'string' ? header.kid : undefined;
  } catch {
    kid = undefined;
  }
  lastHeader = { segment, kid };
  return kid;
}

/** What the server remembers of the last token it issued to an activation (migration 013). */
function tokenDigest(token: string): Buffer {
  // The one-shot hash: no Hash object to make at every check-in.
  return hash('sha256', token, 'buffer');
}

function secretDigest(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

function isTrialSecret(stored: Buffer | null, presented: string | undefined): boolean {
  if (stored === null || presented === undefined) return false;
  return timingSafeEqual(stored, secretDigest(presented));
}

export function licenseView(row: LicenseFacts, options: { withClaimCode?: boolean } = {}): License {
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

/** The license as the agent's calls show it (trials with their claim code). */
export function viewOf(license: LicenseFacts): License {
  return licenseView(license, { withClaimCode: license.kind === 'trial' });
}

function activationView(row: ActivationRow): Activation {
  return { id: row.id, fingerprint: row.fingerprint, active: row.active === 1, createdAt: row.created_at.toISOString() };
}

/** A license that can no longer be used, whatever the activation: revoked, cancelled, or a trial past its end. */
export function assertUsable(license: LicenseFacts, now: Date): void {
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
function isOwnActivation(found: HeldActivation, claims: LicenseClaims): boolean {
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
  state: ActivationState;
  changes: LicenseChanges;
  velocity: Velocity;
  now?: () => Date;
}

/** A presented token, found genuine, with what it names as validations read it. */
interface Presented {
  claims: LicenseClaims;
  found: HeldActivation | null;
  /** It is the token last issued to its activation (recognised by its digest). */
  current: boolean;
}

export type LicenseService = ReturnType<typeof createLicenseService>;

export function createLicenseService({
  db, signingKey, certificate, keyring, trialLengthMs, lastSeen, state, changes, velocity, now = () => new Date(),
}: LicenseServiceDeps) {
  /** Signs a new lease for an activation and remembers its digest, before the answer goes out. */
  async function issue(license: LicenseFacts, activation: { id: number; fingerprint: string }, at: Date): Promise<string> {
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
    // Before the answer: the agent's next validation with this token is then recognised by its digest.
    await activations.setTokenDigest(db, activation.id, tokenDigest(token));
    // Held with the digest before: its next validation here reads it again (other servers do when
    // they see a digest they do not hold).
    state.forgetActivation(activation.id);
    return token;
  }

  async function licensed(license: LicenseFacts, activation: ActivationRow, at: Date): Promise<Licensed> {
    const token = await issue(license, activation, at);
    return { license: viewOf(license), activation: activationView(activation), token, certificate };
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
    assertLeaseUsable(claims, at);
    return claims;
  }

  /** Whether a lease may still be used or renewed at `at`: its end plus its kind's offline grace. */
  function assertLeaseUsable(claims: LicenseClaims, at: Date): void {
    if (at.getTime() >= claims.exp * 1000 + POLICIES[claims.kind].offlineGraceMs) {
      throw new AppError('TOKEN_EXPIRED', 401, 'the license token has expired: activate again');
    }
  }

  /** Constant-time, as the digest of a token is as good as the token to whoever learns it early. */
  const isDigestOf = (token: string, found: HeldActivation | null) =>
    found?.tokenDigest != null && found.tokenDigest.length === 32 && timingSafeEqual(found.tokenDigest, tokenDigest(token));

  /** The claims of a token, read without verification; null unless they name an activation. */
  function peekActivation(token: string): LicenseClaims | null {
    const peeked = peekClaims(token);
    return peeked && Number.isSafeInteger(peeked.aid) && peeked.aid > 0 ? peeked : null;
  }

  /**
   * The common case, answered from memory with nothing to wait for: the token last issued to an
   * activation held in memory, recognised by its digest. Null: ask `presented`.
   */
  function presentedFromMemory(token: string, peeked: LicenseClaims | null, at: Date): Presented | null {
    if (!peeked) return null;
    const held = state.held(peeked.aid);
    if (!held || !isDigestOf(token, held)) return null;
    assertLeaseUsable(peeked, at);
    return { claims: peeked, found: held, current: true };
  }

  /**
   * A genuine token and what it names. The token last issued to its activation is recognised by
   * its SHA-256 (no signature to verify: we signed exactly these bytes); any other is verified in
   * full, as an older token still in its grace may be. What the activation is comes from memory
   * (activation-state.ts), or from MariaDB when it is not held, or held with another digest (another
   * server may have renewed the token since).
   */
  async function presented(token: string, at: Date): Promise<Presented> {
    const peeked = peekActivation(token);
    const fromMemory = presentedFromMemory(token, peeked, at);
    if (fromMemory) return fromMemory;
    if (peeked) {
      const found = await state.read(peeked.aid);
      if (isDigestOf(token, found)) {
        assertLeaseUsable(peeked, at);
        return { claims: peeked, found, current: true };
      }
      const claims = verifyPresented(token, at);
      return { claims, found: claims.aid === peeked.aid ? found : await state.get(claims.aid), current: false };
    }
    const claims = verifyPresented(token, at);
    return { claims, found: await state.get(claims.aid), current: false };
  }

  /** The activation of a genuine token, if it still exists and is active, of a license still in force. */
  function assertInForce({ claims, found }: Presented, at: Date): HeldActivation {
    if (!found || !isOwnActivation(found, claims) || found.activation.fingerprint !== claims.fp) {
      throw new AppError('TOKEN_UNKNOWN_ACTIVATION', 401, 'the activation of this token no longer exists: activate again');
    }
    assertUsable(found.license, at);
    if (found.activation.active !== 1) {
      throw new AppError('ACTIVATION_INACTIVE', 403, 'this machine has been deactivated; activate it again to use it');
    }
    return found;
  }

  /**
   * The one rule for every call made with a license token (`/v1/validate`, `/v1/usage`): a genuine
   * token whose activation still exists and is active, of a license still in force.
   */
  async function checkPresented(token: string, at: Date): Promise<{ claims: LicenseClaims; license: LicenseFacts; activation: ActivationFacts }> {
    const found = await presented(token, at);
    const { license, activation } = assertInForce(found, at);
    return { claims: found.claims, license, activation };
  }

  /**
   * A check-in changes nothing when its token is the current one, signed for what the license is
   * now, with more of its lease left than the point where the agent renews: then no new token.
   */
  function needsNewToken(token: string, { claims, current }: Presented, license: LicenseFacts, at: Date): boolean {
    if (!current || claims.kind !== license.kind || signingKid(token) !== signingKey.kid) return true;
    const licenseEnd = license.expires_at ? Math.floor(license.expires_at.getTime() / 1000) : undefined;
    if (claims.lic_exp !== licenseEnd) return true;
    return claims.exp * 1000 - at.getTime() <= POLICIES[claims.kind].renewWhenLeftMs;
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

  /**
   * The same machine activating again keeps the device key it now presents (its ferry home may have
   * been made anew); the request carried the credential. Staff see the change in the license's events.
   */
  async function keepDeviceKey(activation: ActivationRow, facts: MachineFacts, at: Date): Promise<void> {
    const { replaced } = await activations.presentDeviceKey(db, activation.id, facts);
    if (replaced) await licenseEvents.record(db, activation.license_id, 'device_key_replaced', activation.fingerprint, facts.ip, at);
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
      await assertTrialNotMovedAway(trial, request.fingerprint, facts.ip, at);
      await activations.insert(db, license.id, request.fingerprint, facts, at).catch((err) => {
        if (!isDuplicateKey(err)) throw err;
      });
      activation = (await activations.ofMachine(db, license.id, request.fingerprint))!;
    } else if (activation.active !== 1) {
      await activations.reactivate(db, activation.id, facts, at);
      await changes.activationChanged(activation.id);
      activation = { ...activation, active: 1 };
    }
    await keepDeviceKey(activation, facts, at);
    return licensed(license, activation, at);
  }

  /** The rest of a validation, once the token is found genuine: synchronous unless something must be written. */
  function validated(token: string, found: Presented, presentedBy: string | undefined, ip: string, checkIn: boolean, at: Date): Validated | Promise<Validated> {
    if (presentedBy !== undefined && presentedBy !== found.claims.fp) {
      return licenseEvents.record(db, Number(found.claims.sub), 'wrong_machine', presentedBy, ip, at).then(() => {
        throw new AppError('TOKEN_WRONG_MACHINE', 403, 'this license token belongs to another machine');
      });
    }
    const { license, activation } = assertInForce(found, at);
    const { lastValidatedMs } = activation;
    if (lastValidatedMs === null || at.getTime() - lastValidatedMs > LAST_SEEN_RESOLUTION_MS) {
      lastSeen.record(activation.id);
      // What is held says so too, until the row is read again: noted once, not at every check-in.
      state.noteValidated(activation.id, at.getTime());
    }
    const checkedAt = at.toISOString();
    if (checkIn && !needsNewToken(token, found, license, at)) return { valid: true, license: viewOf(license), checkedAt };
    return issue(license, activation, at).then((renewed) => ({ valid: true, license: viewOf(license), token: renewed, certificate, checkedAt }));
  }

  /**
   * A trial has one machine: where its activation moved to another machine id (a rebind), the
   * machine it left (an old copy of the ferry home, say) cannot take it up again beside it.
   */
  async function assertTrialNotMovedAway(trial: TrialRow, fingerprint: string, ip: string, at: Date): Promise<void> {
    if (!(await rebinds.activeElsewhere(db, trial.id, fingerprint))) return;
    await licenseEvents.record(db, trial.id, 'trial_moved', fingerprint, ip, at);
    throw new AppError(
      'TRIAL_MOVED', 409,
      'this trial moved to another machine id of the same installation (a rebind) and is in use there; deactivate it there to use it here',
    );
  }

  return {
    verifyPresented,

    /** A token for this activation as it is now (a rebind: its new fingerprint), as every activation gets. */
    issue: licensed,

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
        await velocity.assertTrialPace(db, request.fingerprint, ip, at);
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
          await velocity.noteTrial(ip, at);
          return { created: true, result: await licensed(license, activation, at) };
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
      type Outcome =
        | { created: boolean; license: LicenseRow; activation: ActivationRow } | { refused: LicenseRow } | { tooFast: LicenseRow; pace: PaceRefusal };
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
        const pace = await velocity.newMachineRefusal(tx, license, at);
        if (pace) return { tooFast: license, pace };
        const id = await activations.insert(tx, license.id, request.fingerprint, facts, at);
        return { created: true, license, activation: (await activations.byId(tx, id))! };
      });
      if ('tooFast' in outcome) {
        await licenseEvents.record(db, outcome.tooFast.id, 'activation_velocity', request.fingerprint, ip, at, outcome.pace.detail);
        throw new AppError('ACTIVATION_VELOCITY', 429, outcome.pace.message, outcome.pace.retryAfterSeconds);
      }
      if ('refused' in outcome) {
        await licenseEvents.record(db, outcome.refused.id, 'seat_refused', request.fingerprint, ip, at);
        throw new AppError(
          'SEATS_EXHAUSTED', 409,
          `all ${outcome.refused.seats} seats of this license are in use; deactivate another machine first`,
        );
      }
      // Activated again after a deactivation: servers that hold it inactive must read it again.
      if (!outcome.created) {
        await keepDeviceKey(outcome.activation, facts, at);
        await changes.activationChanged(outcome.activation.id);
      }
      return { created: outcome.created, result: await licensed(outcome.license, outcome.activation, at) };
    },

    checkPresented,

    /** For whatever changes a license elsewhere (revoke, suspend, seats): every server forgets it. */
    licenseChanged: (licenseId: number) => changes.licenseChanged(licenseId),

    /**
     * `POST /v1/validate`: checks the activation and license now, and renews the lease. A check-in
     * (`checkIn`, agents since check-ins) gets a new token (with its certificate) only when one is due.
     * The answer is not a promise when there was nothing to wait for (the common check-in, answered
     * from memory): the route sends it without a turn of the event loop.
     */
    validate(token: string, presentedBy: string | undefined, ip: string, checkIn = false): Validated | Promise<Validated> {
      const at = now();
      const fromMemory = presentedFromMemory(token, peekActivation(token), at);
      return fromMemory ? validated(token, fromMemory, presentedBy, ip, checkIn, at) : presented(token, at).then((found) => validated(token, found, presentedBy, ip, checkIn, at));
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
        await changes.activationChanged(activationId);
        await licenseEvents.record(db, activation.license_id, 'deactivated', activation.fingerprint, ip, at);
      }
    },
  };
}
