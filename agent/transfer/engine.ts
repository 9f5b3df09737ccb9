import { EventEmitter } from 'node:events';
import { AgentError } from '../errors.js';
import type { Throttle } from './bwlimit.js';
import { Concurrency, type Ticket } from './concurrency.js';
import { PIPELINE, RETRY } from './constants.js';
import type { ConnectionPool, SshSession } from './connect.js';
import { exitOf, isConnectionLost, OpenRefused, ServerStalled } from './errors.js';
import { RemoteFs } from './file-sides.js';
import { downloadFile, uploadFile, type FileTransfer, type ResumeMode, type ResumeStart, type TransferProgress } from './sftp-ops.js';

/**
 * The transfer engine: a queue of file jobs that N workers take from, each over one of the pool's
 * connections. A lost connection is retried with exponential backoff and the file resumes from
 * what the server (or the local disk) already has. Commands drive it and listen to its events;
 * it prints nothing.
 *
 * Events: `start` (job), `bytes` (job, delta), `retry` (job, {attempt, delayMs, resumeFrom, reason}),
 * `resumed` (job, ResumeStart: an attempt looked at a part file, or continues one), `leftover` (job,
 * bytes: a fresh transfer replaces a part file from an earlier run), `done` (job), `failed` (job,
 * AgentError). After `interrupt()` (Ctrl-C) no job starts and those under way end as `failed`
 * with INTERRUPTED, their part files left for `--resume`.
 * `fewer` ({parallel, requests, kind, reason}, once: the server refused opens (`open`) or failed
 * under load (`load`): fewer files, and fewer requests per file, move at once from now on).
 */

export interface Job extends FileTransfer {
  /** How progress output names the file (relative to what the user named). */
  display: string;
  /**
   * Set when the plan refused the file (a crafted name from the server, a link in the
   * destination): it fails with this error and nothing is transferred.
   */
  refused?: AgentError;
}

export interface EngineOptions {
  parallel: number;
  retries: number;
  /**
   * `--resume`: continue part files left by an earlier run, once verified whole (`verify`) or
   * trusted by their size (`size`, `--resume=size`); null: start every file over.
   */
  resume: 'verify' | 'size' | null;
  preserve: boolean;
  /** `--bwlimit`: one bucket for every file of the run. */
  throttle?: Throttle | undefined;
  /** Backoff, replaceable in tests. */
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export interface EngineSummary {
  files: number;
  failed: number;
  bytes: number;
  ms: number;
  /** The failures, in the order they happened. */
  failures: { job: Job; error: AgentError }[];
}

export declare interface TransferEngine {
  on(event: 'start' | 'done', listener: (job: Job) => void): this;
  on(event: 'bytes', listener: (job: Job, delta: number) => void): this;
  on(event: 'retry', listener: (job: Job, info: { attempt: number; delayMs: number; resumeFrom: number; reason: string }) => void): this;
  on(event: 'failed', listener: (job: Job, error: AgentError) => void): this;
  on(event: 'resumed', listener: (job: Job, resume: ResumeStart) => void): this;
  on(event: 'leftover', listener: (job: Job, bytes: number) => void): this;
  on(event: 'fewer', listener: (info: { parallel: number | null; requests: number | null; kind: 'open' | 'load'; reason: string }) => void): this;
}

function retryable(err: unknown): boolean {
  return isConnectionLost(err) || (err instanceof AgentError && err.exit === 'CONNECTION');
}

/**
 * A connection lost during a transfer, which may be the server shedding load: not one that could
 * not be made again (that is an AgentError), nor a server that stopped answering (ServerStalled:
 * no load is shed by keeping the connection and answering nothing).
 */
function lostUnderLoad(err: unknown): boolean {
  return isConnectionLost(err) && !(err instanceof AgentError) && !(err instanceof ServerStalled);
}

/** A fatal error stops every worker: nothing else can succeed (the login or host key was refused). */
function fatal(err: unknown): boolean {
  return err instanceof AgentError && (err.exit === 'AUTH' || err.exit === 'HOST_KEY');
}

/**
 * A server that tells its limit on open handles (`limits@openssh.com`, read by ssh2 at the SFTP
 * start) gets no more files at once than that on each connection: each file holds one handle.
 */
function handleLimitOf(sftp: unknown): number {
  const max = (sftp as { maxOpenHandles?: unknown }).maxOpenHandles;
  return typeof max === 'number' && max >= 1 ? max : Infinity;
}

export function backoffDelay(attempt: number, base: number = RETRY.baseDelayMs, max: number = RETRY.maxDelayMs): number {
  return Math.min(max, base * 2 ** (attempt - 1));
}

/** How a transfer cut short by Ctrl-C ends (the command counts these and says how to resume). */
export function interruptedError(job: Job): AgentError {
  return new AgentError('INTERRUPTED', `${job.display}: interrupted; its part file is left for --resume`);
}

export class TransferEngine extends EventEmitter {
  private fatalError: AgentError | null = null;
  private interrupted = false;

  /**
   * Stops the run (Ctrl-C): no further job starts, and a lost connection is no longer retried.
   * The caller closes the connections, which ends the transfers under way.
   */
  interrupt(): void {
    this.interrupted = true;
  }

  /** Files and requests in flight, lowered when the server fails under load (concurrency.ts). */
  private readonly concurrency: Concurrency;

  constructor(private readonly pool: ConnectionPool, private readonly options: EngineOptions) {
    super();
    this.concurrency = new Concurrency(options.parallel, PIPELINE.maxRequestsInFlight, (lowered) => this.emit('fewer', {
      parallel: lowered.files, requests: lowered.requests, kind: lowered.kind, reason: lowered.reason,
    }), lostUnderLoad);
  }

  async run(jobs: Iterable<Job>): Promise<EngineSummary> {
    const started = Date.now();
    const iterator = jobs[Symbol.iterator]();
    const summary: EngineSummary = { files: 0, failed: 0, bytes: 0, ms: 0, failures: [] };
    const workers = Array.from({ length: Math.max(1, this.options.parallel) }, (_, slot) => this.worker(slot, iterator, summary));
    await Promise.all(workers);
    summary.ms = Date.now() - started;
    return summary;
  }

  private async worker(slot: number, jobs: Iterator<Job>, summary: EngineSummary): Promise<void> {
    for (let next = jobs.next(); !next.done; next = jobs.next()) {
      const job = next.value;
      if (job.refused) {
        this.fail(summary, job, job.refused);
        continue;
      }
      if (this.interrupted) return;
      if (this.fatalError) {
        this.fail(summary, job, this.fatalError);
        continue;
      }
      this.emit('start', job);
      try {
        await this.transfer(slot, job);
        summary.files++;
        summary.bytes += job.size;
        this.emit('done', job);
      } catch (err) {
        const error = this.interrupted ? interruptedError(job) : err instanceof AgentError ? err : new AgentError(exitOf(err) === 'CONNECTION' ? 'CONNECTION' : 'INTERNAL', `${job.display}: ${(err as Error).message}`);
        if (fatal(error)) this.fatalError ??= error;
        this.fail(summary, job, error);
      }
    }
  }

  private fail(summary: EngineSummary, job: Job, error: AgentError): void {
    summary.failed++;
    summary.failures.push({ job, error });
    this.emit('failed', job, error);
  }

  private async transfer(slot: number, job: Job): Promise<void> {
    const progress: TransferProgress = { confirmed: 0, startedAt: 0 };
    const hooks = {
      onBytes: (delta: number) => delta !== 0 && this.emit('bytes', job, delta),
      // Every look at an earlier run's part file is told (kept or not); a retry only when it continues.
      onStart: (offset: number, resume?: ResumeStart) => resume && (offset > 0 || (resume.verified !== 'this-run' && resume.partBytes > 0)) && this.emit('resumed', job, resume),
      onLeftover: (bytes: number) => this.emit('leftover', job, bytes),
      throttle: this.options.throttle,
    };
    let mode: ResumeMode = this.options.resume ?? 'fresh';
    for (let attempt = 0; ; attempt++) {
      let ticket: Ticket | null = null;
      let session: SshSession | null = null;
      let free = false;
      try {
        // The connection first: its limit on open handles decides whether there is room on it.
        session = await this.pool.session(slot);
        ticket = await this.concurrency.admit(slot % this.pool.size, handleLimitOf(session.sftp));
        // It may have been lost while this file waited for its turn.
        session = await this.pool.session(slot);
        const fs = new RemoteFs(session.sftp, session.posixRename, this.concurrency);
        if (job.direction === 'upload') await uploadFile(fs, job, mode, this.options.preserve, progress, hooks);
        else await downloadFile(fs, job, mode, this.options.preserve, progress, hooks);
        return;
      } catch (err) {
        if (this.interrupted) throw interruptedError(job);
        const next = ticket && session ? this.concurrency.afterFailure(job, err, ticket, session, job.size - progress.confirmed > PIPELINE.chunkBytes) : 'as-is';
        if (next === 'again') {
          // Not a retry: the same attempt again, at the lower level, from what was delivered (a
          // refused open wrote nothing: the attempt is the same as before).
          if (!(err instanceof OpenRefused)) mode = mode !== 'fresh' && progress.confirmed === 0 ? mode : 'continue';
          attempt--;
          continue;
        }
        free = next === 'retry-free';
        if (!retryable(err) || (attempt >= this.options.retries && !free)) {
          this.concurrency.failedForGood(job);
          if (err instanceof ServerStalled) {
            const retries = this.options.retries;
            throw new AgentError('CONNECTION', `${job.display}: ${err.message}${retries > 0 ? `, also after ${retries} ${retries === 1 ? 'retry' : 'retries'}` : ''}`);
          }
          if (retryable(err) && !(err instanceof AgentError)) {
            throw new AgentError('CONNECTION', `${job.display}: the connection was lost and ${this.options.retries} retries did not bring it back (${(err as Error).message})`);
          }
          throw err;
        }
        const delayMs = backoffDelay(attempt + 1, this.options.baseDelayMs, this.options.maxDelayMs);
        // Whatever was delivered stays: the next attempt continues from it, trusting what this
        // run wrote and saw confirmed (a part file of an earlier run was verified before, or is
        // verified on the next attempt when nothing was confirmed yet).
        mode = mode !== 'fresh' && progress.confirmed === 0 ? mode : 'continue';
        this.emit('retry', job, { attempt: attempt + 1, delayMs, resumeFrom: progress.confirmed, reason: (err as Error).message });
        // A lost connection that lowered the level is not counted against --retries: the lower
        // level is what is being tried.
        if (free) attempt--;
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        if (this.interrupted) throw interruptedError(job);
      } finally {
        if (ticket) this.concurrency.leave(ticket);
      }
    }
  }
}
