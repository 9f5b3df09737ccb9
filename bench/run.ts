import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import { loadKeySet } from '../server/keys/store.js';
import { describeOutput, installCleanup, stopAll, type Child } from './children.js';
import { runScenario, type Scenario, type ScenarioResult } from './load.js';
import { describeMachine } from './machine.js';
import { resultsTable, targetLine, wrongAnswers } from './report.js';
import { activationRequests, trialRequests, validateRequests } from './requests.js';
import { countRows, DEFAULT_PLAN, licensesOverSeats, resetDatabase, seed } from './seed.js';
import { startBareServer, startFerryServer } from './servers.js';
import { count, seconds } from './table.js';
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
  const ferry = await startFerryServer(ROOT, { databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, dataDir });

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

    const results: ScenarioResult[] = [];
    const base = (name: string, url: string, connections: number): Pick<Scenario, 'name' | 'url' | 'connections' | 'warmupSeconds' | 'durationSeconds'> => ({
      name, url, connections, warmupSeconds: WARMUP_SECONDS, durationSeconds: MEASURE_SECONDS,
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
        ...base('bare Fastify POST /bare', `${bareServer.baseUrl}/bare`, 50),
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
        ...base('POST /v1/validate', `${ferry.baseUrl}/v1/validate`, 50),
        next: validate.next,
        expectStatus: 200,
        checkBody: (body) => body.includes('"valid":true') && body.includes('"token":"'),
      },
      ferry.child,
    );

    // 3. New machines taking free seats of permanent licenses.
    const before = await countRows(db);
    const activations = await measure(
      {
        ...base('POST /v1/activations', `${ferry.baseUrl}/v1/activations`, 20),
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
        ...base('POST /v1/trials', `${ferry.baseUrl}/v1/trials`, 20),
        next: trialRequests(),
        expectStatus: 201,
        checkBody: (body) => body.includes('"token":"'),
      },
      ferry.child,
    );
    const afterTrials = await countRows(db);
    await ferry.child.stop();

    // The report.
    const out: string[] = [];
    out.push('Ferry licensing server bench');
    out.push(`machine    ${machine.cores} cores, ${machine.cpuModel}, ${machine.memoryGiB} GiB; Node ${machine.node}; MariaDB ${machine.mariadb}`);
    out.push(
      `database   ${DATABASE}: ${count(seededCounts.trials + seededCounts.permanent)} licenses ` +
        `(${count(seededCounts.trials)} trial, ${count(seededCounts.permanent)} permanent, of which ${count(seeded.pool.length)} with ${count(DEFAULT_PLAN.poolSeats)} seats), ` +
        `${count(seededCounts.activations)} activations; seeded in ${seconds(seeded.elapsedMs)}`,
    );
    out.push(
      `tokens     ${count(tokens.length)} distinct (${count(tokens.filter((t) => t.kind === 'trial').length)} trial), signed in ${seconds(signMs)}; ` +
        `validations sent ${count(validate.sent())} (${(validate.sent() / tokens.length).toFixed(2)} per token)`,
    );
    out.push(`load       autocannon in the bench process, each server in its own process; ${WARMUP_SECONDS} s warm-up, then ${MEASURE_SECONDS} s measured; 127.0.0.1 only`);
    out.push('');
    out.push(resultsTable(results, bare));
    out.push('');
    out.push(`activations/s: ${activations.okPerSecond.toFixed(1)} created (201); trials/s: ${trials.okPerSecond.toFixed(1)} created (201)`);
    out.push('');
    const [line, passed] = targetLine(validation, bare, VALIDATE_TARGET);
    out.push(`target     ${line}`);
    const created = activations.warmup.ok + activations.ok;
    const newRows = afterActivations.activations - before.activations;
    out.push(
      `check      activations: ${count(created)} answered 201, ${count(newRows)} new rows ` +
        `${newRows === created ? 'OK' : 'MISMATCH'}; licenses over their seats: ${overSeats} ${overSeats === 0 ? 'OK' : 'FAIL'}`,
    );
    const trialsCreated = trials.warmup.ok + trials.ok;
    const newTrials = afterTrials.trials - afterActivations.trials;
    out.push(`check      trials: ${count(trialsCreated)} answered 201, ${count(newTrials)} new trial licenses ${newTrials === trialsCreated ? 'OK' : 'MISMATCH'}`);
    const wrong = wrongAnswers(results);
    if (wrong.length > 0) {
      out.push('');
      out.push('answers that were not right:');
      for (const l of wrong) out.push(`  ${l}`);
    }
    const serverLog = ferry.child.stderr().trim();
    if (serverLog !== '') {
      out.push('');
      out.push('ferry-server stderr (last lines):');
      for (const l of serverLog.split('\n').slice(-10)) out.push(`  ${l.slice(0, 300)}`);
    }
    process.stdout.write(`\n${out.join('\n')}\n`);
    return passed && wrong.length === 0 && overSeats === 0 ? 0 : 1;
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
