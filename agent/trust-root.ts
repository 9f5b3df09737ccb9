import type { KeyObject } from 'node:crypto';
import {
  rootFingerprint, rootPublicFromPem, TokenError, TrustError, verifyCertifiedToken, type LicenseClaims,
} from '../licensing/index.js';
import type { AgentContext } from './context.js';
import { AgentError } from './errors.js';
import { readJsonFile, readTextFile, UnreadableFileError, writeJsonAtomic } from './home.js';
import { fetchServerRoot } from './license-api.js';

/**
 * The root this agent trusts, and the one check every license goes through: the token under the
 * signing key its certificate names, the certificate under this root. No server can add to what
 * the agent trusts: a release build trusts only the root built into it (the environment cannot
 * change that). A development build (a checkout) trusts FERRY_TRUST_ROOT when it is set, else the
 * root of the server it first activated with, kept in `$FERRY_HOME/trust-root.json` and announced
 * loudly, so that `npx ferry activate --trial --server …` in a checkout works as before.
 */
export interface Root {
  publicKey: KeyObject;
  /** For messages: "the root built into this release", "FERRY_TRUST_ROOT (…)"… */
  origin: string;
}

/** The root of a development build that trusted a server at its first activation. */
interface DevelopmentPin {
  server: string;
  root: string;
  pinnedAt: string;
}

/** Lease times are judged against this machine's clock elsewhere; here only origin and machine count. */
const ANY_AGE_MS = Number.MAX_SAFE_INTEGER;

export const HOW_A_DEVELOPER_GETS_A_ROOT = 'ferry-server trust-root > root.pem; export FERRY_TRUST_ROOT=$PWD/root.pem';

function parseRoot(pem: string, origin: string, fault: (reason: string) => AgentError): Root {
  try {
    return { publicKey: rootPublicFromPem(pem), origin };
  } catch (err) {
    throw fault((err as Error).message);
  }
}

async function pinnedRoot(ctx: AgentContext): Promise<Root | null> {
  const file = ctx.paths.trustRoot;
  const damaged = (reason: string) => new AgentError('LICENSE_UNTRUSTED', `${file} is damaged (${reason}): remove it and run "ferry activate" again, or set FERRY_TRUST_ROOT`);
  let pin: unknown;
  try {
    pin = await readJsonFile(file);
  } catch (err) {
    if (err instanceof UnreadableFileError) throw damaged(err.message);
    throw err;
  }
  if (pin === undefined) return null;
  const { server, root } = pin as Partial<DevelopmentPin>;
  if (typeof server !== 'string' || typeof root !== 'string') throw damaged('fields missing');
  return parseRoot(root, `the root this development build trusted from ${server} (${file})`, damaged);
}

/** The root this machine trusts, or null: a development build that has not trusted one yet. */
export async function knownRoot(ctx: AgentContext): Promise<Root | null> {
  const { trust } = ctx;
  if (trust.kind === 'built-in') {
    const broken = (reason: string) => new AgentError('LICENSE_UNTRUSTED', `this release build carries no usable trust root (${reason}): download ferry from your license server again`);
    if (trust.pem === null) throw broken('none was built in');
    return parseRoot(trust.pem, 'the root built into this release', broken);
  }
  if (trust.kind === 'file') {
    const bad = (reason: string) => new AgentError('USAGE', `FERRY_TRUST_ROOT=${trust.file}: ${reason} (get one with: ${HOW_A_DEVELOPER_GETS_A_ROOT})`);
    let pem: string | undefined;
    try {
      pem = await readTextFile(trust.file);
    } catch (err) {
      if (err instanceof UnreadableFileError) throw bad(err.message);
      throw err;
    }
    if (pem === undefined) throw bad('no such file');
    return parseRoot(pem, `FERRY_TRUST_ROOT (${trust.file})`, bad);
  }
  return pinnedRoot(ctx);
}

/** The root, where a license is already stored: without one there is nothing it could be checked against. */
export async function requireRoot(ctx: AgentContext): Promise<Root> {
  const root = await knownRoot(ctx);
  if (root) return root;
  throw new AgentError(
    'LICENSE_UNTRUSTED',
    `this development build has no trust root to check the stored license against: set FERRY_TRUST_ROOT (${HOW_A_DEVELOPER_GETS_A_ROOT}), or run "ferry activate" again`,
  );
}

function untrusted(what: string, root: Root, err: Error): AgentError {
  return new AgentError('LICENSE_UNTRUSTED', `${what} is not certified by ${root.origin}: ${err.message}`);
}

/** Verifies a token and its certificate under `root`; throws LICENSE_UNTRUSTED (with `what` it is) otherwise. */
export function verifyUnderRoot(root: Root, token: string, certificate: unknown, fingerprint: string, what: string): LicenseClaims {
  try {
    return verifyCertifiedToken(token, certificate, root.publicKey, { fingerprint, acceptExpiredForMs: ANY_AGE_MS }).claims;
  } catch (err) {
    if (err instanceof TrustError || err instanceof TokenError) throw untrusted(what, root, err);
    throw err;
  }
}

/**
 * Verifies a token and certificate just received from `server`. A development build without a root
 * trusts the root this server offers, and keeps it once the license is stored (`commit`); nothing
 * is kept when the check fails.
 */
export async function verifyIssued(
  ctx: AgentContext,
  server: string,
  issued: { token: string; certificate: unknown },
  fingerprint: string,
): Promise<{ claims: LicenseClaims; commit(): Promise<void> }> {
  const known = await knownRoot(ctx);
  const offered = known ? null : await fetchServerRoot(server);
  const root = known ?? parseRoot(offered!, `the root of ${server}`, (reason) => new AgentError('SERVER_ERROR', `${server} offers an unusable trust root: ${reason}`));
  const claims = verifyUnderRoot(root, issued.token, issued.certificate, fingerprint, `the license that ${server} sent (nothing was stored)`);
  return {
    claims,
    async commit() {
      if (offered === null) return;
      ctx.notice(
        `development build: trusting the root of ${server} (SHA-256 ${rootFingerprint(root.publicKey)}) from now on, ` +
          `kept in ${ctx.paths.trustRoot}; a release build trusts only the root built into it, and FERRY_TRUST_ROOT chooses one here`,
      );
      const pin: DevelopmentPin = { server, root: offered, pinnedAt: new Date(ctx.clock.wallNow).toISOString() };
      await writeJsonAtomic(ctx.paths.trustRoot, pin);
    },
  };
}
