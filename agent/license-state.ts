import { LICENSE_KINDS, type LicenseKind, type SignedStatement } from '../licensing/index.js';
import { AgentError } from './errors.js';
import type { HomePaths } from './home.js';
import { readJsonFile, removeFile, UnreadableFileError, writeJsonAtomic } from './home.js';

/** The refusals that end a license's use until the server says otherwise: remembered, so offline runs know. */
export type RefusalExit = 'LICENSE_REVOKED' | 'TRIAL_EXPIRED' | 'ACTIVATION_INACTIVE';

/**
 * `license.json`: what this machine knows about its license. Format 2 keeps the root's certificate
 * of the key that signed the token, so the whole chain is checked offline at every load.
 */
export interface LicenseState {
  format: 2;
  /** The license server that issued the token: renewals and deactivation go there. */
  server: string;
  token: string;
  licenseId: string;
  kind: LicenseKind;
  /** End of a trial (ISO), null for a permanent license. For display: decisions use the signed `lic_exp`. */
  licenseExpiresAt: string | null;
  activationId: number;
  /** Permanent licenses: the key, so that a lease that ran out offline can be activated again. */
  key: string | null;
  /** Trials: what the user enters in MyAccount to register the trial. */
  claimCode: string | null;
  /**
   * The root's certificate of the key that signed `token`. Null only for a file of format 1 (from
   * before certificates, with keys pinned on first use): it must be confirmed online once.
   */
  certificate: SignedStatement | null;
  activatedAt: string;
  /** Set when the server refused this license; cleared when it accepts it again. */
  refused: { exit: RefusalExit; message: string; at: string } | null;
  /**
   * The last check-in with the server (license time, ISO) and what came of it: `valid`, `renewed`,
   * a refusal's exit name in lower case, or `failed: why`. Absent in files from before check-ins.
   */
  lastCheck?: LastCheck | null;
  /**
   * The newest signed time of a check-in answer (see licensing/trusted-time.ts), and the server
   * that sent it. Kept as signed, and verified under `certificate` whenever it is used: an edited
   * one counts for nothing, and the token's own signed `iat` is the trusted time then.
   */
  trustedTime?: StoredTrustedTime | null;
}

export interface StoredTrustedTime {
  server: string;
  statement: SignedStatement;
  /** The time since boot when it arrived (see clock.ts): on the same boot, time has gone on from it since. */
  boot?: { bootId: string; uptimeMs: number };
}

export interface LastCheck {
  at: string;
  result: string;
}

function isLastCheck(value: unknown): value is LastCheck {
  const c = value as Record<string, unknown> | null;
  return typeof c === 'object' && c !== null && typeof c.at === 'string' && typeof c.result === 'string';
}

function isStoredTrustedTime(value: unknown): value is StoredTrustedTime {
  const t = value as Record<string, unknown> | null;
  if (typeof t !== 'object' || t === null || typeof t.server !== 'string' || !isCertificate(t.statement)) return false;
  const boot = t.boot as Record<string, unknown> | undefined;
  return boot === undefined || (typeof boot === 'object' && boot !== null && typeof boot.bootId === 'string' && Number.isSafeInteger(boot.uptimeMs));
}

function isCertificate(value: unknown): value is SignedStatement {
  const c = value as Record<string, unknown> | null;
  return typeof c === 'object' && c !== null && typeof c.payload === 'string' && typeof c.signature === 'string';
}

/** Format 2, or format 1 (the keys it pinned are not trusted: they were whatever the server offered). */
function hasCertificateOrIsLegacy(s: Record<string, unknown>): boolean {
  if (s.format === 2) return isCertificate(s.certificate);
  return s.format === 1;
}

function isLicenseState(value: unknown): value is Omit<LicenseState, 'format' | 'certificate'> & { format: 1 | 2; certificate?: unknown } {
  if (typeof value !== 'object' || value === null) return false;
  const s = value as Record<string, unknown>;
  return (
    hasCertificateOrIsLegacy(s) &&
    typeof s.server === 'string' &&
    typeof s.token === 'string' &&
    typeof s.licenseId === 'string' &&
    LICENSE_KINDS.includes(s.kind as LicenseKind) &&
    (s.licenseExpiresAt === null || typeof s.licenseExpiresAt === 'string') &&
    Number.isSafeInteger(s.activationId) &&
    (s.key === null || typeof s.key === 'string') &&
    (s.claimCode === null || typeof s.claimCode === 'string') &&
    typeof s.activatedAt === 'string' &&
    (s.refused === null || (typeof s.refused === 'object' && typeof (s.refused as { exit?: unknown }).exit === 'string'))
  );
}

/** The license state, or null when this machine has none. A damaged file is no license, with the reason. */
export async function loadLicenseState(paths: HomePaths): Promise<LicenseState | null> {
  let stored: unknown;
  try {
    stored = await readJsonFile(paths.license);
  } catch (err) {
    if (err instanceof UnreadableFileError) {
      throw new AgentError('NO_LICENSE', `${err.message}: run "ferry activate" again`);
    }
    throw err;
  }
  if (stored === undefined) return null;
  if (!isLicenseState(stored)) {
    throw new AgentError('NO_LICENSE', `${paths.license} is damaged (fields missing or of the wrong type): run "ferry activate" again`);
  }
  const { jwks: _pinnedOnFirstUse, ...rest } = stored as typeof stored & { jwks?: unknown };
  const lastCheck = isLastCheck(rest.lastCheck) && !Number.isNaN(Date.parse(rest.lastCheck.at)) ? rest.lastCheck : null;
  const trustedTime = isStoredTrustedTime(rest.trustedTime) ? rest.trustedTime : null;
  return { ...rest, format: 2, certificate: stored.format === 2 ? (stored.certificate as SignedStatement) : null, lastCheck, trustedTime };
}

export async function saveLicenseState(paths: HomePaths, state: LicenseState): Promise<void> {
  await writeJsonAtomic(paths.license, state);
}

export async function removeLicenseState(paths: HomePaths): Promise<void> {
  await removeFile(paths.license);
}
