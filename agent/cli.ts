#!/usr/bin/env node
// First: ssh2 takes randomFillSync from node:crypto when it is loaded (pooled-random.ts says why).
import './transfer/pooled-random.js';
import { runCli } from './program.js';

/**
 * The `ferry` executable. No top-level await: `npm run package` bundles this file to CommonJS for
 * the single executable, and CommonJS has none.
 */
async function main(): Promise<void> {
  // A reader that stops early (`ferry status | head -1`) closes the pipe: not ferry's failure.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });

  process.exitCode = await runCli(process.argv, {
    env: process.env,
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    terminal: { input: process.stdin, output: process.stderr },
    data: { input: process.stdin, output: process.stdout },
  });
}

void main();
