import { LICENSE_KINDS, type LicenseKind, type SignedStatement } from '../licensing/index.js';
import { isVersion } from '../licensing/release-manifest.js';
import type { AgentContext } from './context.js';
import { AgentError } from './errors.js';
import { BACKGROUND_TIMEOUT_MS, callServer, INTERACTIVE_TIMEOUT_MS } from './server-client.js';
import type { UsageEvent } from './usage-spool.js';

/** The licensing calls of the server's API (v1), with their answers checked and typed. */

export interface LicenseInfo {
  id: string;
  kind: LicenseKind;
  status: string;
  seats: number;
  /** ISO; null for a permanent license. */
  expiresAt: string | null;
  claimCode: string | null;
}

export interface IssuedLicense {
  license: LicenseInfo;
  activationId: number;
  token: string;
  /** The root's certificate of the key that signed `token`, as the server sent it (not yet checked). */
  certificate: SignedStatement;
  /** 201: a new trial or a newly taken seat; 200: this machine again. */
  created: boolean;
}

function malformed(server: string, what: string): AgentError {
  return new AgentError('SERVER_ERROR', `${server} answered ${what} in an unexpected shape: is it a Ferry license server of this version?`);
}

function parseLicense(server: string, value: unknown): LicenseInfo {
  const l = value as Record<string, unknown> | undefined;
  if (
    !l ||
    (typeof l.id !== 'number' && typeof l.id !== 'string') ||
    !LICENSE_KINDS.includes(l.kind as LicenseKind) ||
    !(l.expiresAt === null || typeof l.expiresAt === 'string')
  ) {
    throw malformed(server, 'a license');
  }
  return {
    id: String(l.id),
    kind: l.kind as LicenseKind,
    status: typeof l.status === 'string' ? l.status : 'unknown',
    seats: typeof l.seats === 'number' ? l.seats : 0,
    expiresAt: l.expiresAt as string | null,
    claimCode: typeof l.claimCode === 'string' ? l.claimCode : null,
  };
}

function isStatement(value: unknown): value is SignedStatement {
  const s = value as Partial<SignedStatement> | null;
  return typeof s === 'object' && s !== null && typeof s.payload === 'string' && typeof s.signature === 'string';
}

function parseIssued(server: string, status: number, body: unknown): IssuedLicense {
  const b = body as { license?: unknown; activation?: { id?: unknown }; token?: unknown; certificate?: unknown } | undefined;
  if (!b || typeof b.token !== 'string' || !Number.isSafeInteger(b.activation?.id) || !isStatement(b.certificate)) {
    throw malformed(server, 'an activation');
  }
  return {
    license: parseLicense(server, b.license), activationId: b.activation!.id as number, token: b.token,
    certificate: { payload: b.certificate.payload, signature: b.certificate.signature }, created: status === 201,
  };
}

/** Licensing answers name the newest published release: kept for the update notice. */
function noteLatestVersion(ctx: AgentContext, body: unknown): void {
  const latest = (body as { latestVersion?: unknown } | undefined)?.latestVersion;
  if (typeof latest === 'string' && isVersion(latest)) ctx.latestVersion = latest;
}

/**
 * What the agent tells the server about the machine when activating; `ferry privacy` lists the same.
 * `devicePublicKey`: the public half of this activation's device key (device-key.ts).
 */
function machineFacts(ctx: AgentContext, devicePublicKey: string): { locale: string; platform: string; agentVersion: string; devicePublicKey: string } {
  return { locale: ctx.locale, platform: ctx.platform, agentVersion: ctx.agentVersion.slice(0, 32), devicePublicKey };
}

export interface TrialContact {
  email?: string;
  marketingOptIn?: boolean;
}

/** What shows the server that this is where the trial started (see trial-secret.ts). */
export interface TrialProof {
  activationSecret: string;
  /** The trial's last token from this server, if any: it vouches for a trial from before secrets. */
  token?: string;
}

export async function requestTrial(
  ctx: AgentContext, server: string, fingerprint: string, contact: TrialContact, proof: TrialProof, devicePublicKey: string,
): Promise<IssuedLicense> {
  const body: Record<string, unknown> = { fingerprint, activationSecret: proof.activationSecret, ...machineFacts(ctx, devicePublicKey) };
  if (contact.email !== undefined) {
    body.email = contact.email;
    body.marketingOptIn = contact.marketingOptIn ?? false;
  }
  const reply = await callServer(server, {
    method: 'POST', path: '/v1/trials', body, token: proof.token, timeoutMs: INTERACTIVE_TIMEOUT_MS,
  });
  noteLatestVersion(ctx, reply.body);
  return parseIssued(server, reply.status, reply.body);
}

export async function requestKeyActivation(
  ctx: AgentContext, server: string, fingerprint: string, key: string, devicePublicKey: string,
): Promise<IssuedLicense> {
  const body = { key, fingerprint, ...machineFacts(ctx, devicePublicKey) };
  const reply = await callServer(server, { method: 'POST', path: '/v1/activations', body, timeoutMs: INTERACTIVE_TIMEOUT_MS });
  noteLatestVersion(ctx, reply.body);
  return parseIssued(server, reply.status, reply.body);
}

/** What a check-in (`POST /v1/validate`) answers: a renewed lease only when one was due or the license changed. */
export interface CheckInAnswer {
  license: LicenseInfo;
  renewal: { token: string; certificate: SignedStatement } | null;
  /** When the server checked (ISO), as it says. */
  checkedAt: string | null;
  /** The server's signed time (see licensing/trusted-time.ts), not yet checked: null when it sent none. */
  time: SignedStatement | null;
}

/** `POST /v1/validate`: the server checks license and activation now, and renews the lease when due. */
export async function requestRenewal(
  ctx: AgentContext, server: string, token: string, fingerprint: string, options: { checkIn?: boolean } = {},
): Promise<CheckInAnswer> {
  // A check-in takes "nothing changed" for an answer; a renewal (due, or to get a certificate) wants a token.
  const body = options.checkIn ? { fingerprint, checkIn: true } : { fingerprint };
  const reply = await callServer(server, {
    method: 'POST', path: '/v1/validate', token, body, timeoutMs: BACKGROUND_TIMEOUT_MS,
  });
  noteLatestVersion(ctx, reply.body);
  const b = reply.body as { license?: unknown; token?: unknown; certificate?: unknown; checkedAt?: unknown; time?: unknown } | undefined;
  if (!b || (b.token !== undefined && (typeof b.token !== 'string' || !isStatement(b.certificate)))) throw malformed(server, 'a validation');
  return {
    license: parseLicense(server, b.license),
    renewal: typeof b.token === 'string' && isStatement(b.certificate)
      ? { token: b.token, certificate: { payload: b.certificate.payload, signature: b.certificate.signature } }
      : null,
    checkedAt: typeof b.checkedAt === 'string' && b.checkedAt.length <= 40 ? b.checkedAt : null,
    // Whatever its shape, a time goes to the verifier, which refuses what is not a signed time.
    time: isStatement(b.time) ? { payload: b.time.payload, signature: b.time.signature } : null,
  };
}

export async function requestDeactivation(server: string, activationId: number, token: string): Promise<void> {
  await callServer(server, { method: 'DELETE', path: `/v1/activations/${activationId}`, token, timeoutMs: INTERACTIVE_TIMEOUT_MS });
}

/** The root public key (PEM) a server says its deployment has: trusted only by a development build without one. */
export async function fetchServerRoot(server: string): Promise<string> {
  const reply = await callServer(server, { method: 'GET', path: '/.well-known/ferry-keys.json', timeoutMs: INTERACTIVE_TIMEOUT_MS });
  const root = (reply.body as { root?: unknown } | undefined)?.root;
  if (typeof root !== 'string' || root.length > 4096) throw malformed(server, 'its trust root');
  return root;
}

export async function sendUsageBatch(server: string, token: string, events: UsageEvent[]): Promise<void> {
  await callServer(server, { method: 'POST', path: '/v1/usage', token, body: { events }, timeoutMs: BACKGROUND_TIMEOUT_MS });
}
