import type { ScenarioResult } from './load.js';
import { count, formatTable, ms, rate } from './table.js';

/** The results table, the targets with PASS/FAIL, and the answers that were not right. */

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
    `; every answer right: ${count(result.responses - result.ok + result.errors)} not ${verdict(allRight)}` +
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
