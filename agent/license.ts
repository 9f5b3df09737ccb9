import {
  certifiedKey, peekClaims, TrustError, verifyTime, type LicenseClaims, type SignedStatement, type UsageKind,
} from '../licensing/index.js';
import { noteTrustedTime } from './clock.js';
import type { AgentContext } from './context.js';
import { AgentError } from './errors.js';
import { formatTime } from './format.js';
import {
  requestKeyActivation, requestRenewal, requestTrial, type IssuedLicense, type TrialContact,
} from './license-api.js';
import { assessLicense, type Assessment } from './license-assess.js';
import { loadLicenseState, saveLicenseState, type LicenseState, type RefusalExit, type StoredTrustedTime } from './license-state.js';
import { asAgentError, refusalToAgentError, ServerError, ServerSilent } from './server-client.js';
import { deviceKey } from './device-key.js';
import { rebindIfMoved } from './rebind.js';
import { keepQuiet, noteAnswered, noteUnreachable } from './server-quiet.js';
import { trialSecret } from './trial-secret.js';
import { knownRoot, requireRoot, verifyIssued, type Root } from './trust-root.js';
import { reportUsage } from './usage-report.js';

/**
 * The license state machine of this machine: load the stored license, judge it offline, renew the
 * lease online when it is due, activate again when the server no longer takes the old lease, and
 * remember refusals. Commands call `checkLicense` (status shows whatever it finds) or
 * `requireLicense` (work may only go on with a license in force).
 */

export interface LicenseCheck {
  state: LicenseState | null;
  assessment: Assessment | null;
  /** The lease was renewed online during this check. */
  renewed: boolean;
  /** A renewal was due but the server could not be reached: working on the lease or its grace. */
  offline: boolean;
  /** Why a due renewal did not happen, while the license works without it. */
  renewalProblem: string | null;
  /** Why this machine may not work now; null when the license is in force. */
  problem: AgentError | null;
}

export interface LicenseInForce {
  state: LicenseState;
  claims: LicenseClaims;
  /** When this machine stops working unless it renews online: lease end plus offline grace. */
  usableUntil: number;
  offline: boolean;
}

const REFUSAL_EXITS: readonly string[] = ['LICENSE_REVOKED', 'TRIAL_EXPIRED', 'ACTIVATION_INACTIVE'] satisfies RefusalExit[];

function isRefusal(err: AgentError): err is AgentError & { exit: RefusalExit } {
  return REFUSAL_EXITS.includes(err.exit);
}

export function trialEnded(endsAt: number): AgentError {
  return new AgentError('TRIAL_EXPIRED', `the trial of this machine ended on ${formatTime(endsAt)}: buy a license, then run "ferry activate --key KEY"`);
}

export type ActivationRequest = { trial: TrialContact } | { key: string };

/**
 * The state to store for a license the server has just issued, once its token and certificate are
 * verified under the trust root; `commit` keeps what a development build came to trust with it.
 */
async function stateFromIssued(
  ctx: AgentContext,
  server: string,
  issued: IssuedLicense,
  previous: LicenseState | null,
  key: string | null,
): Promise<{ state: LicenseState; commit(): Promise<void> }> {
  const { fingerprint } = await ctx.machine();
  const { claims, commit } = await verifyIssued(ctx, server, issued, fingerprint);
  if (claims.sub !== issued.license.id || claims.aid !== issued.activationId) {
    throw new AgentError('SERVER_ERROR', `the license server ${server} sent a token for another license or activation than it named`);
  }
  const state: LicenseState = {
    format: 2,
    server,
    token: issued.token,
    licenseId: issued.license.id,
    kind: claims.kind,
    licenseExpiresAt: issued.license.expiresAt,
    activationId: issued.activationId,
    key: claims.kind === 'permanent' ? key : null,
    claimCode: issued.license.claimCode ?? (previous?.licenseId === issued.license.id ? previous.claimCode : null),
    certificate: issued.certificate,
    activatedAt: new Date(ctx.clock.wallNow).toISOString(),
    refused: null,
    lastCheck: { at: new Date(ctx.clock.now).toISOString(), result: 'activated' },
  };
  return { state, commit };
}

/**
 * Activates this machine (a trial, or a key in canonical form, as `parseKey` returns it) on
 * `server` and stores the license. Returns the stored state and whether the server made something
 * new (201) or found this machine again (200).
 */
export async function activateLicense(
  ctx: AgentContext,
  server: string,
  request: ActivationRequest,
  previous: LicenseState | null,
): Promise<{ state: LicenseState; created: boolean }> {
  const { fingerprint } = await ctx.machine();
  const key = 'key' in request ? request.key : null;
  try {
    const { publicKey } = await deviceKey(ctx.paths.deviceKey);
    const issued = key !== null
      ? await requestKeyActivation(ctx, server, fingerprint, key, publicKey)
      : await requestTrial(ctx, server, fingerprint, 'trial' in request ? request.trial : {}, {
        activationSecret: await trialSecret(ctx.paths.trialSecret),
        token: previous?.kind === 'trial' && previous.server === server ? previous.token : undefined,
      }, publicKey);
    const { state, commit } = await stateFromIssued(ctx, server, issued, previous, key);
    await commit();
    await saveLicenseState(ctx.paths, state);
    return { state, created: issued.created };
  } catch (err) {
    throw asAgentError(err);
  }
}

/** What one online check brought besides the stored state. */
interface OnlineResult {
  state: LicenseState;
  /** The server signed a new token (a check-in may renew nothing). */
  newToken: boolean;
  /** The server's signed time of this answer, verified; null when it sent none or one that does not verify. */
  signedTime: number | null;
  /** Why the answer's time was not taken, when it was not. */
  timeProblem: string | null;
}

/**
 * The newer of the stored signed time and the one just received, both verified under the
 * certificate of the token now stored: trusted time only moves forward, so an old statement
 * replayed (or a second answer of the same second) never replaces a later one.
 */
function newerTrustedTime(
  root: Root, certificate: SignedStatement, stored: StoredTrustedTime | null | undefined, received: StoredTrustedTime & { t: number },
): StoredTrustedTime {
  if (stored) {
    try {
      if (verifyTime(stored.statement, certifiedKey(root.publicKey, certificate)) >= received.t) return stored;
    } catch (err) {
      // Made under a key since rotated away, or edited: the one just received stands alone.
      if (!(err instanceof TrustError)) throw err;
    }
  }
  return { server: received.server, statement: received.statement, ...(received.boot ? { boot: received.boot } : {}) };
}

/** The answer's time, once it verifies under the certificate of the token stored with it. */
function verifiedAnswerTime(root: Root, certificate: SignedStatement, time: SignedStatement | null): { t: number } | { problem: string } {
  if (time === null) return { problem: 'its answer carried no signed time' };
  try {
    return { t: verifyTime(time, certifiedKey(root.publicKey, certificate)) };
  } catch (err) {
    if (err instanceof TrustError) return { problem: `the time in its answer was refused (${err.message})` };
    throw err;
  }
}

/**
 * Renews the lease online (or, with `checkIn`, checks in and keeps the token unless the server
 * renews it). A server that no longer takes the old lease (401: expired beyond its grace, key
 * retired, activation gone) gets a new activation: the trial of this machine again, or the stored key.
 */
async function renewOnline(ctx: AgentContext, state: LicenseState, server: string, options: { checkIn?: boolean }): Promise<OnlineResult> {
  const { fingerprint } = await ctx.machine();
  let renewal: Awaited<ReturnType<typeof requestRenewal>>;
  try {
    renewal = await requestRenewal(ctx, server, state.token, fingerprint, options);
  } catch (err) {
    if (!(err instanceof ServerError)) throw err;
    if (err.status !== 401) throw refusalToAgentError(err);
    if (state.kind === 'permanent' && state.key === null) {
      throw new AgentError('NO_LICENSE', 'the license lease has ended and no key is stored to renew it: run "ferry activate --key KEY"');
    }
    const request: ActivationRequest = state.kind === 'trial' ? { trial: {} } : { key: state.key! };
    // A new token's signed iat is this answer's time.
    const activated = (await activateLicense(ctx, server, request, state)).state;
    return { state: activated, newToken: true, signedTime: peekClaims(activated.token)!.iat * 1000, timeProblem: null };
  }
  let next: LicenseState;
  let commit: () => Promise<void> = async () => undefined;
  if (!renewal.renewal) {
    // Nothing changed and the lease is not due: the server signed nothing, the token stays.
    next = { ...state, server, licenseExpiresAt: renewal.license.expiresAt, refused: null };
  } else {
    // A renewal may come with a token of another signing key (the server rotated): its certificate
    // comes with it, and the root decides, exactly as at activation.
    const verified = await verifyIssued(ctx, server, renewal.renewal, fingerprint);
    commit = verified.commit;
    const { claims } = verified;
    // What the token says wins: a trial upgraded in place comes back permanent.
    next = {
      ...state, format: 2, server, token: renewal.renewal.token, kind: claims.kind, licenseId: claims.sub, activationId: claims.aid,
      licenseExpiresAt: renewal.license.expiresAt, certificate: renewal.renewal.certificate, refused: null,
    };
  }
  await commit();
  const root = await knownRoot(ctx);
  const time = root ? verifiedAnswerTime(root, next.certificate!, renewal.time) : { problem: 'this build has no trust root to check it against' };
  let result = renewal.renewal ? 'renewed' : 'valid';
  if ('t' in time) {
    // Paired with the time since boot at this command's start, so what passed before the answer
    // counts twice later: seconds at most, far within the clock's tolerance.
    const received = { server, statement: renewal.time!, t: time.t, ...(ctx.monotonic ? { boot: ctx.monotonic } : {}) };
    next.trustedTime = newerTrustedTime(root!, next.certificate!, state.trustedTime, received);
  } else {
    result += `; its time was not taken: ${time.problem}`;
  }
  next.lastCheck = { at: new Date(ctx.clock.now).toISOString(), result };
  await saveLicenseState(ctx.paths, next);
  return { state: next, newToken: renewal.renewal !== null, signedTime: 't' in time ? time.t : null, timeProblem: 't' in time ? null : time.problem };
}

/** Renews the lease online (see renewOnline); the stored state. */
export async function renewLicense(ctx: AgentContext, state: LicenseState, server: string, options: { checkIn?: boolean } = {}): Promise<LicenseState> {
  return (await renewOnline(ctx, state, server, options)).state;
}

/** How often a machine in use checks in with its server, whatever its lease: revocations reach it within this. */
export const CHECK_IN_EVERY_MS = 3_600_000;

/** No check-in within the last hour (by license time): the next use checks in. */
export function checkInDue(ctx: AgentContext, state: LicenseState): boolean {
  const last = state.lastCheck ? Date.parse(state.lastCheck.at) : Date.parse(state.activatedAt);
  return !(ctx.clock.now - last < CHECK_IN_EVERY_MS && last <= ctx.clock.now);
}

/**
 * What a failed online check leaves in license.json: a refusal (revoked, suspended, deactivated)
 * is remembered, so that the next command stops on it even offline; any other failure only notes
 * the check. Read again first: another command may have renewed meanwhile.
 */
async function recordFailedCheck(ctx: AgentContext, state: LicenseState, err: AgentError): Promise<LicenseState> {
  const refusal = isRefusal(err) ? { exit: err.exit, message: err.message, at: new Date(ctx.clock.wallNow).toISOString() } : null;
  const lastCheck = { at: new Date(ctx.clock.now).toISOString(), result: refusal ? err.exit.toLowerCase() : `failed: ${err.message}` };
  const current = (await loadLicenseState(ctx.paths)) ?? null;
  if (!current || current.activationId !== state.activationId || current.licenseId !== state.licenseId) return { ...state, refused: refusal ?? state.refused, lastCheck };
  const recorded: LicenseState = { ...current, refused: refusal ?? current.refused, lastCheck };
  await saveLicenseState(ctx.paths, recorded);
  return recorded;
}

/** One online check, as every caller makes it: the server's answer, or the AgentError that says why there is none. */
async function goOnline(ctx: AgentContext, state: LicenseState, server: string, options: { checkIn?: boolean }): Promise<OnlineResult | AgentError> {
  try {
    const answered = await renewOnline(ctx, state, server, options);
    await noteAnswered(ctx.paths, server);
    return answered;
  } catch (thrown) {
    const err = asAgentError(thrown);
    if (!(err instanceof AgentError)) throw thrown;
    if (err.exit === 'SERVER_UNREACHABLE') ctx.unreachableServers.add(server);
    return err;
  }
}

/**
 * Checks in with the license server while the command works: a revocation, suspension or
 * deactivation found now is remembered (`refused`), and the next command stops on it; the command
 * running now finishes. Never throws, never fails the command: an unreachable server leaves the
 * lease and its grace as they were.
 */
export async function checkIn(ctx: AgentContext, state: LicenseState): Promise<void> {
  try {
    const server = await ctx.resolveServer(state.server);
    if (ctx.unreachableServers.has(server) || (await keepQuiet(ctx.paths, server, ctx.clock.wallNow))) return;
    const result = await goOnline(ctx, state, server, { checkIn: true });
    if (result instanceof ServerSilent) await noteUnreachable(ctx.paths, server, ctx.clock.wallNow);
    if (result instanceof AgentError) await recordFailedCheck(ctx, state, result);
  } catch {
    // A check-in must never fail the command; the next one tries again.
  }
}

function judged(state: LicenseState, assessment: Assessment, extra: Partial<LicenseCheck> = {}): LicenseCheck {
  const base: LicenseCheck = { state, assessment, renewed: false, offline: false, renewalProblem: null, problem: null, ...extra };
  if (base.problem) return base;
  if (assessment.verdict === 'invalid' && assessment.untrusted) {
    base.problem = new AgentError(
      'LICENSE_UNTRUSTED',
      `the stored license was not issued under this build's trust root, or was edited (${assessment.reason}): run "ferry activate" again`,
    );
  } else if (assessment.verdict === 'invalid') {
    base.problem = new AgentError('NO_LICENSE', `the stored license is not valid on this machine (${assessment.reason}): run "ferry activate" again`);
  } else if (assessment.verdict === 'trial-ended') {
    base.problem = trialEnded(assessment.trialEndsAt);
  }
  return base;
}

function leaseEndedOffline(assessment: Assessment & { verdict: 'lease-ended' }, why: AgentError): AgentError {
  const until = assessment.usableUntil > assessment.leaseEndsAt ? ` and its offline grace on ${formatTime(assessment.usableUntil)}` : '';
  return new AgentError(
    why.exit,
    `the license lease ended on ${formatTime(assessment.leaseEndsAt)}${until}; it must be renewed online, but ${why.message}`,
  );
}

function unjudged(state: LicenseState | null, problem: AgentError): LicenseCheck {
  return { state, assessment: null, renewed: false, offline: false, renewalProblem: null, problem };
}

/**
 * The offline verdict on a stored license: its token and certificate under the root, then its
 * times, judged by the latest of the clock, its high-water mark and the trusted time (the token's
 * signed `iat`, or a check-in's signed time). A trusted time later than the clock moves the
 * high-water mark on (clock.json), so that the clock is known to be behind from then on.
 */
export async function assessStored(ctx: AgentContext, state: LicenseState, root: Root): Promise<Assessment> {
  if (state.certificate === null) {
    return { verdict: 'invalid', reason: 'it was written by an earlier ferry and has no certificate', untrusted: true };
  }
  const { fingerprint } = await ctx.machine();
  const assess = () => assessLicense({
    token: state.token, certificate: state.certificate, root: root.publicKey, fingerprint, now: ctx.clock.now, timeStatement: state.trustedTime?.statement,
  });
  const assessment = assess();
  if (!('claims' in assessment)) return assessment;
  // The file's own fields steer what ferry does (a trial reports its use): they must be the token's.
  const { claims } = assessment;
  if (claims.kind !== state.kind || claims.sub !== state.licenseId || claims.aid !== state.activationId) {
    return { verdict: 'invalid', reason: 'its kind, license or activation is not what its signed token says', untrusted: true };
  }
  const before = ctx.clock;
  const trusted = Math.max(assessment.trustedTime, sinceCheckIn(ctx, state, assessment.checkInTime) ?? 0);
  ctx.clock = await noteTrustedTime(ctx.paths.clock, before, trusted, ctx.monotonic);
  if (ctx.clock.newlySetBack && !before.newlySetBack) {
    ctx.notice(`the clock is behind the time the license server signed: it says ${formatTime(before.wallNow)}, but ${formatTime(trusted)} follows from what it signed; licenses go by ${formatTime(ctx.clock.now)}`);
  }
  // Judged again only when the time since a check-in took license time past what the verdict went by.
  return ctx.clock.now > assessment.judgedAt ? assess() : assessment;
}

/**
 * The check-in's signed time plus the time since boot that has passed since it arrived, on the
 * same boot: what the server's clock says at least now, even with clock.json removed and the clock
 * held back. Null without both times.
 */
function sinceCheckIn(ctx: AgentContext, state: LicenseState, checkInTime: number | null): number | null {
  const boot = state.trustedTime?.boot;
  const now = ctx.monotonic;
  if (checkInTime === null || !boot || !now || boot.bootId !== now.bootId || now.uptimeMs < boot.uptimeMs) return null;
  return checkInTime + (now.uptimeMs - boot.uptimeMs);
}

/**
 * The trusted-time policy of a trial: it fails closed. A trial is used only while the latest of
 * the clock, the high-water mark and the trusted time is before its end and before its lease end
 * (at most a day after the server signed the token; no offline grace). And once this machine's
 * clock is known to be set back (behind a time already seen or signed), the clock can no longer
 * say how much time has passed, so each command of a trial first gets the server's signed time
 * (a check-in, which signs no token): offline, or with an answer whose time does not verify, the
 * trial does not work. A permanent license fails open instead: set back or not, it works offline
 * to its lease end plus its grace, counted in license time.
 */
function trialNeedsServerTime(ctx: AgentContext, state: LicenseState): boolean {
  return state.kind === 'trial' && ctx.clock.setBack;
}

function trialWithoutServerTime(ctx: AgentContext, server: string, why: AgentError): AgentError {
  return new AgentError(
    why.exit,
    `this machine's clock is behind a time already seen or signed by the license server (it says ${formatTime(ctx.clock.wallNow)}); `
      + `a trial then goes only by the time ${server} signs, and ${why.message}: set the clock right, or connect to the license server`,
  );
}

/**
 * One online check and the verdict on what it brought; an AgentError when there is no answer to
 * judge (or, with `needsTime`, an answer without a signed time that verifies).
 */
async function renewAndJudge(
  ctx: AgentContext, state: LicenseState, root: Root, server: string, options: { checkIn?: boolean; needsTime?: boolean } = {},
): Promise<LicenseCheck | AgentError> {
  const result = await goOnline(ctx, state, server, options);
  if (result instanceof AgentError) return result;
  if (options.needsTime && result.signedTime === null) {
    return new AgentError('LICENSE_UNTRUSTED', `${result.timeProblem} (nothing it sent about time was kept)`);
  }
  return judged(result.state, await assessStored(ctx, result.state, root), { renewed: result.newToken });
}

/**
 * A license.json of format 1 trusted whatever keys its server offered first: it proves nothing,
 * so the server (the one it names) must renew it once, under the root, before it counts.
 */
async function confirmLegacy(ctx: AgentContext, state: LicenseState, root: Root): Promise<LicenseCheck> {
  const server = await ctx.resolveServer(state.server);
  const check = await renewAndJudge(ctx, state, root, server);
  if (!(check instanceof AgentError)) return check;
  return unjudged(state, new AgentError(
    check.exit,
    `${ctx.paths.license} was written by an earlier ferry and must be confirmed once by its license server, but ${check.message}`,
  ));
}

/** Judges this machine's license, renewing online if due. Never throws for a license problem: returns it. */
export async function checkLicense(ctx: AgentContext): Promise<LicenseCheck> {
  let state: LicenseState | null;
  try {
    state = await loadLicenseState(ctx.paths);
  } catch (err) {
    if (err instanceof AgentError) return unjudged(null, err);
    throw err;
  }
  if (!state) {
    return unjudged(null, new AgentError('NO_LICENSE', 'this machine has no license: run "ferry activate --trial" or "ferry activate --key KEY"'));
  }
  let root: Root;
  try {
    root = await requireRoot(ctx);
  } catch (err) {
    if (err instanceof AgentError) return unjudged(state, err);
    throw err;
  }
  if (state.certificate === null) return confirmLegacy(ctx, state, root);

  const assessment = await assessStored(ctx, state, root);
  // Genuine, but bound to another fingerprint: this machine's id may have changed (rebind.ts).
  if (assessment.verdict === 'invalid' && !assessment.untrusted) {
    const moved = await rebindIfMoved(ctx, state, root);
    if (moved && 'problem' in moved) return unjudged(state, moved.problem);
    if (moved) return judged(moved.state, await assessStored(ctx, moved.state, root), { renewed: true });
  }
  // Nothing online can change these: a foreign or tampered token, or a trial past its end.
  if (assessment.verdict === 'invalid' || assessment.verdict === 'trial-ended') return judged(state, assessment);

  const renewalDue = state.refused !== null || assessment.verdict === 'lease-ended' || assessment.renewDue;
  const needsTime = trialNeedsServerTime(ctx, state);
  if (!renewalDue && !needsTime) return judged(state, assessment);

  const server = await ctx.resolveServer(state.server);
  // Wanting only the time, a check-in: the server answers it without signing a token.
  const check = await renewAndJudge(ctx, state, root, server, { checkIn: !renewalDue, needsTime });
  if (!(check instanceof AgentError)) return check;
  const err = check;
  if (isRefusal(err)) return judged(await recordFailedCheck(ctx, state, err), assessment, { problem: err });
  const offline = err.exit === 'SERVER_UNREACHABLE';
  if (state.refused) {
    // Refused before, and the server cannot say otherwise now: the refusal stands.
    return judged(state, assessment, { offline, problem: new AgentError(state.refused.exit, `${state.refused.message} (not checked again: ${err.message})`) });
  }
  if (needsTime) return judged(state, assessment, { offline, problem: trialWithoutServerTime(ctx, server, err) });
  if (assessment.verdict === 'usable') return judged(state, assessment, { offline, renewalProblem: err.message });
  return judged(state, assessment, { offline, problem: leaseEndedOffline(assessment, err) });
}

/** Only a trial in force reports usage: after its end, or with a permanent license, nothing is recorded. */
export function trialInForce(check: LicenseCheck): LicenseState | null {
  return check.state?.kind === 'trial' && check.problem === null ? check.state : null;
}

/**
 * What every command that does work calls first: the license in force (renewed if due), with this
 * use reported during a trial; otherwise throws the AgentError that says why not.
 */
export async function requireLicense(ctx: AgentContext, usageKind: UsageKind): Promise<LicenseInForce> {
  const check = await checkLicense(ctx);
  // Sent while the command works: the files do not wait for the license server's answer.
  ctx.alongside(reportUsage(ctx, trialInForce(check), usageKind));
  if (check.problem) throw check.problem;
  const { state, assessment } = check;
  if (state && !check.renewed && !check.offline && checkInDue(ctx, state)) ctx.alongside(checkIn(ctx, state));
  if (!state || assessment?.verdict !== 'usable') throw new Error('a license without problem must be usable');
  if (check.offline || check.renewalProblem) {
    ctx.notice(`could not renew the license lease (${check.renewalProblem}); this machine works without renewing until ${formatTime(assessment.usableUntil)}`);
  }
  return { state, claims: assessment.claims, usableUntil: assessment.usableUntil, offline: check.offline };
}
