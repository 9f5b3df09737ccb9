import { readFileSync } from 'node:fs';

/**
 * What this build of the agent is. A build from a checkout (`tsc`, `node dist/agent/cli.js`) is a
 * development build: it has no trust root of its own and honours the test-only environment
 * variables. `npm run package` makes release builds: it writes `build-info.json` beside this
 * module in the npm tarball, and defines `__FERRY_BUILD_INFO__` in the single executable's bundle,
 * with `release: true`, the deployment's root public key and its server URL. A release build
 * ignores every override that could let a customer choose what it trusts or who it is.
 */
export interface BuildInfo {
  /** The agent's version (package.json's at packaging time). */
  version: string;
  /** A short build id: the commit and date of the packaging run, or `dev`. */
  build: string;
  /** True in artefacts made by `npm run package`; false in a checkout. */
  release: boolean;
  /** The deployment's root public key (SPKI PEM) that certifies its signing keys; null in a checkout. */
  trustRoot: string | null;
  /** The license server this artefact was packaged for, or null. */
  server: string | null;
}

declare const __FERRY_BUILD_INFO__: BuildInfo | undefined;

function fromPackageJson(): string {
  try {
    const packageJson = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof packageJson.version === 'string' ? packageJson.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

function load(): BuildInfo {
  if (typeof __FERRY_BUILD_INFO__ !== 'undefined') return __FERRY_BUILD_INFO__;
  try {
    const packaged = JSON.parse(readFileSync(new URL('./build-info.json', import.meta.url), 'utf8')) as BuildInfo;
    return packaged;
  } catch {
    return { version: fromPackageJson(), build: 'dev', release: false, trustRoot: null, server: null };
  }
}

let cached: BuildInfo | undefined;

/** This build's facts, read once. */
export function buildInfo(): BuildInfo {
  cached ??= load();
  return cached;
}
