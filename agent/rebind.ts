import { rebindStatement, verifyCertifiedToken, type SignedStatement } from '../licensing/index.js';
import type { AgentContext } from './context.js';
import { existingDeviceKey } from './device-key.js';
import { AgentError } from './errors.js';
import { saveLicenseState, type LicenseState } from './license-state.js';
import { callServer, INTERACTIVE_TIMEOUT_MS, refusalToAgentError, ServerError } from './server-client.js';
import { verifyIssued, type Root } from './trust-root.js';

/**
 * A kernel upgrade, a VM move or WSL can change the machine id, and with it the fingerprint: the
 * stored token is then another machine's. Rather than a new seat or a new trial, the agent asks its
 * server to move the activation to the new fingerprint, signing the move with the activation's
 * device key over a challenge the server issues for it (server/licenses/rebind.ts). The license
 * keeps its seat and its trial's end; the server allows a few such moves a year per license.
 */

export type RebindOutcome = { state: LicenseState } | { problem: AgentError };

/** Any age: a machine may have been off for months when its id changed. */
const ANY_AGE_MS = Number.MAX_SAFE_INTEGER;

/** Moves that the server refused for good (until staff or the user act): one line and REBIND_REFUSED. */
function refusal(err: ServerError): AgentError {
  if (err.code === 'REBIND_BUDGET_EXHAUSTED') {
    return new AgentError('REBIND_REFUSED', `this machine's id changed, and its license cannot move to it: ${err.serverMessage}`);
  }
  if (err.code.startsWith('REBIND_') || err.code === 'TRIAL_EXISTS') {
    return new AgentError(
      'REBIND_REFUSED',
      `this machine's id changed, and the license server refused to move its license to it (${err.code}: ${err.serverMessage}); run "ferry activate" again, or contact support`,
    );
  }
  return refusalToAgentError(err);
}

function parseRebound(server: string, body: unknown): { token: string; certificate: SignedStatement; expiresAt: string | null; left: number } {
  const b = body as { token?: unknown; certificate?: Partial<SignedStatement>; license?: { expiresAt?: unknown }; rebinds?: { left?: unknown } } | undefined;
  const c = b?.certificate;
  if (
    !b || typeof b.token !== 'string' || typeof c?.payload !== 'string' || typeof c.signature !== 'string'
    || !Number.isSafeInteger(b.rebinds?.left) || !(b.license?.expiresAt === null || typeof b.license?.expiresAt === 'string')
  ) {
    throw new AgentError('SERVER_ERROR', `${server} answered a rebind in an unexpected shape: is it a Ferry license server of this version?`);
  }
  return {
    token: b.token, certificate: { payload: c.payload, signature: c.signature },
    expiresAt: b.license!.expiresAt as string | null, left: b.rebinds!.left as number,
  };
}

/**
 * When the stored license is genuine but bound to another fingerprint than this machine's, and this
 * ferry home holds the device key it was activated with: moves it here, stores the new token and
 * says so once. Null when that is not the case (the license stays judged as it is).
 */
export async function rebindIfMoved(ctx: AgentContext, state: LicenseState, root: Root): Promise<RebindOutcome | null> {
  if (state.certificate === null) return null;
  const { fingerprint } = await ctx.machine();
  let from: string;
  try {
    from = verifyCertifiedToken(state.token, state.certificate, root.publicKey, { now: ctx.clock.now, acceptExpiredForMs: ANY_AGE_MS }).claims.fp;
  } catch {
    return null;
  }
  if (from === fingerprint) return null;
  // Without the key nothing proves this is the installation that holds the activation.
  const key = await existingDeviceKey(ctx.paths.deviceKey).catch(() => undefined);
  if (!key) return null;

  const server = await ctx.resolveServer(state.server);
  const path = `/v1/activations/${state.activationId}`;
  try {
    const asked = await callServer(server, { method: 'POST', path: `${path}/rebind-challenge`, token: state.token, timeoutMs: INTERACTIVE_TIMEOUT_MS });
    const challenge = (asked.body as { challenge?: unknown } | undefined)?.challenge;
    if (typeof challenge !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(challenge)) {
      throw new AgentError('SERVER_ERROR', `${server} answered a rebind challenge in an unexpected shape`);
    }
    const signature = key.sign(rebindStatement({ activationId: state.activationId, fromFingerprint: from, toFingerprint: fingerprint, challenge }));
    const reply = await callServer(server, {
      method: 'POST', path: `${path}/rebind`, token: state.token, body: { fingerprint, challenge, signature }, timeoutMs: INTERACTIVE_TIMEOUT_MS,
    });
    const rebound = parseRebound(server, reply.body);
    const { claims, commit } = await verifyIssued(ctx, server, rebound, fingerprint);
    if (claims.sub !== state.licenseId || claims.aid !== state.activationId) {
      throw new AgentError('SERVER_ERROR', `the license server ${server} sent a token for another license or activation than this machine's`);
    }
    const moved: LicenseState = {
      ...state, server, token: rebound.token, certificate: rebound.certificate, kind: claims.kind, licenseExpiresAt: rebound.expiresAt,
      refused: null, lastCheck: { at: new Date(ctx.clock.now).toISOString(), result: 'rebound' },
    };
    await commit();
    await saveLicenseState(ctx.paths, moved);
    ctx.notice(`this machine's id changed; license moved to it (rebinds left this year: ${rebound.left})`);
    return { state: moved };
  } catch (err) {
    if (err instanceof ServerError) return { problem: refusal(err) };
    if (err instanceof AgentError) {
      return { problem: new AgentError(err.exit, `this machine's id changed and its license must move to it online, but ${err.message}`) };
    }
    throw err;
  }
}
