#!/usr/bin/env node
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { backupPassphraseOf, ConfigError, dataDirOf, loadConfig, type Config } from './config.js';
import { backupDataDir, BackupError, MIN_PASSPHRASE_LENGTH, restoreDataDir } from './backup.js';
import { askHidden } from './terminal.js';
import { migrate } from './db/migrate.js';
import { certifyKey, retireKey, rotateKey } from './keys/store.js';
import { loadOrCreateRoot, loadRootPrivateKey, rootPaths } from './keys/root.js';
import { pino } from 'pino';
import { logTransport } from './log-output.js';
import { createPool } from './db/pool.js';
import { createJobContext } from './jobs/context.js';
import { startWorkers } from './jobs/worker.js';
import { registerAccountJobs } from './account/jobs.js';
import { isConnectionError } from './errors.js';
import { createRedis } from './plugins/redis.js';
import { redactLogArguments } from './log-redaction.js';

const USAGE = `usage: ferry-server [command]

  serve             start the server (the default): migrate, then listen on HOST:PORT
  worker            run the job processors only (reminders, mail, reports, roll-ups,
                    retention): for scaling out, with FERRY_WORKERS=0 on the servers
  migrate           create the database if missing and apply migrations, then exit
  keys rotate       add a new signing key, certified by the root (its private key must be
                    present); it signs from the next start, old keys still verify
  keys certify KID  certify an existing signing key with the root (brought back from offline)
  keys retire KID   stop accepting tokens signed by key KID (from the next start)
  package           build the agent's release (npm package, Linux x64 executable, signed
                    manifest) into FERRY_DATA_DIR/releases/<version>/ (FERRY_PACKAGE_VERSION
                    overrides package.json's version); staff publish it in /admin/releases
  trust-root        print the root public key (PEM): FERRY_TRUST_ROOT of a development agent
  backup FILE       write the keys, the trust root and the secrets of FERRY_DATA_DIR to FILE,
                    encrypted with a passphrase (FERRY_BACKUP_PASSPHRASE, else asked)
  restore FILE      put a backup into FERRY_DATA_DIR; refuses to replace a file that is
                    there already unless --force

Exit codes: 1 failure, 2 usage or bad setting, 3 backup unreadable (wrong passphrase,
damaged file), 4 restore or backup would replace existing files (--force to allow).

Settings come from environment variables; see README.md.`;

function fail(message: string, code = 1): never {
  process.stderr.write(`ferry-server: ${message}\n`);
  process.exit(code);
}

/** `mysql://user:secret@host:3306/db` → `mysql://host:3306`: where, without the credentials. */
function where(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}`;
}

/** Migrates, and names DATABASE_URL when MySQL cannot be reached or refuses the login. */
async function migrateOrName(config: Config) {
  try {
    return await migrate(config.databaseUrl);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (isConnectionError(err) || code.startsWith('ER_ACCESS_DENIED') || code === 'ER_DBACCESS_DENIED_ERROR') {
      throw new ConfigError('DATABASE_URL', `cannot reach MySQL at ${where(config.databaseUrl)} (${(err as Error).message})`);
    }
    throw err;
  }
}

/**
 * One PING before anything else uses Redis: Bull's clients would otherwise wait and retry, and the
 * start would stop at some plugin's "onReady hook timed out" without saying what was missing.
 */
async function pingRedis(config: Config): Promise<void> {
  const redis = createRedis(config.redisUrl, 'ferry-server-startup');
  redis.on('error', () => {});
  const unreachable = (reason: string) => new ConfigError('REDIS_URL', `cannot reach Redis at ${where(config.redisUrl)} (${reason})`);
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(unreachable('no answer within 5 s')), 5_000);
    });
    const ready = new Promise<void>((resolve, reject) => {
      redis.once('ready', resolve);
      // ioredis keeps retrying; the first failure is the answer here.
      redis.once('error', (err: Error) => reject(unreachable(err.message)));
    });
    await Promise.race([ready.then(() => redis.ping()), timeout]);
  } finally {
    clearTimeout(timer);
    redis.disconnect();
  }
}

async function serve(config: Config): Promise<void> {
  await pingRedis(config);
  await migrateOrName(config);
  const app = await buildApp(config);
  let closing = false;
  const close = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    await app.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void close('SIGTERM'));
  process.on('SIGINT', () => void close('SIGINT'));
  await app.listen({ port: config.port, host: config.host });
  logWhereToGo(app);
  if (config.adminTokenGenerated) {
    // Printed once, on stderr: never into the JSON log, which goes to stdout.
    process.stderr.write(
      `\nADMIN_TOKEN was not set, so one was generated and saved in ${config.dataDir}/admin-token:\n\n  ${config.adminToken}\n\n` +
        'Use it as "Authorization: Bearer <token>" for /v1/admin and to sign in to /admin. It is not shown again.\n\n',
    );
  }
}

/** The pages an operator opens first, as links on the address the server listens on. */
function startUrls(app: FastifyInstance): Record<string, string> {
  const address = app.server.address() as AddressInfo;
  const host = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.address;
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
  const urls: Record<string, string> = { home: `${base}/`, docs: `${base}/docs`, account: `${base}/account`, admin: `${base}/admin` };
  // The download page is another module's: listed once a route serves it.
  if (app.hasRoute({ method: 'GET', url: '/download' })) urls.download = `${base}/download`;
  if (app.hasRoute({ method: 'GET', url: '/metrics' })) urls.metrics = `${base}/metrics`;
  return urls;
}

function logWhereToGo(app: FastifyInstance): void {
  const urls = startUrls(app);
  const lines = Object.entries(urls).map(([name, url]) => `${name} ${url}`).join(', ');
  const publicUrl = app.config.publicUrl;
  app.log.info({ urls, publicUrl }, `ferry-server is up: ${lines}${urls.home!.startsWith(publicUrl) ? '' : ` (public address ${publicUrl})`}`);
}

/** The Bull processors without the HTTP server: as many of these as the queues need. */
async function worker(config: Config): Promise<void> {
  await pingRedis(config);
  await migrateOrName(config);
  // The same redaction as the server's log: job errors may quote a mailed link.
  const log = pino({ level: config.logLevel, name: 'ferry-worker', hooks: { logMethod: redactLogArguments }, ...logTransport() });
  const db = createPool(config.databaseUrl);
  const jobs = createJobContext(config, db, log);
  // MyAccount's mail templates and its part of the retention purge, as inside the server.
  registerAccountJobs();
  await startWorkers(jobs);
  log.info({ mail: jobs.mail.description }, 'worker started');
  const stop = async () => {
    await jobs.queues.close();
    jobs.mail.close();
    await db.end();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}

/** Exit codes of backup and restore, by what went wrong. */
const BACKUP_EXIT = { usage: 2, unreadable: 3, 'would-overwrite': 4 } as const;

/** The passphrase from FERRY_BACKUP_PASSPHRASE, else asked on the terminal (twice for a new backup). */
async function backupPassphrase(confirm: boolean): Promise<string> {
  const given = backupPassphraseOf();
  if (given !== null) return given;
  if (!process.stdin.isTTY) fail('set FERRY_BACKUP_PASSPHRASE, or run this on a terminal to type the passphrase', 2);
  const passphrase = await askHidden(confirm ? `Passphrase for the backup (at least ${MIN_PASSPHRASE_LENGTH} characters): ` : 'Passphrase of the backup: ');
  if (confirm && (await askHidden('The same passphrase again: ')) !== passphrase) fail('the two passphrases differ', 2);
  return passphrase;
}

/**
 * backup and restore work on FERRY_DATA_DIR alone: they neither need MySQL nor Redis, nor create
 * anything in the folder first (loadConfig would write fresh secrets into a folder being restored).
 */
async function backupCommand(command: 'backup' | 'restore', args: string[]): Promise<void> {
  const force = args.includes('--force');
  const files = args.filter((a) => a !== '--force');
  if (files.length !== 1 || files[0]!.startsWith('-')) fail(`${command} needs one FILE (and may take --force)\n\n${USAGE}`, 2);
  const dataDir = dataDirOf();
  try {
    if (command === 'backup') {
      const { files: kept } = await backupDataDir(dataDir, files[0]!, await backupPassphrase(true), force);
      process.stdout.write(`backed up ${kept.length} files of ${dataDir} to ${files[0]}: keep it, and its passphrase, apart from this machine\n`);
    } else {
      const { files: restored } = await restoreDataDir(dataDir, files[0]!, await backupPassphrase(false), force);
      process.stdout.write(`restored ${restored.length} files into ${dataDir}: ${restored.join(', ')}\n`);
    }
  } catch (err) {
    if (err instanceof BackupError) fail(err.message, BACKUP_EXIT[err.kind]);
    throw err;
  }
}

/** The root private key, or a stop with what to do when it is offline (and that nothing changed). */
async function rootPrivateKeyFor(config: Config, why: string) {
  try {
    return await loadRootPrivateKey(rootPaths(config.dataDir, config.rootKeyFile ?? undefined));
  } catch (err) {
    return fail(`${why}, but ${(err as Error).message}; nothing was changed`);
  }
}

async function main(argv: string[]): Promise<void> {
  const [command = 'serve', ...rest] = argv;
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (command === 'backup' || command === 'restore') return backupCommand(command, rest);
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) fail(`bad setting ${err.message}`, 2);
    throw err;
  }
  switch (command) {
    case 'serve':
      return serve(config);
    case 'worker':
      return worker(config);
    case 'migrate': {
      const { applied, version } = await migrateOrName(config);
      process.stdout.write(applied.length ? `applied ${applied.join(', ')}; schema version ${version}\n` : `schema is up to date (version ${version})\n`);
      return;
    }
    case 'keys':
      if (rest[0] === 'rotate') {
        const rootPrivate = await rootPrivateKeyFor(config, 'keys rotate certifies the new key with the root');
        const key = await rotateKey(config.dataDir, rootPrivate);
        process.stdout.write(`new signing key ${key.kid}, certified by the root: restart the servers to sign with it\n`);
        return;
      }
      if (rest[0] === 'certify' && rest[1]) {
        const rootPrivate = await rootPrivateKeyFor(config, `keys certify signs with the root`);
        const key = await certifyKey(config.dataDir, rootPrivate, rest[1]);
        process.stdout.write(`certified signing key ${key.kid}: restart the servers to sign with it if it is the newest\n`);
        return;
      }
      if (rest[0] === 'retire' && rest[1]) {
        await retireKey(config.dataDir, rest[1]);
        process.stdout.write(`retired ${rest[1]}: tokens it signed are refused after the servers restart\n`);
        return;
      }
      return fail(`keys needs "rotate", "certify KID" or "retire KID"\n\n${USAGE}`, 2);
    case 'trust-root': {
      // The same root the server makes on its first start, so a developer can ask before that.
      const root = await loadOrCreateRoot(rootPaths(config.dataDir, config.rootKeyFile ?? undefined));
      process.stdout.write(root.pem.endsWith('\n') ? root.pem : `${root.pem}\n`);
      return;
    }
    case 'package': {
      // Loaded here only: esbuild and postject are needed to package, not to serve.
      const { packageAgent } = await import('./releases/package.js');
      await packageAgent({
        dataDir: config.dataDir,
        rootKeyFile: config.rootKeyFile ?? undefined,
        publicUrl: config.publicUrl,
        version: process.env.FERRY_PACKAGE_VERSION?.trim() || undefined,
        log: (line) => process.stdout.write(`${line}\n`),
      });
      return;
    }
    default:
      return fail(`unknown command "${command}"\n\n${USAGE}`, 2);
  }
}

main(process.argv.slice(2)).catch((err: Error) => {
  if (err instanceof ConfigError) fail(err.message, 2);
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ECONNREFUSED' || code === 'ETIMEDOUT') fail(`cannot reach MySQL or Redis: ${err.message}`);
  if (code === 'EADDRINUSE') fail(`port already in use: ${err.message}`);
  fail(err.message);
});
