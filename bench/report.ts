import type { ScenarioResult } from './load.js';
import type { Machine } from './machine.js';
import type { Counts, SeedPlan } from './seed.js';
import type { LogSummary } from './server-log.js';
import { count, formatTable, ms, rate, seconds } from './table.js';
import type { TokenCase } from './tokens.js';

/** What `npm run bench` prints: the setting, the results table, the target, the checks, what went wrong. */

export interface Target {
  /** Minimum req/s as a fraction of the bare route's. */
  minRatio: number;
  /** p99 must be below this, in ms. */
  maxP99: number;
}

function ratio(result: ScenarioResult, bare: ScenarioResult | undefined): number {
  return bare && bare.requestsPerSecond > 0 ? result.requestsPerSecond / bare.requestsPerSecond : Number.NaN;
}

export function resultsTable(results: ScenarioResult[], bare: ScenarioResult | undefined): string {
  return formatTable(
    [
      { title: 'scenario' },
      { title: 'conns', align: 'right' },
      { title: 'req/s', align: 'right' },
      { title: 'ok/s', align: 'right' },
      { title: 'p50 ms', align: 'right' },
      { title: 'p99 ms', align: 'right' },
      { title: 'responses', align: 'right' },
      { title: 'non-2xx', align: 'right' },
      { title: 'bad 2xx', align: 'right' },
      { title: 'errors', align: 'right' },
      { title: 'x bare', align: 'right' },
      { title: 'cpu % srv/db/gen/other', align: 'right' },
    ],
    results.map((r) => {
      const x = ratio(r, bare);
      return [
        r.name,
        String(r.connections),
        rate(r.requestsPerSecond),
        rate(r.okPerSecond),
        ms(r.p50),
        ms(r.p99),
        count(r.responses),
        count(r.non2xx),
        count(r.wrong2xx),
        count(r.errors),
        Number.isFinite(x) ? `${x.toFixed(2)}x` : '-',
        [r.cpu.server, r.cpu.db, r.cpu.loadGenerator, r.cpu.other].map((c) => (c === null ? '-' : c.toFixed(0))).join('/'),
      ];
    }),
  );
}

const verdict = (ok: boolean) => (ok ? 'PASS' : 'FAIL');

/** One line per target; the second value is true when every part passed. */
export function targetLine(result: ScenarioResult, bare: ScenarioResult | undefined, target: Target): [string, boolean] {
  const x = ratio(result, bare);
  const fastEnough = Number.isFinite(x) && x >= target.minRatio;
  const quickEnough = result.p99 < target.maxP99;
  const allRight = result.ok === result.responses && result.errors === 0 && result.responses > 0;
  const line =
    `${result.name}: req/s >= ${target.minRatio}x bare: ${Number.isFinite(x) ? x.toFixed(2) : '-'}x ${verdict(fastEnough)}` +
    `; p99 < ${target.maxP99} ms: ${ms(result.p99)} ms ${verdict(quickEnough)}` +
    `; wrong answers and errors: ${count(result.responses - result.ok + result.errors)} ${verdict(allRight)}` +
    `  => ${verdict(fastEnough && quickEnough && allRight)}`;
  return [line, fastEnough && quickEnough && allRight];
}

/** Status counts and example bodies of the answers that were not right, warm-up included. */
export function wrongAnswers(results: ScenarioResult[]): string[] {
  const lines: string[] = [];
  for (const r of results) {
    for (const [phase, c] of [['warm-up', r.warmup], ['measured', r]] as const) {
      if (c.ok === c.responses && c.errors === 0) continue;
      const statuses = [...c.byStatus.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([status, n]) => `${status} x${count(n)}`)
        .join(', ');
      lines.push(`${r.name} (${phase}): ${statuses}; connection errors ${count(c.errors)} (timeouts ${count(c.timeouts)})`);
      for (const example of c.examples) lines.push(`    e.g. ${example}`);
    }
  }
  return lines;
}

/**
 * Rows a write scenario created against the 201s it counted. Requests still in flight when a run
 * stops are done by the server but never answered to autocannon: up to one per connection per run
 * (warm-up and measured), and so are requests that timed out or lost their connection; the rows
 * may exceed the 201s by that much and no more.
 */
export function rowsCheck(what: string, result: ScenarioResult, newRows: number): [string, boolean] {
  const answered = result.warmup.ok + result.ok;
  const unanswered = newRows - answered;
  const bound = 2 * result.connections + result.warmup.errors + result.errors;
  const ok = unanswered >= 0 && unanswered <= bound;
  const detail = unanswered === 0 ? '' : ` (${count(unanswered)} still in flight when a run stopped, at most ${bound})`;
  return [`${what}: ${count(answered)} answered 201, ${count(newRows)} new rows${ok ? detail : ''} ${ok ? 'OK' : 'MISMATCH'}`, ok];
}

/** Other processes busy during a measurement disturb it: say so next to the numbers. */
export function interference(results: ScenarioResult[], thresholdPercent = 20): string[] {
  return results
    .filter((r) => r.cpu.other !== null && r.cpu.other > thresholdPercent)
    .map((r) => `${r.name}: other processes used ${r.cpu.other!.toFixed(0)} % of a core meanwhile; its numbers are disturbed`);
}

export interface ReportInput {
  machine: Machine;
  database: string;
  plan: SeedPlan;
  seededCounts: Counts;
  seedMs: number;
  tokens: TokenCase[];
  signMs: number;
  validationsSent: number;
  warmupSeconds: number;
  measureSeconds: number;
  results: ScenarioResult[];
  bare: ScenarioResult;
  validation: ScenarioResult;
  validateTarget: Target;
  /** Absent when only the validation rows were run (BENCH_ONLY=validation). */
  activations?: ScenarioResult;
  newActivationRows: number;
  overSeats: number;
  trials?: ScenarioResult;
  newTrialRows: number;
  serverLog: LogSummary;
  serverStderr: string;
}

/** The whole report; `passed` when the target is met and every answer and check was right. */
export function renderReport(r: ReportInput): { text: string; passed: boolean } {
  const { machine, seededCounts: seeded } = r;
  const out: string[] = [];
  out.push('Ferry licensing server bench');
  out.push(`machine    ${machine.cores} cores, ${machine.cpuModel}, ${machine.memoryGiB} GiB; Node ${machine.node}; MariaDB ${machine.mariadb}`);
  out.push(`mariadb    innodb_buffer_pool_size ${machine.bufferPoolMiB} MiB, innodb_flush_log_at_trx_commit ${machine.flushLogAtTrxCommit}`);
  out.push(
    `database   ${r.database}: ${count(seeded.trials + seeded.permanent)} licenses (${count(seeded.trials)} trial, ` +
      `${count(seeded.permanent)} permanent, of which ${count(r.plan.poolLicenses)} with ${count(r.plan.poolSeats)} seats), ` +
      `${count(seeded.activations)} activations; seeded in ${seconds(r.seedMs)}`,
  );
  out.push(
    `tokens     ${count(r.tokens.length)} distinct (${count(r.tokens.filter((t) => t.kind === 'trial').length)} trial), ` +
      `signed in ${seconds(r.signMs)}; validations sent ${count(r.validationsSent)} (${(r.validationsSent / r.tokens.length).toFixed(2)} per token)`,
  );
  out.push(
    `load       autocannon in the bench process, each server in its own process; ${r.warmupSeconds} s warm-up, ` +
      `then ${r.measureSeconds} s measured; 127.0.0.1 only`,
  );
  out.push('');
  out.push(resultsTable(r.results, r.bare));
  out.push(`cpu %: of one core (${machine.cores * 100} % in all) for the server under test, MariaDB, the load generator, everything else`);
  for (const l of interference(r.results)) out.push(`warning    ${l}`);
  out.push('');
  if (r.activations && r.trials) {
    out.push(`activations/s: ${r.activations.okPerSecond.toFixed(1)} created (201); trials/s: ${r.trials.okPerSecond.toFixed(1)} created (201)`);
    out.push('');
  }
  const [target, targetMet] = targetLine(r.validation, r.bare, r.validateTarget);
  out.push(`target     ${target}`);
  let activationRowsOk = true;
  let trialRowsOk = true;
  if (r.activations && r.trials) {
    const [activationRows, activationsOk] = rowsCheck('activations', r.activations, r.newActivationRows);
    out.push(`check      ${activationRows}; licenses over their seats: ${r.overSeats} ${r.overSeats === 0 ? 'OK' : 'FAIL'}`);
    const [trialRows, trialsOk] = rowsCheck('trials', r.trials, r.newTrialRows);
    out.push(`check      ${trialRows}`);
    activationRowsOk = activationsOk;
    trialRowsOk = trialsOk;
  }
  const wrong = wrongAnswers(r.results);
  if (wrong.length > 0) {
    out.push('', 'answers that were not right:', ...wrong.map((l) => `  ${l}`));
  }
  if (r.serverLog.lineCount > 0) {
    const n = r.serverLog.lineCount;
    out.push('', `ferry-server log (LOG_LEVEL=warn): ${count(n)} line${n === 1 ? '' : 's'}`, ...r.serverLog.summary().map((l) => `  ${l}`));
  }
  const stderr = r.serverStderr.trim();
  if (stderr !== '') {
    out.push('', 'ferry-server stderr (last lines):', ...stderr.split('\n').slice(-6).map((l) => `  ${l.slice(0, 240)}`));
  }
  const passed = targetMet && wrong.length === 0 && r.overSeats === 0 && activationRowsOk && trialRowsOk;
  return { text: out.join('\n'), passed };
}
