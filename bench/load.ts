import autocannon from 'autocannon';
import { startCpuSample, type CpuPids, type CpuShare } from './cpu.js';

/**
 * One measured scenario: autocannon in this process against a server in a child process, a
 * warm-up run that is thrown away, then a measured run of fixed length. Every response is checked:
 * a fast stream of 4xx answers would be worthless, so they are counted and shown, not hidden.
 */

export interface RequestSpec {
  headers: Record<string, string>;
  body: string;
}

export interface Scenario {
  name: string;
  /** e.g. http://127.0.0.1:3000/v1/validate */
  url: string;
  connections: number;
  warmupSeconds: number;
  durationSeconds: number;
  /** The next request to send; called once per request. */
  next: () => RequestSpec;
  /** The status a right answer has; its body must pass `checkBody` too. */
  expectStatus: number;
  checkBody: (body: string) => boolean;
  /** Processes whose CPU use is measured during the measured run. */
  cpuPids: CpuPids;
}

export interface RunCounts {
  responses: number;
  /** Expected status and body. */
  ok: number;
  non2xx: number;
  /** 2xx answers that are not the expected status or whose body fails the check. */
  wrong2xx: number;
  /** Connection errors and timeouts. */
  errors: number;
  timeouts: number;
  byStatus: Map<number, number>;
  /** A few distinct answers that were not right, for the report. */
  examples: string[];
}

export interface ScenarioResult extends RunCounts {
  name: string;
  connections: number;
  seconds: number;
  requestsPerSecond: number;
  okPerSecond: number;
  p50: number;
  p99: number;
  cpu: CpuShare;
  warmup: RunCounts;
}

const MAX_EXAMPLES = 3;

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

interface Run {
  counts: RunCounts;
  latencies: Float64Array;
  seconds: number;
}

function runOnce(scenario: Scenario, seconds: number): Promise<Run> {
  const counts: RunCounts = {
    responses: 0, ok: 0, non2xx: 0, wrong2xx: 0, errors: 0, timeouts: 0, byStatus: new Map(), examples: [],
  };
  let latencies = new Float64Array(1 << 16);
  let nLatencies = 0;
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: scenario.url,
        method: 'POST',
        connections: scenario.connections,
        duration: seconds,
        timeout: 10,
        requests: [
          {
            method: 'POST',
            setupRequest: (request) => {
              const spec = scenario.next();
              request.headers = { 'content-type': 'application/json', ...spec.headers };
              request.body = spec.body;
              return request;
            },
            onResponse: (status, body) => {
              counts.responses++;
              counts.byStatus.set(status, (counts.byStatus.get(status) ?? 0) + 1);
              const right = status === scenario.expectStatus && scenario.checkBody(body);
              if (right) {
                counts.ok++;
                return;
              }
              if (status < 200 || status > 299) counts.non2xx++;
              else counts.wrong2xx++;
              const example = `${status} ${body.slice(0, 200)}`;
              if (counts.examples.length < MAX_EXAMPLES && !counts.examples.includes(example)) counts.examples.push(example);
            },
          },
        ],
      },
      (error: unknown, result: autocannon.Result) => {
        if (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
          return;
        }
        counts.errors = result.errors;
        counts.timeouts = result.timeouts;
        resolve({ counts, latencies: latencies.slice(0, nLatencies).sort(), seconds: result.duration });
      },
    );
    instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTime: number) => {
      if (nLatencies === latencies.length) {
        const grown = new Float64Array(latencies.length * 2);
        grown.set(latencies);
        latencies = grown;
      }
      latencies[nLatencies++] = responseTime;
    });
  });
}

export async function runScenario(scenario: Scenario): Promise<ScenarioResult> {
  const warmup = await runOnce(scenario, scenario.warmupSeconds);
  const stopCpu = startCpuSample(scenario.cpuPids);
  const measured = await runOnce(scenario, scenario.durationSeconds);
  const cpu = stopCpu();
  const seconds = measured.seconds > 0 ? measured.seconds : scenario.durationSeconds;
  return {
    name: scenario.name,
    connections: scenario.connections,
    seconds,
    ...measured.counts,
    requestsPerSecond: measured.counts.responses / seconds,
    okPerSecond: measured.counts.ok / seconds,
    p50: percentile(measured.latencies, 50),
    p99: percentile(measured.latencies, 99),
    cpu,
    warmup: warmup.counts,
  };
}
