#!/usr/bin/env node
import { buildApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { migrate } from './db/migrate.js';
import { retireKey, rotateKey } from './keys/store.js';
import { pino } from 'pino';
import { createPool } from './db/pool.js';
import { createJobContext } from './jobs/context.js';
import { startWorkers } from './jobs/worker.js';
import { registerAccountJobs } from './account/jobs.js';

const USAGE = `usage: ferry-server [command]

  serve             start the server (the default): migrate, then listen on HOST:PORT
  worker            run the job processors only (reminders, mail, reports, roll-ups,
                    retention): for scaling out, with FERRY_WORKERS=0 on the servers
  migrate           create the database if missing and apply migrations, then exit
  keys rotate       add a new signing key; it signs from the next start, old keys still verify
  keys retire KID   stop accepting tokens signed by key KID (from the next start)
  package           build the agent's release (npm package, Linux x64 executable, signed
                    manifest) into FERRY_DATA_DIR/releases/<version>/ (FERRY_PACKAGE_VERSION
                    overrides package.json's version); staff publish it in /admin/releases

Settings come from environment variables; see README.md.`;

function fail(message: string, code = 1): never {
  process.stderr.write(`ferry-server: ${message}\n`);
  process.exit(code);
}

async function serve(config: Config): Promise<void> {
  await migrate(config.databaseUrl);
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
  if (config.adminTokenGenerated) {
    // Printed once, on the terminal, never into the structured log.
    process.stdout.write(
      `\nADMIN_TOKEN was not set, so one was generated and saved in ${config.dataDir}/admin-token:\n\n  ${config.adminToken}\n\n` +
        'Use it as "Authorization: Bearer <token>" for /v1/admin and to sign in to /admin. It is not shown again.\n\n',
    );
  }
}

/** The Bull processors without the HTTP server: as many of these as the queues need. */
async function worker(config: Config): Promise<void> {
  await migrate(config.databaseUrl);
  const log = pino({ level: config.logLevel, name: 'ferry-worker' });
  const db = createPool(config.databaseUrl);
  const jobs = createJobContext(config, db, log);
  // MyAccount's mail templates and its part of the retention purge, as inside the server.
  registerAccountJobs();
  await startWorkers(jobs);
  log.info({ mail: jobs.mail.transport.description }, 'worker started');
  const stop = async () => {
    await jobs.queues.close();
    jobs.mail.transport.close();
    await db.end();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}

async function main(argv: string[]): Promise<void> {
  const [command = 'serve', ...rest] = argv;
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
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
      const { applied, version } = await migrate(config.databaseUrl);
      process.stdout.write(applied.length ? `applied ${applied.join(', ')}; schema version ${version}\n` : `schema is up to date (version ${version})\n`);
      return;
    }
    case 'keys':
      if (rest[0] === 'rotate') {
        const key = await rotateKey(config.dataDir);
        process.stdout.write(`new signing key ${key.kid}: restart the servers to sign with it\n`);
        return;
      }
      if (rest[0] === 'retire' && rest[1]) {
        await retireKey(config.dataDir, rest[1]);
        process.stdout.write(`retired ${rest[1]}: tokens it signed are refused after the servers restart\n`);
        return;
      }
      return fail(`keys needs "rotate" or "retire KID"\n\n${USAGE}`, 2);
    case 'package': {
      // Loaded here only: esbuild and postject are needed to package, not to serve.
      const { packageAgent } = await import('./releases/package.js');
      await packageAgent({
        dataDir: config.dataDir,
        rootKeyFile: process.env.FERRY_ROOT_KEY?.trim() || undefined,
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
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ECONNREFUSED' || code === 'ETIMEDOUT') fail(`cannot reach MySQL or Redis: ${err.message}`);
  if (code === 'EADDRINUSE') fail(`port already in use: ${err.message}`);
  fail(err.message);
});
