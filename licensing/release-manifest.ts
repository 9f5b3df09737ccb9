import { rootPublicFromPem, TrustError, verifyStatement } from './trust.js';

/**
 * A release of the agent, as `npm run package` describes it and the deployment's root signs it:
 * which artefacts exist, for which platform, with their sizes and SHA-256s. The server serves it
 * as it was signed; `ferry update` and `ferry verify-install` accept it only under the build's
 * own trust root.
 */
export type ArtefactPlatform = 'linux-x64' | 'node';

export interface ManifestArtefact {
  name: string;
  platform: ArtefactPlatform;
  sha256: string;
  size: number;
}

export interface ManifestBody {
  version: string;
  build: string;
  artefacts: ManifestArtefact[];
  createdAt: string;
}

/** x.y.z with an optional pre-release part; short enough for `releases.version`. */
export function isVersion(text: string): boolean {
  return text.length <= 32 && /^\d{1,6}\.\d{1,6}\.\d{1,6}(-[0-9A-Za-z.-]+)?$/.test(text);
}

/** Semver order, enough for ours: numbers, then a pre-release sorts before the release. */
export function compareVersions(a: string, b: string): number {
  const [coreA = '', preA] = a.split(/-(.*)/s);
  const [coreB = '', preB] = b.split(/-(.*)/s);
  const numsA = coreA.split('.').map(Number);
  const numsB = coreB.split('.').map(Number);
  for (let i = 0; i < 3; i++) if (numsA[i] !== numsB[i]) return (numsA[i] ?? 0) - (numsB[i] ?? 0);
  if (preA === preB) return 0;
  if (preA === undefined) return 1;
  if (preB === undefined) return -1;
  return preA.localeCompare(preB, 'en', { numeric: true });
}

export const seaArtefactName = (version: string) => `ferry-${version}-linux-x64`;
export const npmArtefactName = (version: string) => `ferry-agent-${version}.tgz`;

const ARTEFACT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

function parseArtefact(value: unknown): ManifestArtefact {
  const a = value as Partial<ManifestArtefact> | null;
  if (
    !a || typeof a.name !== 'string' || !ARTEFACT_NAME.test(a.name) ||
    (a.platform !== 'linux-x64' && a.platform !== 'node') ||
    typeof a.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(a.sha256) ||
    !Number.isSafeInteger(a.size) || a.size! <= 0
  ) {
    throw new TrustError('the release manifest lists an artefact in an unexpected shape');
  }
  return { name: a.name, platform: a.platform, sha256: a.sha256, size: a.size! };
}

/** The body of a manifest whose signature was checked, checked in turn: names are safe as file names. */
export function parseManifestBody(body: Record<string, unknown>): ManifestBody {
  const { version, build, artefacts, createdAt } = body;
  if (typeof version !== 'string' || !isVersion(version) || typeof build !== 'string' || typeof createdAt !== 'string' || !Array.isArray(artefacts)) {
    throw new TrustError('the release manifest is not in the expected shape');
  }
  return { version, build, artefacts: artefacts.map(parseArtefact), createdAt };
}

/** Verifies a signed manifest (parsed JSON or its text) under `rootPem`; TrustError otherwise. */
export function verifyManifest(rootPem: string, statement: unknown): ManifestBody {
  let parsed = statement;
  if (typeof statement === 'string') {
    try {
      parsed = JSON.parse(statement);
    } catch {
      throw new TrustError('the release manifest is not JSON');
    }
  }
  return parseManifestBody(verifyStatement(rootPublicFromPem(rootPem), 'ferry-release-manifest', parsed));
}
