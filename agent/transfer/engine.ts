import { EventEmitter } from 'node:events';
import { AgentError } from '../errors.js';
import type { Throttle } from './bwlimit.js';
import { RETRY } from './constants.js';
import type { ConnectionPool } from './connect.js';
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
 * `fewer` ({parallel, reason}: the server refused opens, fewer files move at once from now on).
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
  on(event: 'fewer', listener: (info: { parallel: number; reason: string }) => void): this;
}

function retryable(err: unknown): boolean {
  return isConnectionLost(err) || (err instanceof AgentError && err.exit === 'CONNECTION');
}

/** A fatal error stops every worker: nothing else can succeed (the login or host key was refused). */
function fatal(err: unknown): boolean {
  return err instanceof AgentError && (err.exit === 'AUTH' || err.exit === 'HOST_KEY');
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

  /**
   * Files that may be moving at once: `parallel` until the server refuses an open while others
   * are in flight (a limit on open handles per session), then fewer for the rest of the run.
   */
  private allowed: number;
  private moving = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly pool: ConnectionPool, private readonly options: EngineOptions) {
    super();
    this.allowed = Math.max(1, options.parallel);
  }

  private async admit(): Promise<void> {
    while (this.moving >= this.allowed) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.moving++;
  }

  private leave(): void {
    this.moving--;
    this.waiting.shift()?.();
  }

  /**
   * A server that tells its limit on open handles (`limits@openssh.com`, read by ssh2 at the SFTP
   * start) gets no more files at once than that on each connection: each file holds one handle.
   */
  private withinHandleLimit(sftp: { maxOpenHandles?: unknown }): void {
    const max = sftp.maxOpenHandles;
    if (typeof max === 'number' && Number.isFinite(max) && max >= 1) this.allowed = Math.min(this.allowed, max * this.pool.size);
  }

  /**
   * After a refused open: whether to try the file again with fewer files in flight. Each refusal
   * with others in flight halves what is allowed (down to one); the run says so once.
   */
  private fewerAfter(err: OpenRefused): boolean {
    const others = this.moving - 1;
    if (others < 1) return false;
    const before = this.allowed;
    this.allowed = Math.max(1, Math.min(this.allowed, Math.ceil(others / 2)));
    if (before === Math.max(1, this.options.parallel)) this.emit('fewer', { parallel: this.allowed, reason: err.serverMessage });
    return true;
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
      await this.admit();
      try {
        const session = await this.pool.session(slot);
        this.withinHandleLimit(session.sftp as unknown as { maxOpenHandles?: unknown });
        const fs = new RemoteFs(session.sftp, session.posixRename);
        if (job.direction === 'upload') await uploadFile(fs, job, mode, this.options.preserve, progress, hooks);
        else await downloadFile(fs, job, mode, this.options.preserve, progress, hooks);
        return;
      } catch (err) {
        if (this.interrupted) throw interruptedError(job);
        if (err instanceof OpenRefused && this.fewerAfter(err)) {
          // Not a retry: the same attempt again once fewer files are open.
          attempt--;
          continue;
        }
        if (!retryable(err) || attempt >= this.options.retries) {
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
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        if (this.interrupted) throw interruptedError(job);
      } finally {
        this.leave();
      }
    }
  }
}
