import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';

/**
 * How this process runs JavaScript, and what `-vv` says of it.
 *
 * V8 runs a function first in its interpreter, then as baseline machine code (Sparkplug), and
 * compiles the hottest ones again with its optimizing compiler (TurboFan) on background threads.
 * ferry's commands last seconds, and their heavy work is native (ssh2's OpenSSL ciphers, copies,
 * system calls): on a machine of two CPUs those background compiles took a third of all the CPU
 * time of a 2,000-file upload (86 functions, ~370 ms beside ~450 ms of ferry's main thread), and
 * competed with the transfer and with the SSH server when it runs on the same machine. So a
 * transfer's files move without them where there are fewer than OPTIMIZING_MIN_CPUS CPUs; with
 * more, the compiles have CPUs to themselves and ferry keeps them.
 *
 * The switch comes when the files start moving (runJobs), not at the start: a change of V8's flags
 * makes Node refuse the code cache of its own modules, and each one loaded afterwards is compiled
 * from source (10 ms more for every start when the switch came first).
 */
export const OPTIMIZING_MIN_CPUS = 4;

export type CompilerTiers = 'optimizing' | 'baseline';

let tiers: CompilerTiers = 'optimizing';

/** Turns V8's optimizing compiler off below OPTIMIZING_MIN_CPUS (for the rest of the process); leaves V8's flags alone otherwise. */
export function chooseCompilerTiers(cpus: number = availableParallelism()): CompilerTiers {
  tiers = cpus >= OPTIMIZING_MIN_CPUS ? 'optimizing' : 'baseline';
  if (tiers === 'baseline') setFlagsFromString('--no-turbofan');
  return tiers;
}

/** The `-vv` line of chooseCompilerTiers' choice. */
export function compilerTiersNote(): string {
  const cpus = availableParallelism();
  return tiers === 'baseline'
    ? `the files move as V8's baseline code, without its optimizing compiler (${cpus} CPU${cpus === 1 ? '' : 's'}: its background compiles would compete with the transfer)`
    : `the files move with V8's optimizing compiler (${cpus} CPUs)`;
}

/**
 * The `-vv` line of the single executable's code cache (server/releases/sea/main.cjs records
 * before the bundle runs whether V8 took it), or null outside the single executable.
 */
export function codeCacheNote(): string | null {
  const state: unknown = (globalThis as Record<symbol, unknown>)[Symbol.for('ferry.codeCache')];
  if (state === 'accepted') return 'compiled code from the executable\'s code cache';
  if (state === 'rejected') return 'the executable\'s code cache does not fit this Node\'s V8 flags (NODE_OPTIONS?): compiling as it runs';
  return null;
}
