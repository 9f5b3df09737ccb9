import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import { loadKeySet } from '../server/keys/store.js';
import { describeOutput, installCleanup, stopAll, type Child } from './children.js';
import { runScenario, type Scenario, type ScenarioResult } from './load.js';
import { pidFromFile } from './cpu.js';
import { describeMachine } from './machine.js';
import { renderReport } from './report.js';
import { activationRequests, trialRequests, validateRequests } from './requests.js';
import { storeTokenDigests } from './tokens.js';
import { countRows, DEFAULT_PLAN, licensesOverSeats, resetDatabase, seed } from './seed.js';
import { startBareServer, startFerryServer, waitStateLoaded } from './servers.js';
import { count } from './table.js';
import { signTokens } from './tokens.js';

/**
 * `npm run bench`: seeds a dedicated database, starts ferry-server and a bare Fastify server as
 * child processes, loads them from this process with autocannon, and prints one table.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MYSQL = { host: '127.0.0.1', port: 3306, user: 'root' };
const DATABASE = 'ferry_bench';
const DATABASE_URL = `mysql://root@127.0.0.1:3306/${DATABASE}`;
const REDIS_URL = 'redis://127.0.0.1:6379/0';
const WARMUP_SECONDS = 2;
const MEASURE_SECONDS = 10;
const TOKEN_POOL = 50_000;
const VALIDATE_TARGET = { minRatio: 0.5, maxP99: 20 };
/** BENCH_ONLY=validation: the bare route and the validation rows only (no activations, no trials). */
const ONLY_VALIDATION = process.env.BENCH_ONLY === 'validation';

const progress = (message: string) => process.stderr.write(`bench: ${message}\n`);

async function main(): Promise<number> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ferry-bench-'));
  installCleanup(() => rmSync(dataDir, { recursive: true, force: true }));

  const admin = await mysql.createConnection(MYSQL);
  const machine = await describeMachine(admin);
  progress(`resetting database ${DATABASE}`);
  await resetDatabase(admin, DATABASE);
  await admin.end();

  progress('starting ferry-server (it creates the schema and its signing key)');
  const ferryOptions = { databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, dataDir };
  let ferry = await startFerryServer(ROOT, ferryOptions);

  const db = mysql.createPool({ ...MYSQL, database: DATABASE, timezone: 'Z', connectionLimit: 2 });
  try {
    progress(`seeding ${count(DEFAULT_PLAN.licenses)} licenses and ${count(DEFAULT_PLAN.activations)} activations`);
    const seeded = await seed(db, DEFAULT_PLAN);
    const seededCounts = await countRows(db);

    const { keys } = await loadKeySet(dataDir);
    progress(`signing ${count(TOKEN_POOL)} tokens with the server's key ${keys.active.kid}`);
    const signStarted = Date.now();
    const tokens = signTokens(seeded, keys.active, TOKEN_POOL);
    const signMs = Date.now() - signStarted;
    // What the server stored when it issued them (migration 013): check-ins recognise them by digest.
    await storeTokenDigests(db, tokens);

    // A server starts with its data in the database: it loads what validations read at start
    // (server/licenses/activation-state.ts). Started again now, it loads the seeded rows, as a
    // production server would, rather than taking a bulk import in through its catch-ups.
    await ferry.child.stop();
    progress('starting ferry-server again, on the seeded database');
    ferry = await startFerryServer(ROOT, ferryOptions);
    const stateLoadMs = await waitStateLoaded(ferry, seededCounts.activations);
    progress(`ferry-server holds the ${count(seededCounts.activations)} activations ${(stateLoadMs / 1000).toFixed(1)} s after it was ready`);

    const results: ScenarioResult[] = [];
    const dbPid = pidFromFile(machine.mariadbPidFile);
    type Base = Pick<Scenario, 'name' | 'url' | 'connections' | 'warmupSeconds' | 'durationSeconds' | 'cpuPids'>;
    const base = (name: string, url: string, connections: number, server: Child): Base => ({
      name,
      url,
      connections,
      warmupSeconds: WARMUP_SECONDS,
      durationSeconds: MEASURE_SECONDS,
      cpuPids: { server: server.proc.pid, db: dbPid },
    });
    const measure = async (scenario: Scenario, server: Child) => {
      progress(`${scenario.name}: ${WARMUP_SECONDS} s warm-up + ${MEASURE_SECONDS} s at ${scenario.connections} connections`);
      const result = await runScenario(scenario);
      if (server.hasExited()) throw new Error(`${server.name} died during ${scenario.name}\n${describeOutput(server)}`);
      results.push(result);
      return result;
    };

    // 1. The reference: the same requests as the validation scenario, to a route that does nothing.
    const bareServer = await startBareServer(ROOT);
    const bare = await measure(
      {
        ...base('bare Fastify POST /bare', `${bareServer.baseUrl}/bare`, 50, bareServer.child),
        next: validateRequests(tokens).next,
        expectStatus: 200,
        checkBody: (body) => body === '{"valid":true}',
      },
      bareServer.child,
    );
    await bareServer.child.stop();

    // 2. Validation, a different seeded activation on every request.
    const validate = validateRequests(tokens);
    const validation = await measure(
      {
        ...base('POST /v1/validate', `${ferry.baseUrl}/v1/validate`, 50, ferry.child),
        next: validate.next,
        expectStatus: 200,
        // Fresh leases: a check-in that changes nothing, answered without a new token.
        checkBody: (body) => body.includes('"valid":true') && !body.includes('"token":"'),
      },
      ferry.child,
    );

    if (ONLY_VALIDATION) {
      await ferry.child.stop();
      const report = renderReport({
        machine, database: DATABASE, plan: DEFAULT_PLAN, seededCounts, seedMs: seeded.elapsedMs, tokens, signMs,
        validationsSent: validate.sent(), warmupSeconds: WARMUP_SECONDS, measureSeconds: MEASURE_SECONDS, results, bare,
        validation, validateTarget: VALIDATE_TARGET, newActivationRows: 0, overSeats: 0, newTrialRows: 0,
        serverLog: ferry.log, serverStderr: ferry.child.stderr(),
      });
      process.stdout.write(`\n${report.text}\n`);
      return report.passed ? 0 : 1;
    }

    // 3. New machines taking free seats of permanent licenses.
    const before = await countRows(db);
    const activations = await measure(
      {
        ...base('POST /v1/activations', `${ferry.baseUrl}/v1/activations`, 20, ferry.child),
        next: activationRequests(seeded.pool.map((p) => p.key)),
        expectStatus: 201,
        checkBody: (body) => body.includes('"token":"'),
      },
      ferry.child,
    );
    const afterActivations = await countRows(db);
    const overSeats = await licensesOverSeats(db);

    // 4. New machines starting a trial.
    const trials = await measure(
      {
        ...base('POST /v1/trials', `${ferry.baseUrl}/v1/trials`, 20, ferry.child),
        next: trialRequests(),
        expectStatus: 201,
        checkBody: (body) => body.includes('"token":"'),
      },
      ferry.child,
    );
    const afterTrials = await countRows(db);
    await ferry.child.stop();

    const report = renderReport({
      machine,
      database: DATABASE,
      plan: DEFAULT_PLAN,
      seededCounts,
      seedMs: seeded.elapsedMs,
      tokens,
      signMs,
      validationsSent: validate.sent(),
      warmupSeconds: WARMUP_SECONDS,
      measureSeconds: MEASURE_SECONDS,
      results,
      bare,
      validation,
      validateTarget: VALIDATE_TARGET,
      activations,
      newActivationRows: afterActivations.activations - before.activations,
      overSeats,
      trials,
      newTrialRows: afterTrials.trials - afterActivations.trials,
      serverLog: ferry.log,
      serverStderr: ferry.child.stderr(),
    });
    process.stdout.write(`\n${report.text}\n`);
    return report.passed ? 0 : 1;
  } finally {
    await db.end();
  }
}

main()
  .then(async (code) => {
    await stopAll();
    process.exit(code);
  })
  .catch(async (error: unknown) => {
    process.stderr.write(`\nbench failed: ${error instanceof Error ? error.message : String(error)}\n`);
    await stopAll();
    process.exit(2);
  });
