import { tempDir as makeTempDir } from './temp.js';
import { randomBytes } from 'node:crypto';
import { fingerprint, issueToken, publicJwk, type Jwks, type LicenseKind, type SigningKey } from '../../licensing/index.js';
import { createContext, type AgentContext } from '../../agent/context.js';
import { TEST_ROOT } from './trust-root.js';

/** Shared by the agent's unit tests: temp homes, machines, tokens signed like the server signs them. */

export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;

export function tempDir(prefix = 'ferry-agent-'): string {
  return makeTempDir(prefix);
}

/** A machine id no other test uses, and its fingerprint. */
export function newMachineId(): { id: string; fingerprint: string } {
  const id = `test-machine-${randomBytes(8).toString('hex')}`;
  return { id, fingerprint: fingerprint(id) };
}

export function jwksOf(...keys: SigningKey[]): Jwks {
  return { keys: keys.map(publicJwk) };
}

export interface TokenInput {
  key: SigningKey;
  fingerprint: string;
  kind: LicenseKind;
  /** When the server issued it. */
  issuedAt: number;
  leaseEndsAt: number;
  licenseExpiresAt?: number | null;
  licenseId?: number;
  activationId?: number;
}

export function tokenFor(input: TokenInput): string {
  return issueToken(
    {
      licenseId: input.licenseId ?? 1,
      activationId: input.activationId ?? 1,
      fingerprint: input.fingerprint,
      kind: input.kind,
      leaseEndsAt: input.leaseEndsAt,
      licenseExpiresAt: input.licenseExpiresAt ?? null,
      now: input.issuedAt,
    },
    input.key,
  );
}

export interface CapturedContext {
  ctx: AgentContext;
  stdout: string[];
  stderr: string[];
}

/**
 * An agent context on a temp home, as a command would get it, with output captured. It trusts the
 * test run's root unless `env` names another FERRY_TRUST_ROOT (or sets it undefined: none).
 */
export async function agentContext(env: Record<string, string | undefined>, serverOption?: string): Promise<CapturedContext> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const ctx = await createContext({
    env: { FERRY_TRUST_ROOT: TEST_ROOT.publicFile, ...env },
    serverOption,
    agentVersion: '0.0.0-test',
    stdout: (t) => stdout.push(t),
    stderr: (t) => stderr.push(t),
  });
  return { ctx, stdout, stderr };
}
