import { createServer, type Server } from 'node:http';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Type } from 'typebox';
import { mailCounterKey } from '../jobs/context.js';
import { errorResponses } from '../licenses/schemas.js';

/** Upper bounds (seconds) of the validation latency histogram: a validation takes milliseconds. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed', 'paused'] as const;
const TIMED_ROUTE = 'POST /v1/validate';

/** A label value as the Prometheus text format wants it: backslash, quote and newline escaped. */
const label = (value: string) => value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** Counts and times requests in this process; reads queue depths and mail counters (Redis) when scraped. */
class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly latencyCounts = LATENCY_BUCKETS.map(() => 0);
  private latencySum = 0;
  private latencyCount = 0;

  constructor(private readonly app: FastifyInstance) {}

  countRequest(method: string, route: string, status: number, seconds: number): void {
    const key = `${method}\u0000${route}\u0000${status}`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    if (`${method} ${route}` !== TIMED_ROUTE) return;
    this.latencySum += seconds;
    this.latencyCount += 1;
    LATENCY_BUCKETS.forEach((bound, i) => {
      if (seconds <= bound) this.latencyCounts[i]! += 1;
    });
  }

  async render(): Promise<string> {
    const out: string[] = [];
    out.push('# HELP ferry_http_requests_total HTTP requests answered by this process, by route pattern and status.');
    out.push('# TYPE ferry_http_requests_total counter');
    for (const [key, value] of this.requests) {
      const [method, route, status] = key.split('\u0000') as [string, string, string];
      out.push(`ferry_http_requests_total{method="${label(method)}",route="${label(route)}",status="${status}"} ${value}`);
    }
    out.push('# HELP ferry_validate_duration_seconds Time to answer POST /v1/validate, in this process.');
    out.push('# TYPE ferry_validate_duration_seconds histogram');
    LATENCY_BUCKETS.forEach((bound, i) => out.push(`ferry_validate_duration_seconds_bucket{le="${bound}"} ${this.latencyCounts[i]}`));
    out.push(`ferry_validate_duration_seconds_bucket{le="+Inf"} ${this.latencyCount}`);
    out.push(`ferry_validate_duration_seconds_sum ${this.latencySum}`);
    out.push(`ferry_validate_duration_seconds_count ${this.latencyCount}`);
    out.push(...this.activationState());
    out.push(...(await this.queueDepths()));
    out.push(...(await this.mailCounters()));
    return `${out.join('\n')}\n`;
  }

  /** What this process holds for validations (server/licenses/activation-state.ts). */
  private activationState(): string[] {
    const stats = this.app.activationState.stats();
    return [
      '# HELP ferry_activation_state_activations Activations held in memory for validations by this process.',
      '# TYPE ferry_activation_state_activations gauge',
      `ferry_activation_state_activations ${stats.activations}`,
      '# HELP ferry_activation_state_licenses Licenses held in memory for validations by this process.',
      '# TYPE ferry_activation_state_licenses gauge',
      `ferry_activation_state_licenses ${stats.licenses}`,
      '# HELP ferry_activation_state_current Whether validations use what is held (1), or read MariaDB (0: loading, or catch-ups failing).',
      '# TYPE ferry_activation_state_current gauge',
      `ferry_activation_state_current ${stats.current ? 1 : 0}`,
      '# HELP ferry_activation_state_age_seconds Since the last catch-up with MariaDB that worked began.',
      '# TYPE ferry_activation_state_age_seconds gauge',
      `ferry_activation_state_age_seconds ${stats.ageMs === null ? 'NaN' : stats.ageMs / 1000}`,
    ];
  }

  /** Jobs per Bull queue and state; nothing (and a gauge saying so) while Redis is away. */
  private async queueDepths(): Promise<string[]> {
    const lines = ['# HELP ferry_queue_jobs Jobs in each Bull queue, by state.', '# TYPE ferry_queue_jobs gauge'];
    try {
      for (const queue of this.app.jobs.queues.all()) {
        const counts = (await queue.getJobCounts()) as unknown as Record<string, number>;
        for (const state of QUEUE_STATES) lines.push(`ferry_queue_jobs{queue="${label(queue.name)}",state="${state}"} ${counts[state] ?? 0}`);
      }
      lines.push('# HELP ferry_redis_up Whether Redis answered this scrape.', '# TYPE ferry_redis_up gauge', 'ferry_redis_up 1');
    } catch {
      return ['# HELP ferry_redis_up Whether Redis answered this scrape.', '# TYPE ferry_redis_up gauge', 'ferry_redis_up 0'];
    }
    return lines;
  }

  /** Messages sent and sending attempts that failed, by every worker process (counted in Redis). */
  private async mailCounters(): Promise<string[]> {
    const prefix = this.app.config.redisPrefix;
    const read = async (outcome: 'sent' | 'failed') => Number((await this.app.redis.get(mailCounterKey(prefix, outcome)).catch(() => null)) ?? 0);
    return [
      '# HELP ferry_mail_sent_total Messages the SMTP server (or the outbox folder) accepted, by all workers.',
      '# TYPE ferry_mail_sent_total counter',
      `ferry_mail_sent_total ${await read('sent')}`,
      '# HELP ferry_mail_failed_total Sending attempts the SMTP server refused or that broke off (each is retried), by all workers.',
      '# TYPE ferry_mail_failed_total counter',
      `ferry_mail_failed_total ${await read('failed')}`,
    ];
  }
}

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/**
 * Prometheus metrics at `GET /metrics`, behind the admin token; with METRICS_PORT, also on a listen
 * address of their own without it (for a scraper on a private network).
 */
export default fp(
  async (app) => {
    const metrics = new Metrics(app);
    // A callback hook: no promise for every request.
    app.addHook('onResponse', (request, reply, done) => {
      metrics.countRequest(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
      done();
    });

    app.get('/metrics', {
      schema: {
        tags: ['ops'],
        summary: 'Prometheus metrics: requests, validation latency, queue depths, mail',
        security: [{ adminToken: [] }],
        response: {
          200: Type.String({ description: `the Prometheus text format (${METRICS_CONTENT_TYPE})` }),
          401: errorResponses({}, 401)[401],
        },
      },
      onRequest: app.requireAdmin,
    }, async (_request, reply) => reply.type(METRICS_CONTENT_TYPE).send(await metrics.render()));

    const { metricsPort, metricsHost } = app.config;
    if (metricsPort === null) return;
    const server: Server = createServer((request, response) => {
      if (request.method !== 'GET' || (request.url ?? '').split('?')[0] !== '/metrics') {
        response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('only GET /metrics here\n');
        return;
      }
      metrics.render().then(
        (text) => response.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE }).end(text),
        (err: Error) => {
          app.log.warn({ err: err.message }, 'metrics could not be rendered');
          response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('metrics unavailable\n');
        },
      );
    });
    app.addHook('onReady', async () => {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(metricsPort, metricsHost, () => resolve());
      });
      app.log.info(`metrics also at http://${metricsHost}:${metricsPort}/metrics (no token)`);
    });
    app.addHook('onClose', async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
  },
  { name: 'metrics', dependencies: ['config', 'redis', 'jobs', 'admin-auth', 'license-service'] },
);
