import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * `npm run bench`: the licensing, transfer, jobs and install benchmarks, each in its own process
 * (so one's children and memory never touch the other's figures). Exits with the first failure.
 */
const benches = ['./run.js', './transfer/run.js', './jobs/run.js', './install/run.js'].map((p) => fileURLToPath(new URL(p, import.meta.url)));
let exitCode = 0;
for (const bench of benches) {
  const { status } = spawnSync(process.execPath, [bench], { stdio: 'inherit' });
  if (exitCode === 0 && status !== 0) exitCode = status ?? 2;
}
process.exit(exitCode);
