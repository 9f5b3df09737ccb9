import { AgentError } from '../errors.js';
import { OpenRefused, SFTP_STATUS } from './errors.js';

/**
 * Failures that look like a server giving way under many requests rather than like something
 * wrong with the file. Servers say it loosely: a plain SSH_FX_FAILURE on a read or write while
 * others are in flight (a worker pool or request queue that is full), "Invalid handle" (a handle
 * dropped under pressure), "too many open files" (a descriptor limit). The engine (concurrency.ts)
 * then moves fewer files and fewer requests at once and tries the file again; where the failure
 * stays at the least concurrency, it was the file's own, and it fails as it is.
 */

/** Server messages that mean a resource ran out, whatever the status code. */
const OVERLOAD_WORDS = /invalid handle|too many open files|EMFILE|ENFILE|resource temporarily unavailable|out of memory|try again/i;

export class ServerOverloaded extends AgentError {
  /**
   * `requestsInFlight`: how many requests of this file were in flight when the failure came
   * (the request that failed included): 1 for a request that was alone.
   */
  constructor(message: string, readonly serverMessage: string, readonly requestsInFlight: number) {
    super('PARTIAL', message);
  }
}

/**
 * `mapped` (what the failure means for the path, errors.ts) as a ServerOverloaded when the raw
 * SFTP failure may be overload: a plain failure of a read or write (`data`: whether other files'
 * requests were in flight too is the engine's to know), or, for any request, words that say a
 * resource ran out. Anything else (no such file, permission, disk full, a lost connection) is
 * left as it is.
 */
export function asOverload(raw: unknown, mapped: Error, requestsInFlight: number, data: boolean): Error {
  if (!(mapped instanceof AgentError) || mapped.exit !== 'PARTIAL' || mapped instanceof ServerOverloaded || mapped instanceof OpenRefused) return mapped;
  const code = (raw as { code?: unknown } | null)?.code;
  const message = raw instanceof Error ? raw.message : String(raw);
  const plainFailure = data && code === SFTP_STATUS.FAILURE;
  if (!plainFailure && !OVERLOAD_WORDS.test(message)) return mapped;
  return new ServerOverloaded(mapped.message, message, requestsInFlight);
}
