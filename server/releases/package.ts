import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, chmod, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';
import type { BuildInfo } from '../../agent/build-info.js';
import { signStatement } from '../../licensing/trust.js';
import { loadOrCreateRoot, loadRootPrivateKey, rootPaths } from '../keys/root.js';
import { isVersion, npmArtefactName, seaArtefactName, type ManifestArtefact, type ManifestBody } from '../../licensing/release-manifest.js';
import { MANIFEST_FILE, releasesDir } from './store.js';

/**
 * `ferry-server package` (`npm run package`): builds the agent as customers get it into
 * `FERRY_DATA_DIR/releases/<version>/`:
 *
 * - one esbuild bundle of agent/cli.ts (CommonJS, every dependency inside, this build's facts
 *   defined in it as `__FERRY_BUILD_INFO__`);
 * - `ferry-agent-<version>.tgz`, an npm package of that bundle alone (no dependencies to install);
 * - `ferry-<version>-linux-x64`, a single executable: this Node binary with the bundle injected;
 * - `manifest.json`, their sizes and SHA-256s, signed by the deployment's root.
 *
 * In the single executable the bundle is an asset run by `sea/main.cjs`, with a V8 code cache of
 * every function in it (`sea/code-cache.cjs` says why).
 *
 * ssh2's OpenSSL binding (`sshcrypto.node`) goes into the single executable as an asset, which
 * agent/native-addon.ts loads; the npm package has none and ssh2 takes its JavaScript ciphers there.
 * cpu-features, which ssh2 asks only to order ciphers (ferry orders its own), is left out of both.
 */

const exec = promisify(execFile);
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
/** The fuse Node's single-executable support looks for (Node's documentation names it). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
/** The single executable's main script and the maker of its code cache (plain CommonJS, not compiled). */
const SEA_SOURCES = join(REPO, 'server', 'releases', 'sea');

export interface PackageOptions {
  dataDir: string;
  /** FERRY_ROOT_KEY: the root private key's file, when it is not in the data folder. */
  rootKeyFile?: string;
  /** PUBLIC_URL: the server the packaged agents talk to. */
  publicUrl: string;
  /** FERRY_PACKAGE_VERSION; package.json's version otherwise. */
  version?: string;
  log?: (line: string) => void;
}

export interface PackageResult {
  dir: string;
  body: ManifestBody;
}

async function repoVersion(): Promise<string> {
  const { version } = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string };
  return version;
}

/** `<short commit> <date>` of the checkout, or 'unknown' outside git. */
async function buildId(now: Date): Promise<string> {
  try {
    const { stdout } = await exec('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO });
    return `${stdout.trim()} ${now.toISOString().slice(0, 10)}`;
  } catch {
    return 'unknown';
  }
}

/** ssh2's OpenSSL binding, built by npm for this Node. */
function nativeCryptoFile(): string {
  const ssh2 = createRequire(import.meta.url).resolve('ssh2');
  return join(ssh2, '..', 'protocol', 'crypto', 'build', 'Release', NATIVE_CRYPTO_ASSET);
}

const NATIVE_CRYPTO_ASSET = 'sshcrypto.node';

/**
 * What the bundle does where ssh2 requires its native parts: the binding comes from the single
 * executable's asset (agent/native-addon.ts), and cpu-features is absent. Either may throw, inside
 * ssh2's own try/catch. Without this, each `require` of a file in a single executable made Node
 * print a warning on every transfer.
 */
const nativeParts: Plugin = {
  name: 'ferry-native-parts',
  setup(builder) {
    builder.onResolve({ filter: /^cpu-features$/ }, () => ({ path: 'cpu-features', namespace: 'ferry-absent' }));
    builder.onLoad({ filter: /.*/, namespace: 'ferry-absent' }, () => ({ contents: 'throw new Error("not in this build");', loader: 'js' }));
    builder.onResolve({ filter: /(^|\/)sshcrypto\.node$/ }, () => ({ path: NATIVE_CRYPTO_ASSET, namespace: 'ferry-native' }));
    builder.onLoad({ filter: /.*/, namespace: 'ferry-native' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(join(REPO, 'agent', 'native-addon.ts'))}).loadBundledAddon(${JSON.stringify(args.path)});`,
      resolveDir: REPO,
      loader: 'js',
    }));
  },
};

/** The agent in one CommonJS file; fails when anything outside agent/, licensing/ and dependencies got in. */
async function bundleAgent(outfile: string, info: BuildInfo): Promise<string[]> {
  const result = await build({
    entryPoints: [join(REPO, 'agent/cli.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    minify: true,
    legalComments: 'eof',
    plugins: [nativeParts],
    // A single executable has no dynamic import(): every import() becomes a require().
    supported: { 'dynamic-import': false },
    define: { __FERRY_BUILD_INFO__: JSON.stringify(info) },
    metafile: true,
    logLevel: 'error',
  });
  const inputs = Object.keys(result.metafile.inputs);
  // Dependencies may resolve through a symlinked node_modules; `<define:…>` is esbuild's own.
  const strays = inputs.filter((input) => !/^(agent|licensing)\/|(^|\/)node_modules\/|^<define:|^ferry-(native|absent):/.test(input));
  if (strays.length > 0) throw new Error(`the agent bundle would contain ${strays.join(', ')}: the agent must import only agent/, licensing/ and its dependencies`);
  const packages = inputs.map((input) => /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input)?.[1]).filter((name): name is string => name !== undefined);
  return [...new Set(packages)].sort();
}

async function npmTarball(dir: string, bundle: string, info: BuildInfo): Promise<string> {
  const staging = await mkdtemp(join(dir, '.npm-'));
  const packageJson = {
    name: 'ferry-agent',
    version: info.version,
    description: 'Ferry: licensed SFTP file transfer (the ferry agent).',
    license: 'UNLICENSED',
    bin: { ferry: 'ferry.cjs' },
    engines: { node: '>=20' },
    files: ['ferry.cjs', 'build-info.json'],
  };
  await writeFile(join(staging, 'package.json'), `${JSON.stringify(packageJson, null, 2)}\n`);
  await copyFile(bundle, join(staging, 'ferry.cjs'));
  await chmod(join(staging, 'ferry.cjs'), 0o755);
  // For people and tools that look inside; the bundle carries the same facts itself.
  await writeFile(join(staging, 'build-info.json'), `${JSON.stringify(info, null, 2)}\n`);
  await exec('npm', ['pack', '--silent', '--pack-destination', dir, staging], { cwd: dir });
  await rm(staging, { recursive: true, force: true });
  return npmArtefactName(info.version);
}

async function singleExecutable(dir: string, bundle: string, version: string): Promise<string> {
  const work = await mkdtemp(join(dir, '.sea-'));
  // The bundle is compiled as a function body (sea/main.cjs), where a #! line is no syntax.
  const source = join(work, 'ferry.cjs');
  await writeFile(source, (await readFile(bundle, 'utf8')).replace(/^#!.*\n/, ''));
  const cache = join(work, 'ferry.cache');
  // In a Node of its own, without NODE_OPTIONS: the cache must be made under V8's default flags.
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  await exec(process.execPath, [join(SEA_SOURCES, 'code-cache.cjs'), source, cache], { env });
  const blob = join(work, 'sea.blob');
  const config = {
    main: join(SEA_SOURCES, 'main.cjs'),
    output: blob,
    disableExperimentalSEAWarning: true,
    // main.cjs is a few lines; the bundle's cache is ferry.cache.
    useCodeCache: false,
    assets: { [NATIVE_CRYPTO_ASSET]: nativeCryptoFile(), 'ferry.cjs': source, 'ferry.cache': cache },
  };
  await writeFile(join(work, 'sea.json'), JSON.stringify(config));
  await exec(process.execPath, ['--experimental-sea-config', join(work, 'sea.json')], { cwd: work, env });
  const name = seaArtefactName(version);
  const exe = join(dir, name);
  await copyFile(process.execPath, exe);
  await chmod(exe, 0o755);
  // Its command line, in a child: it writes warnings about the ELF notes it passes over that say nothing.
  const postject = createRequire(import.meta.url).resolve('postject/dist/cli.js');
  await exec(process.execPath, [postject, exe, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE]);
  await rm(work, { recursive: true, force: true });
  return name;
}

async function describe(dir: string, name: string, platform: ManifestArtefact['platform']): Promise<ManifestArtefact> {
  const bytes = await readFile(join(dir, name));
  return { name, platform, sha256: createHash('sha256').update(bytes).digest('hex'), size: (await stat(join(dir, name))).size };
}

export async function packageAgent(options: PackageOptions): Promise<PackageResult> {
  const log = options.log ?? (() => undefined);
  const version = options.version ?? (await repoVersion());
  if (!isVersion(version)) throw new Error(`"${version}" is not a release version (e.g. 1.2.3 or 1.2.3-rc.1, at most 32 characters)`);
  // The executable is this Node binary with the agent inside: only a Linux x64 Node makes a Linux x64 one.
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error(`package on Linux x64 (this is ${process.platform}-${process.arch}): the single executable is made from the Node binary that runs the command`);
  const finalDir = join(releasesDir(options.dataDir), version);
  if (existsSync(finalDir)) throw new Error(`${finalDir} exists already: a packaged version is never rebuilt (choose another FERRY_PACKAGE_VERSION)`);

  const paths = rootPaths(options.dataDir, options.rootKeyFile);
  const { pem } = await loadOrCreateRoot(paths);
  const rootKey = await loadRootPrivateKey(paths);
  const now = new Date();
  const info: BuildInfo = { version, build: await buildId(now), release: true, trustRoot: pem, server: options.publicUrl };

  // Built beside the final folder and renamed into place: a failed run leaves no half release.
  await mkdir(releasesDir(options.dataDir), { recursive: true });
  const dir = await mkdtemp(join(releasesDir(options.dataDir), `.${version}-`));
  try {
    const bundle = join(dir, '.ferry.cjs');
    const packages = await bundleAgent(bundle, info);
    log(`bundled the agent with ${packages.join(', ')}`);
    const tarball = await npmTarball(dir, bundle, info);
    log(`npm package ${tarball}`);
    const executable = await singleExecutable(dir, bundle, version);
    log(`single executable ${executable}`);
    await rm(bundle);
    const body: ManifestBody = {
      version,
      build: info.build,
      artefacts: [await describe(dir, executable, 'linux-x64'), await describe(dir, tarball, 'node')],
      createdAt: now.toISOString(),
    };
    const signed = signStatement(rootKey, 'ferry-release-manifest', body);
    await writeFile(join(dir, MANIFEST_FILE), `${JSON.stringify(signed, null, 2)}\n`);
    await rename(dir, finalDir);
    log(`release ${version} (${info.build}) packaged in ${finalDir}: publish it in /admin/releases`);
    return { dir: finalDir, body };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
