import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, startChild, waitReady, type Child } from './children.js';
import { LogSummary } from './server-log.js';

/** The two servers the bench measures, each started as a child process on a free loopback port. */

export interface Started {
  child: Child;
  baseUrl: string;
}

const HOST = '127.0.0.1';

export async function startBareServer(root: string): Promise<Started> {
  const port = await freePort();
  // BENCH_BARE_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof-bare": the reference profiled too, to compare.
  const nodeArgs = (process.env.BENCH_BARE_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = startChild('bare-server', [...nodeArgs, join(root, 'dist/bench/bare-server.js')], {
    cwd: root,
    env: { ...process.env, PORT: String(port), HOST },
  });
  const baseUrl = `http://${HOST}:${port}`;
  await waitReady(child, `${baseUrl}/bare`, { method: 'POST', body: '{}', deadlineMs: 15_000 });
  return { child, baseUrl };
}

export interface FerryOptions {
  databaseUrl: string;
  redisUrl: string;
  dataDir: string;
}

/**
 * ferry-server as it runs in production, without its job processors, and with the per-IP limit on
 * trial and activation calls (and the pace of new trials and machines) raised out of the way: every
 * request comes from 127.0.0.1.
 */
export const RATE_LIMIT_PER_MINUTE = 1_000_000;

export async function startFerryServer(root: string, options: FerryOptions): Promise<Started & { adminToken: string; log: LogSummary }> {
  const main = join(root, 'dist/server/main.js');
  if (!existsSync(main)) {
    throw new Error(`${main} does not exist: server/main.ts is not written (or not built) yet`);
  }
  const port = await freePort();
  const adminToken = randomBytes(24).toString('base64url').slice(0, 32);
  const log = new LogSummary();
  // BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the server under load.
  const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = startChild('ferry-server', [...nodeArgs, main], {
    cwd: root,
    onStdoutLine: (line) => log.add(line),
    env: {
      ...process.env,
      DATABASE_URL: options.databaseUrl,
      REDIS_URL: options.redisUrl,
      FERRY_DATA_DIR: options.dataDir,
      PORT: String(port),
      HOST,
      LOG_LEVEL: 'warn',
      ADMIN_TOKEN: adminToken,
      RATE_LIMIT_PER_MINUTE: String(RATE_LIMIT_PER_MINUTE),
      // The same for the pace of new trials per address and new machines per license (velocity.ts).
      TRIALS_PER_ADDRESS_PER_DAY: String(RATE_LIMIT_PER_MINUTE),
      NEW_MACHINES_PER_LICENSE_PER_HOUR: String(RATE_LIMIT_PER_MINUTE),
      NEW_MACHINES_PER_LICENSE_PER_DAY: String(RATE_LIMIT_PER_MINUTE),
      FERRY_WORKERS: '0',
      // Its own Redis keys, so that its rate-limit counters never count against a developer's server.
      REDIS_PREFIX: `ferry-bench-${process.pid}`,
    },
  });
  const baseUrl = `http://${HOST}:${port}`;
  // The first start creates the schema and the signing key: allow it time.
  await waitReady(child, `${baseUrl}/readyz`, { deadlineMs: 60_000 });
  return { child, baseUrl, adminToken, log };
}

/** A gauge of ferry-server's /metrics, read with the admin token; null when it is not there. */
async function gauge(baseUrl: string, adminToken: string, name: string): Promise<number | null> {
  const res = await fetch(`${baseUrl}/metrics`, { headers: { authorization: `Bearer ${adminToken}` }, signal: AbortSignal.timeout(5_000) });
  const text = await res.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? null : Number(line.slice(name.length + 1));
}

/**
 * Waits until ferry-server holds what validations read (server/licenses/activation-state.ts): it
 * loads every activation at start, in the background, and reads MariaDB for them until then.
 */
export async function waitStateLoaded(server: Started & { adminToken: string }, activations: number, deadlineMs = 120_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (server.child.hasExited()) throw new Error('ferry-server exited while loading its activation state');
    const held = await gauge(server.baseUrl, server.adminToken, 'ferry_activation_state_activations').catch(() => null);
    const current = await gauge(server.baseUrl, server.adminToken, 'ferry_activation_state_current').catch(() => null);
    if (held !== null && held >= activations && current === 1) return Date.now() - started;
    if (Date.now() - started > deadlineMs) throw new Error(`ferry-server held ${held} of ${activations} activations after ${deadlineMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
