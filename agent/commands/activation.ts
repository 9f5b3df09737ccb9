import { KeyFormatError, parseKey } from '../../licensing/index.js';
import type { AgentContext } from '../context.js';
import { AgentError } from '../errors.js';
import { formatTime } from '../format.js';
import { requestDeactivation } from '../license-api.js';
import { loadLicenseState, removeLicenseState, type LicenseState } from '../license-state.js';
import { activateLicense, assessStored, renewLicense, trialEnded, type ActivationRequest } from '../license.js';
import { removeDeviceKey } from '../device-key.js';
import { rebindIfMoved } from '../rebind.js';
import { knownRoot, requireRoot } from '../trust-root.js';
import { refusalToAgentError, ServerError } from '../server-client.js';
import { reportUsage, sendSpooledUsage } from '../usage-report.js';
import { removeChainHead } from '../usage-chain.js';
import { discardSpool } from '../usage-spool.js';

export interface ActivateOptions {
  trial?: boolean;
  key?: string;
  email?: string;
  marketing?: boolean;
  /** `--i-am-13-or-older`: the age confirmation, for scripts (off a terminal nobody can be asked). */
  iAm13OrOlder?: boolean;
}

/** Checks the flags together, and the key's format on this machine: a typo never costs a request. */
function activationRequest(options: ActivateOptions): ActivationRequest {
  if (Boolean(options.trial) === (options.key !== undefined)) {
    throw new AgentError('USAGE', 'activate needs either --trial or --key KEY');
  }
  if (options.key !== undefined) {
    if (options.email !== undefined || options.marketing) {
      throw new AgentError('USAGE', '--email and --marketing go with --trial (a purchased key already has its customer)');
    }
    try {
      return { key: parseKey(options.key) };
    } catch (err) {
      if (err instanceof KeyFormatError) throw new AgentError('BAD_KEY_FORMAT', `bad license key: ${err.message}`);
      throw err;
    }
  }
  if (options.marketing && options.email === undefined) {
    throw new AgentError('USAGE', '--marketing needs --email: marketing mail would go to that address');
  }
  if (options.email !== undefined && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(options.email)) {
    throw new AgentError('USAGE', `--email: "${options.email}" is not an email address`);
  }
  if (options.iAm13OrOlder && options.email === undefined) {
    throw new AgentError('USAGE', '--i-am-13-or-older goes with --email: it confirms the age of whoever gives the address');
  }
  return { trial: { email: options.email, marketingOptIn: options.email === undefined ? undefined : Boolean(options.marketing) } };
}

/**
 * A damaged license.json, or one that this build's trust root does not certify (it holds no seat
 * of this deployment, and its server is nobody to ask), is replaced by a new activation rather
 * than blocking it.
 */
async function currentState(ctx: AgentContext): Promise<LicenseState | null> {
  let state: LicenseState | null;
  try {
    state = await loadLicenseState(ctx.paths);
  } catch (err) {
    if (err instanceof AgentError) return null;
    throw err;
  }
  if (!state?.certificate) return state;
  const root = await knownRoot(ctx).catch(() => null);
  if (!root) return state;
  const assessment = await assessStored(ctx, state, root);
  return assessment.verdict === 'invalid' && assessment.untrusted ? null : state;
}

/**
 * This home's license, bound to the id this machine had before it changed: moved here first, so
 * that activating again finds the same seat or trial instead of taking a new one (see rebind.ts).
 * A refused move stops here: a new trial or seat is what the rebind budget is there to prevent.
 * Only for the same license again: a trial moving on to a key needs no move of the trial.
 */
async function movedHere(ctx: AgentContext, previous: LicenseState | null, server: string, request: ActivationRequest): Promise<LicenseState | null> {
  const same = 'key' in request ? previous?.key === request.key : previous?.kind === 'trial';
  if (!previous || previous.server !== server || !same) return previous;
  const root = await knownRoot(ctx).catch(() => null);
  const moved = root ? await rebindIfMoved(ctx, previous, root) : null;
  if (moved && 'problem' in moved) throw moved.problem;
  return moved ? moved.state : previous;
}

/**
 * A permanent license holds a seat on the server: replacing it here without deactivating would
 * leave that seat taken by a machine that no longer uses it.
 */
function refuseToReplace(previous: LicenseState | null, request: ActivationRequest): void {
  if (previous?.kind !== 'permanent') return;
  if ('key' in request && previous.key === request.key) return; // the same key again: idempotent
  throw new AgentError('USAGE', `this machine already uses permanent license ${previous.licenseId}: run "ferry deactivate" first to free its seat`);
}

function trialLine(state: LicenseState, created: boolean, endsAt: number): string {
  const start = created ? 'Trial started on this machine' : "This machine's trial is active";
  const claim = state.claimCode ? ` Claim code ${state.claimCode}: enter it in MyAccount to register this trial.` : '';
  return `${start}: it ends ${formatTime(endsAt)}.${claim}`;
}

function permanentLine(state: LicenseState, created: boolean): string {
  const verb = created ? 'activated on' : 'is active on';
  return `License ${state.licenseId} (permanent) ${verb} this machine: activation ${state.activationId}.`;
}

/**
 * An email address is personal data: as in the portal, only from someone 13 or older. On a
 * terminal the person is asked; a script says so with --i-am-13-or-older, and without it nothing
 * is sent.
 */
async function confirmAge(ctx: AgentContext, options: ActivateOptions): Promise<void> {
  if (options.email === undefined || options.iAm13OrOlder) return;
  const { terminal } = ctx;
  if (!terminal || !terminal.input.isTTY || !terminal.output.isTTY) {
    throw new AgentError('USAGE', '--email needs --i-am-13-or-older when ferry is not run on a terminal: Ferry takes an email address only from someone 13 or older');
  }
  const { createInterface } = await import('node:readline/promises');
  const questions = createInterface({ input: terminal.input, output: terminal.output });
  let answer: string;
  try {
    answer = await questions.question('Ferry takes an email address only from someone 13 years old or older. Are you 13 or older? [y/N] ');
  } finally {
    questions.close();
  }
  if (!/^\s*y(es)?\s*$/i.test(answer)) {
    throw new AgentError('USAGE', 'an email address is sent only by someone 13 or older: run again without --email to start the trial without one');
  }
}

export async function activate(ctx: AgentContext, options: ActivateOptions): Promise<void> {
  const request = activationRequest(options);
  await confirmAge(ctx, options);
  let previous = await currentState(ctx);
  refuseToReplace(previous, request);
  const server = await ctx.resolveServer(previous?.server);
  previous = await movedHere(ctx, previous, server, request);

  // Moving from a trial to a key: send the trial's last events while its token still counts.
  if (previous?.kind === 'trial' && 'key' in request) await sendSpooledUsage(ctx, previous);

  const { state, created } = await activateLicense(ctx, server, request, previous);
  if (state.kind === 'permanent') {
    // A permanent license reports nothing; what a trial left unsent will never be sent.
    await discardSpool(ctx.paths.spool);
    ctx.out(permanentLine(state, created));
    return;
  }

  const assessment = await assessStored(ctx, state, await requireRoot(ctx));
  if (assessment.verdict === 'trial-ended') throw trialEnded(assessment.trialEndsAt);
  await reportUsage(ctx, state, 'activate');
  const signedEnd = 'claims' in assessment ? assessment.claims.lic_exp : undefined;
  const endsAt = state.licenseExpiresAt !== null ? Date.parse(state.licenseExpiresAt) : (signedEnd ?? 0) * 1000;
  ctx.out(trialLine(state, created, endsAt));
}

/** The server says the seat is not ours to free any more: the local license can go. */
function alreadyFreed(err: AgentError | ServerError): boolean {
  if (err instanceof ServerError) return err.code === 'ACTIVATION_NOT_FOUND' || err.code === 'TOKEN_UNKNOWN_ACTIVATION';
  return err.exit === 'ACTIVATION_INACTIVE' || err.exit === 'LICENSE_REVOKED' || err.exit === 'TRIAL_EXPIRED';
}

/**
 * Frees this machine's seat on the server, then forgets the license here. An old lease that the
 * server no longer takes is renewed first (the activation is still ours to end). When the server
 * cannot be reached, nothing changes locally: the seat would otherwise stay taken for good.
 */
export async function deactivate(ctx: AgentContext): Promise<void> {
  const state = await loadLicenseState(ctx.paths);
  if (!state) throw new AgentError('NO_LICENSE', 'this machine has no license to deactivate');
  const server = await ctx.resolveServer(state.server);

  // The trial's last events go before its activation ends: afterwards the server refuses them. Only
  // a license this machine can verify counts; freeing the seat needs no more than the server's word.
  const root = await knownRoot(ctx).catch(() => null);
  const assessment = root ? await assessStored(ctx, state, root) : null;
  const trialInForce = state.kind === 'trial' && state.refused === null && assessment?.verdict === 'usable';
  await reportUsage(ctx, trialInForce ? state : null, 'deactivate');

  let freedBefore = false;
  try {
    await requestDeactivation(server, state.activationId, state.token);
  } catch (err) {
    if (!(err instanceof ServerError)) throw err;
    if (alreadyFreed(err)) {
      freedBefore = true;
    } else if (err.status === 401) {
      freedBefore = await deactivateWithRenewedLease(ctx, state, server);
    } else {
      throw refusalToAgentError(err);
    }
  }
  await removeLicenseState(ctx.paths);
  await removeDeviceKey(ctx.paths.deviceKey);
  // Events left unsent are signed by the key that just went: no later activation can send them.
  await discardSpool(ctx.paths.spool);
  await removeChainHead(ctx.paths.usageChain);
  const what = state.kind === 'trial' ? 'its trial' : `license ${state.licenseId}`;
  ctx.out(freedBefore
    ? `Removed ${what} from this machine: the license server had already ended this activation.`
    : `Deactivated: this machine no longer uses ${what}; its seat is free.`);
}

/** Returns true when renewal showed the activation already ended (so there is nothing to free). */
async function deactivateWithRenewedLease(ctx: AgentContext, state: LicenseState, server: string): Promise<boolean> {
  let renewed: LicenseState;
  try {
    renewed = await renewLicense(ctx, state, server);
  } catch (err) {
    if (err instanceof AgentError && alreadyFreed(err)) return true;
    throw err;
  }
  try {
    await requestDeactivation(server, renewed.activationId, renewed.token);
  } catch (err) {
    if (err instanceof ServerError) throw refusalToAgentError(err);
    throw err;
  }
  return false;
}
