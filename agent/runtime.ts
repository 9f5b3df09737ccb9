import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';

/**
 * How this process runs JavaScript, chosen before any of ferry's code gets hot (agent/cli.ts
 * imports this first), and what `-vv` says of it.
 *
 * V8 runs a function first in its interpreter, then as baseline machine code (Sparkplug), and
 * compiles the hottest ones again with its optimizing compiler (TurboFan) on background threads.
 * ferry's commands last seconds, and their heavy work is native (ssh2's OpenSSL ciphers, copies,
 * system calls): on a machine of two CPUs those background compiles took a third of all the CPU
 * time of a 2,000-file upload (86 functions, ~370 ms beside ~450 ms of ferry's main thread), and
 * competed with the transfer and with the SSH server when it runs on the same machine. Without
 * them, measured on 2 CPUs against a loopback OpenSSH (paired whole-process runs): 2,000 × 16 KiB
 * up 0.91× wall and 0.80× CPU, down 0.95× and 0.79×; 128 MiB up 0.84×, down 0.92×. With four CPUs
 * or more the compiles have CPUs to themselves and ferry keeps them.
 */
export const OPTIMIZING_MIN_CPUS = 4;

export type CompilerTiers = 'optimizing' | 'baseline';

/** Turns V8's optimizing compiler off below OPTIMIZING_MIN_CPUS; nothing is optimized yet when this runs. */
export function chooseCompilerTiers(cpus: number = availableParallelism()): CompilerTiers {
  if (cpus >= OPTIMIZING_MIN_CPUS) return 'optimizing';
  setFlagsFromString('--no-turbofan');
  return 'baseline';
}

const tiers = chooseCompilerTiers();
const cpus = availableParallelism();

/**
 * Whether the single executable's code cache was taken (server/releases/sea/main.cjs records it
 * before the bundle runs): `accepted`, `rejected` (V8 compiled as it went: slower starts), or null
 * outside the single executable.
 */
export function codeCacheState(): 'accepted' | 'rejected' | null {
  const state: unknown = (globalThis as Record<symbol, unknown>)[Symbol.for('ferry.codeCache')];
  return state === 'accepted' || state === 'rejected' ? state : null;
}

/** The `-vv` lines for the above. */
export function runtimeNotes(): string[] {
  const notes = [
    tiers === 'baseline'
      ? `JavaScript as V8's baseline code, without its optimizing compiler (${cpus} CPU${cpus === 1 ? '' : 's'}: its background compiles would compete with the transfer)`
      : `JavaScript with V8's optimizing compiler (${cpus} CPUs)`,
  ];
  const cache = codeCacheState();
  if (cache === 'accepted') notes.push('compiled code from the executable\'s code cache');
  if (cache === 'rejected') notes.push('the executable\'s code cache does not fit this Node\'s V8 flags (NODE_OPTIONS?): compiling as it runs');
  return notes;
}
