import assert from 'node:assert/strict';
import { request } from './support/http.js';
import { startTrial } from './support/portal.js';
import { freePort, until } from './support/processes.js';
import { startServer, type TestServer } from './support/server.js';

/**
 * GET /metrics in the Prometheus text format, as a scraper reads it: behind the admin token on the
 * API's address, and without it on METRICS_PORT.
 */

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the text exposition format strictly: every line is a HELP, a TYPE, or a sample of a declared metric. */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.slice(0, -1).split('\n')) {
    const comment = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (comment) {
      if (comment[1] === 'TYPE') {
        assert.match(comment[3]!, /^(counter|gauge|histogram|summary|untyped)$/, line);
        types.set(comment[2]!, comment[3]!);
      }
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(sample, `not a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const pair of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/g)) labels[pair[1]!] = pair[2]!;
    const value = sample[3] === '+Inf' ? Infinity : Number(sample[3]);
    assert.ok(!Number.isNaN(value), line);
    const family = sample[1]!.replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(sample[1]!) || types.get(family) === 'histogram', `${sample[1]} has no TYPE line`);
    samples.push({ name: sample[1]!, labels, value });
  }
  return { samples, types };
}

function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

async function scrape(server: TestServer): Promise<Sample[]> {
  const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.adminToken}` } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const { samples, types } = parseExposition(await res.text());
  assert.equal(types.get('ferry_http_requests_total'), 'counter');
  assert.equal(types.get('ferry_validate_duration_seconds'), 'histogram');
  assert.equal(types.get('ferry_queue_jobs'), 'gauge');
  return samples;
}

describe('Metrics (/metrics)', function () {
  this.timeout(90_000);
  let server: TestServer;
  let metricsPort: number;

  before(async () => {
    metricsPort = await freePort();
    server = await startServer({ metricsPort, metricsHost: '127.0.0.1' });
  });
  after(async () => server?.close());

  it('refuses a scrape without the admin token', async () => {
    for (const token of [undefined, 'not-the-admin-token']) {
      const res = await request(`${server.url}/metrics`, { token });
      assert.equal(res.status, 401);
      assert.equal(res.body.error.code, 'ADMIN_AUTH_REQUIRED');
    }
  });

  it('counts requests by route pattern and status, and times validations in a histogram', async () => {
    const trial = await startTrial(server, { email: `metrics-${Date.now()}@example.org` });
    const { token } = trial;
    for (let i = 0; i < 3; i++) assert.equal((await request(`${server.url}/v1/validate`, { body: {}, token })).status, 200);
    assert.equal((await request(`${server.url}/v1/validate`, { body: {}, token: 'not-a-token' })).status, 401);
    assert.equal((await request(`${server.url}/v1/activations/999999`, { method: 'DELETE', token })).status, 403); // not this token's activation
    assert.equal((await request(`${server.url}/no/such/page`)).status, 404);

    const samples = await scrape(server);
    assert.equal(valueOf(samples, 'ferry_http_requests_total', { method: 'POST', route: '/v1/validate', status: '200' }), 3);
    assert.equal(valueOf(samples, 'ferry_http_requests_total', { method: 'POST', route: '/v1/validate', status: '401' }), 1);
    assert.equal(valueOf(samples, 'ferry_http_requests_total', { method: 'DELETE', route: '/v1/activations/:id', status: '403' }), 1, 'the pattern, not the id');
    assert.equal(valueOf(samples, 'ferry_http_requests_total', { method: 'GET', route: 'unmatched', status: '404' }), 1);
    assert.equal(valueOf(samples, 'ferry_http_requests_total', { method: 'POST', route: '/v1/trials', status: '201' }), 1);

    const buckets = samples.filter((s) => s.name === 'ferry_validate_duration_seconds_bucket');
    assert.ok(buckets.length >= 5);
    assert.equal(buckets.at(-1)!.labels.le, '+Inf');
    for (let i = 1; i < buckets.length; i++) {
      assert.ok(Number(buckets[i]!.labels.le) > Number(buckets[i - 1]!.labels.le) || buckets[i]!.labels.le === '+Inf', 'bounds rise');
      assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, 'buckets are cumulative');
    }
    assert.equal(valueOf(samples, 'ferry_validate_duration_seconds_count'), 4);
    assert.equal(buckets.at(-1)!.value, 4);
    assert.ok(valueOf(samples, 'ferry_validate_duration_seconds_sum')! > 0);

    // The trial with an email planned its registration reminders: delayed jobs on their queue.
    for (const queue of ['mail', 'reminders', 'export-report', 'usage-rollup', 'retention']) {
      for (const state of ['waiting', 'active', 'delayed', 'failed', 'paused']) {
        assert.notEqual(valueOf(samples, 'ferry_queue_jobs', { queue, state }), undefined, `${queue} ${state}`);
      }
    }
    await until('the reminders to be planned', async () =>
      valueOf(await scrape(server), 'ferry_queue_jobs', { queue: 'reminders', state: 'delayed' })! >= 1);
  });

  it('counts mail sent and mail that failed, across processes (in Redis)', async () => {
    const before = await scrape(server);
    const sentBefore = valueOf(before, 'ferry_mail_sent_total')!;
    assert.equal(sentBefore, 0, 'this deployment has sent nothing yet');
    assert.equal(valueOf(before, 'ferry_mail_failed_total'), 0);
    const message = (n: number) => ({ key: `metrics-test:${n}:${Date.now()}`, template: 'password-changed', to: 'ada@example.org', data: { changedAt: 'now', resetUrl: 'http://x/' } });
    assert.equal(await server.app.mail.deliver(message(1)), 'sent');
    assert.equal(await server.app.mail.deliver(message(2)), 'sent');

    // A second server of the same deployment whose SMTP server is not there: its attempt fails.
    const closedPort = await freePort();
    const other = await startServer({ redisPrefix: server.config.redisPrefix, databaseUrl: server.config.databaseUrl, smtpUrl: `smtp://127.0.0.1:${closedPort}`, runWorkers: false });
    try {
      await assert.rejects(other.app.mail.deliver(message(3)));
    } finally {
      await other.close();
    }
    const after = await scrape(server);
    assert.equal(valueOf(after, 'ferry_mail_sent_total'), 2);
    assert.equal(valueOf(after, 'ferry_mail_failed_total'), 1);
  });

  it('serves the same metrics without a token on METRICS_PORT, and nothing else there', async () => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(res.status, 200);
    const { samples } = parseExposition(await res.text());
    assert.ok(valueOf(samples, 'ferry_http_requests_total', { method: 'POST', route: '/v1/validate', status: '200' })! >= 3);
    assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/v1/validate`)).status, 404);
    assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/docs`)).status, 404);
  });
});
