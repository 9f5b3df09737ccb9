import { execFile } from 'node:child_process';
import { createHash, createPublicKey, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, mkdtemp, open, rename, rm, stat, unlink } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { isSea } from 'node:sea';
import { promisify } from 'node:util';
import { compareVersions, verifyManifest, type ManifestArtefact, type ManifestBody } from '../../licensing/release-manifest.js';
import { TrustError } from '../../licensing/trust.js';
import { buildInfo, type BuildInfo } from '../build-info.js';
import type { AgentContext } from '../context.js';
import { AgentError } from '../errors.js';
import { readJsonFile, UnreadableFileError, writeJsonAtomic } from '../home.js';
import { callServer, INTERACTIVE_TIMEOUT_MS, normalizeServerUrl, ServerError } from '../server-client.js';

/**
 * `ferry version`, `ferry update` and `ferry verify-install`: what this build is, and replacing it
 * with the newest published release. A release is taken only when its manifest is signed by the
 * trust root built into this very agent, and each file only when its size and SHA-256 are the
 * manifest's. The single executable replaces itself (written beside, synced, renamed over, so an
 * interrupted update leaves the old one working); an npm installation runs `npm install --global`
 * with the verified tarball.
 */

/** A download that goes silent this long is abandoned. */
const DOWNLOAD_IDLE_MS = 30_000;

/** `SHA256:<base64>` of the root's key (SPKI), as ssh prints fingerprints. */
export function rootFingerprint(pem: string): string {
  const der = createPublicKey(pem).export({ type: 'spki', format: 'der' });
  return `SHA256:${createHash('sha256').update(der).digest('base64').replace(/=+$/, '')}`;
}

export function version(ctx: AgentContext): void {
  const info = buildInfo();
  ctx.out(`ferry ${info.version} (build ${info.build}, ${info.release ? 'release' : 'development build'})`);
  ctx.out(`trust root: ${info.trustRoot ? rootFingerprint(info.trustRoot) : 'none (development build)'}`);
  if (info.server) ctx.out(`built for:  ${info.server}`);
}

/** How this agent runs: as the single executable, from the npm package, or from a checkout. */
function installKind(info: BuildInfo): 'executable' | 'npm' | 'checkout' {
  if (isSea()) return 'executable';
  return info.release ? 'npm' : 'checkout';
}

/** This build, when it is a release build with a trust root; `refusal` says what a development build does not do. */
function releaseBuild(refusal: string): BuildInfo & { trustRoot: string } {
  const info = buildInfo();
  if (!info.release || info.trustRoot === null) {
    throw new AgentError('UPDATE_UNSUPPORTED', `this is a development build: it has no trust root to check a release with, so it does not ${refusal}`);
  }
  return info as BuildInfo & { trustRoot: string };
}

async function updateServer(ctx: AgentContext, info: BuildInfo): Promise<string> {
  try {
    return await ctx.resolveServer();
  } catch (err) {
    if (err instanceof AgentError && err.exit === 'USAGE' && info.server) return info.server;
    throw err;
  }
}

/** The signed manifest of `which` ('latest' or a version), verified under this build's root. */
async function fetchManifest(server: string, which: string, rootPem: string): Promise<ManifestBody> {
  let body: unknown;
  try {
    body = (await callServer(server, { method: 'GET', path: `/download/${encodeURIComponent(which)}/manifest.json`, timeoutMs: INTERACTIVE_TIMEOUT_MS })).body;
  } catch (err) {
    if (err instanceof ServerError && err.status === 404) throw new AgentError('UPDATE_UNSUPPORTED', `${server} has no published release ${which === 'latest' ? '' : `${which} `}of ferry`);
    if (err instanceof ServerError) throw new AgentError('SERVER_ERROR', `${server} refused the release manifest: ${err.serverMessage}`);
    throw err;
  }
  try {
    return verifyManifest(rootPem, body);
  } catch (err) {
    if (err instanceof TrustError) throw new AgentError('UPDATE_REFUSED', `the release manifest from ${server} failed its check (${err.message}): nothing was changed`);
    throw err;
  }
}

function artefactFor(manifest: ManifestBody, platform: ManifestArtefact['platform']): ManifestArtefact {
  const artefact = manifest.artefacts.find((a) => a.platform === platform);
  if (!artefact) throw new AgentError('UPDATE_UNSUPPORTED', `release ${manifest.version} has no ${platform} build`);
  return artefact;
}

function get(url: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const request = (url.startsWith('https:') ? httpsRequest : httpRequest)(url, { method: 'GET' }, resolve);
    request.setTimeout(DOWNLOAD_IDLE_MS, () => request.destroy(new Error(`no data for ${DOWNLOAD_IDLE_MS / 1000} s`)));
    request.once('error', reject);
    request.end();
  });
}

/**
 * Downloads an artefact into `file` (created new, `mode`), checking size and SHA-256 as it
 * streams, and syncs it to disk. The caller removes `file` when this throws.
 */
async function download(server: string, release: string, artefact: ManifestArtefact, file: string, mode: number): Promise<void> {
  const url = `${server}/download/${encodeURIComponent(release)}/${encodeURIComponent(artefact.name)}`;
  const handle = await open(file, 'wx', mode);
  try {
    const response = await get(url).catch((err: Error) => {
      throw new AgentError('UPDATE_FAILED', `cannot download ${url} (${err.message}): nothing was changed`);
    });
    if (response.statusCode !== 200) {
      response.resume();
      throw new AgentError('UPDATE_FAILED', `${url} answered ${response.statusCode}: nothing was changed`);
    }
    const hash = createHash('sha256');
    let size = 0;
    try {
      for await (const chunk of response as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > artefact.size) break;
        hash.update(chunk);
        await handle.write(chunk);
      }
    } catch (err) {
      throw new AgentError('UPDATE_FAILED', `the download of ${artefact.name} broke off (${(err as Error).message}): nothing was changed`);
    }
    const sha256 = hash.digest('hex');
    if (size !== artefact.size || sha256 !== artefact.sha256) {
      throw new AgentError('UPDATE_REFUSED', `${artefact.name} does not match the signed release manifest (${size} bytes, SHA-256 ${sha256}; expected ${artefact.size} bytes, ${artefact.sha256}): nothing was changed`);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function replaceExecutable(server: string, manifest: ManifestBody): Promise<void> {
  const artefact = artefactFor(manifest, 'linux-x64');
  const target = process.execPath;
  // Beside the old one, so that the rename is atomic; the old one runs on until the rename.
  const temp = join(dirname(target), `.ferry-update-${randomBytes(6).toString('hex')}`);
  try {
    const mode = (await stat(target)).mode & 0o777;
    await download(server, manifest.version, artefact, temp, mode);
    await chmod(temp, mode);
    await rename(temp, target);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    if (err instanceof AgentError) throw err;
    throw new AgentError('UPDATE_FAILED', `cannot replace ${target} (${(err as Error).message}): the installed ferry is unchanged`);
  }
}

async function installTarball(server: string, manifest: ManifestBody): Promise<void> {
  const artefact = artefactFor(manifest, 'node');
  const dir = await mkdtemp(join(tmpdir(), 'ferry-update-'));
  try {
    const file = join(dir, artefact.name);
    await download(server, manifest.version, artefact, file, 0o644);
    await promisify(execFile)('npm', ['install', '--global', '--silent', file]).catch((err: Error & { stderr?: string }) => {
      throw new AgentError('UPDATE_FAILED', `npm install --global ${artefact.name} failed: ${(err.stderr || err.message).trim().split('\n').at(-1)}`);
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function update(ctx: AgentContext): Promise<void> {
  const info = releaseBuild('update itself (in a checkout: git pull, then npx tsc -p .)');
  const kind = installKind(info);
  const server = await updateServer(ctx, info);
  const manifest = await fetchManifest(server, 'latest', info.trustRoot);
  if (compareVersions(manifest.version, info.version) <= 0) {
    ctx.out(`ferry ${info.version} is up to date (the newest release on ${server} is ${manifest.version})`);
    return;
  }
  if (kind === 'executable') await replaceExecutable(server, manifest);
  else await installTarball(server, manifest);
  ctx.out(`ferry is updated from ${info.version} to ${manifest.version}`);
}

async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function recordServer(ctx: AgentContext, server: string): Promise<void> {
  let config: unknown;
  try {
    config = (await readJsonFile(ctx.paths.config)) ?? {};
  } catch (err) {
    if (err instanceof UnreadableFileError) throw new AgentError('USAGE', `${err.message}: fix or remove it, then run this again`);
    throw err;
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new AgentError('USAGE', `${ctx.paths.config} is not a JSON object`);
  await writeJsonAtomic(ctx.paths.config, { ...config, server });
}

/**
 * Run by install.sh: checks this agent's own release manifest on `server` with the built-in root
 * (and, for the single executable, its own SHA-256 against it), then records `server` in
 * config.json so that `ferry activate --trial` needs no --server.
 */
export async function verifyInstall(ctx: AgentContext, serverOption: string): Promise<void> {
  const info = releaseBuild('verify an installation');
  const server = normalizeServerUrl(serverOption, '--server');
  const manifest = await fetchManifest(server, info.version, info.trustRoot);
  if (manifest.version !== info.version) throw new AgentError('UPDATE_REFUSED', `${server} sent the manifest of ${manifest.version} for ${info.version}`);
  if (installKind(info) === 'executable') {
    const artefact = artefactFor(manifest, 'linux-x64');
    if ((await sha256OfFile(process.execPath)) !== artefact.sha256) {
      throw new AgentError('UPDATE_REFUSED', `${process.execPath} is not the ${artefact.name} that release ${info.version} lists`);
    }
  }
  await recordServer(ctx, server);
  ctx.out(`ferry ${info.version}: the release manifest checks out under the built-in trust root ${rootFingerprint(info.trustRoot)}`);
  ctx.out(`license server ${server} recorded in ${ctx.paths.config}`);
}
