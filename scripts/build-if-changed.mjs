#!/usr/bin/env node
// Compiles with tsc only when a source is newer than the last build: `npm start` then takes about
// a second instead of a full type-check. The stamp's time is when that build began, so a file
// saved while tsc ran is compiled next time. A removed file changes its folder's time, so folders
// count too.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const SOURCES = ['agent', 'server', 'licensing', 'reports', 'test', 'bench'];
const CONFIG_FILES = ['tsconfig.json', 'package.json', 'package-lock.json'];
const STAMP = join('dist', '.build-stamp');

function newest(path) {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    return 0;
  }
  if (!stat.isDirectory()) return path.endsWith('.ts') || CONFIG_FILES.includes(path) ? stat.mtimeMs : 0;
  let latest = stat.mtimeMs;
  for (const entry of readdirSync(path)) latest = Math.max(latest, newest(join(path, entry)));
  return latest;
}

const sourcesChanged = Math.max(...SOURCES.map(newest), ...CONFIG_FILES.map(newest));
let built = 0;
try {
  built = statSync(STAMP).mtimeMs;
} catch {
  // never built here
}

if (sourcesChanged >= built) {
  const began = new Date();
  process.stderr.write('sources changed since the last build: compiling with tsc\n');
  try {
    execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', '.'], { stdio: 'inherit' });
  } catch {
    process.exit(1);
  }
  writeFileSync(STAMP, `built ${began.toISOString()}\n`);
  utimesSync(STAMP, began, began);
}
