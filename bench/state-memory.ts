import { createPool } from '../server/db/pool.js';
import { createActivationState } from '../server/licenses/activation-state.js';

/**
 * What ferry-server's in-memory activation state (server/licenses/activation-state.ts) costs, on
 * the database `npm run bench` leaves behind (100,000 licenses, 300,000 activations):
 *
 *     node --expose-gc dist/bench/state-memory.js [DATABASE_URL]
 *
 * Loads it as the server does at start and prints the time and the memory it holds (heap and
 * typed arrays, measured after a full collection before and after).
 */
const databaseUrl = process.argv[2] ?? 'mysql://root@127.0.0.1:3306/ferry_bench';
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

const used = () => {
  gc();
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, arrays: m.arrayBuffers, rss: m.rss };
};
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

const db = createPool(databaseUrl, 2);
await db.query('SELECT 1');
const before = used();
const state = createActivationState(db, {
  catchUpEveryMs: 3_600_000,
  overlapMs: 10_000,
  maxStaleMs: 3_600_000,
  onError: (err, what) => {
    throw new Error(`${what}: ${err.message}`);
  },
});
const started = Date.now();
await state.start();
const loadMs = Date.now() - started;
const after = used();
const stats = state.stats();
state.close();
await db.end();

const heap = after.heap - before.heap;
const arrays = after.arrays - before.arrays;
process.stdout.write(
  `${stats.activations.toLocaleString('en')} activations and ${stats.licenses.toLocaleString('en')} licenses loaded in ${(loadMs / 1000).toFixed(1)} s\n` +
  `held: ${mib(heap + arrays)} (heap ${mib(heap)}, typed arrays ${mib(arrays)}; arrays' capacity ${mib(stats.arrayBytes)}), ` +
  `${Math.round((heap + arrays) / Math.max(1, stats.activations))} bytes per activation all told\n`,
);
