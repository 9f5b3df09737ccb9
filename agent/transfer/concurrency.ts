import { PIPELINE } from './constants.js';
import { OpenRefused } from './errors.js';
import { ServerOverloaded } from './overload.js';

/**
 * How much the engine asks of the server at once: files in flight (`--parallel`) and requests in
 * flight per file (PIPELINE.requestsInFlight, or more for a server whose limits ask for small
 * requests). Both start where the user and the server's limits put them, and step down for the
 * rest of the run when the server fails under load: an open refused while other files are open,
 * a read or write failing the way an overloaded server fails (overload.ts), a connection lost
 * again and again while many requests were in flight. A file that failed so goes again at the
 * lower level; where it fails at the least concurrency too, the failure was its own: it fails,
 * and the steps it caused are taken back.
 */

/** A file's place among those in flight: on which connection, and at which level it started. */
export interface Ticket {
  connection: number;
  generation: number;
}

/** What the engine does with a failed attempt. */
export type AfterFailure =
  /** Try again at once, not counted as a retry (a lower level has been set, or was since it started). */
  | 'again'
  /** A lost connection: wait and try again as a retry that is not counted (the level was lowered). */
  | 'retry-free'
  /** As without any of this: retried if retryable, else failed. */
  | 'as-is';

export interface Lowered {
  /** Files in flight from now on, or null when only the requests per file were lowered. */
  files: number | null;
  /** Requests in flight per file from now on, or null when only the files were lowered. */
  requests: number | null;
  /** `open`: opens were refused; `load`: reads, writes or connections failed under load. */
  kind: 'open' | 'load';
  reason: string;
}

/** A lost connection (ConnectionLost and the raw forms of it), told apart by the engine. */
type LossTest = (err: unknown) => boolean;

export class Concurrency {
  files: number;
  requests: number;
  /** Raised at every step down: a failure of a file that started before it is no new evidence. */
  private generation = 0;
  private moving = 0;
  private readonly movingOn = new Map<number, number>();
  private readonly waiting = new Set<() => void>();
  private told = false;
  /** Lost connections under load, by session: the first one of a run may be the network's. */
  private readonly losses = new WeakMap<object, 'first' | 'step'>();
  private lossSeen = false;
  /** For each file whose failures lowered the level: the level before, and the generation after. */
  private readonly lowerings = new WeakMap<object, { files: number; requests: number; generation: number }>();

  private readonly initialFiles: number;
  private readonly initialRequests: number;

  /** `requests`: the most any file may have in flight (RemoteFs.requestsInFlight sizes each file's). */
  constructor(files: number, requests: number, private readonly onLowered: (lowered: Lowered) => void, private readonly lost: LossTest) {
    this.files = Math.max(1, files);
    this.requests = Math.max(1, requests);
    this.initialFiles = this.files;
    this.initialRequests = this.requests;
  }

  /**
   * Waits for a place: fewer than `files` moving, and fewer than `handleLimit` on the file's
   * connection (a server's `limits@openssh.com` max-open-handles: each file holds one handle).
   */
  async admit(connection: number, handleLimit: number): Promise<Ticket> {
    while (this.moving >= this.files || (this.movingOn.get(connection) ?? 0) >= handleLimit) {
      await new Promise<void>((resolve) => this.waiting.add(resolve));
    }
    this.moving++;
    this.movingOn.set(connection, (this.movingOn.get(connection) ?? 0) + 1);
    return { connection, generation: this.generation };
  }

  leave(ticket: Ticket): void {
    this.moving--;
    this.movingOn.set(ticket.connection, (this.movingOn.get(ticket.connection) ?? 1) - 1);
    // Every waiter looks again: the one whose connection has room goes.
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const wake of waiting) wake();
  }

  /**
   * What to do after `job`'s attempt failed with `err` while it held `ticket` (the attempt had a
   * connection: `session`). `manyRequests`: whether the file would have had more than one request
   * in flight.
   */
  afterFailure(job: object, err: unknown, ticket: Ticket, session: object, manyRequests: boolean): AfterFailure {
    const others = this.moving - 1;
    if (err instanceof OpenRefused || err instanceof ServerOverloaded) {
      if (others < 1 && !(err instanceof ServerOverloaded && err.requestsInFlight > 1)) return 'as-is';
      if (ticket.generation !== this.generation) return 'again';
      // Files that started before a step down are still moving: the next attempt waits for room
      // at the level already set, beside fewer of them.
      if (this.files < this.moving) return 'again';
      // Fewer files first while others are in flight; then fewer requests for the one file left.
      const files = others >= 1 ? Math.max(1, Math.ceil(others / 2)) : this.files;
      const requests = others < 1 && err instanceof ServerOverloaded ? Math.max(1, Math.ceil(Math.min(err.requestsInFlight, this.requests) / 2)) : this.requests;
      return this.lower(job, files, requests, err instanceof OpenRefused ? 'open' : 'load', err.serverMessage) ? 'again' : 'as-is';
    }
    if (!this.lost(err) || (others < 1 && !manyRequests)) return 'as-is';
    if (ticket.generation !== this.generation || this.files < this.moving) return 'retry-free';
    let decision = this.losses.get(session);
    if (decision === undefined) {
      decision = this.lossSeen ? 'step' : 'first';
      this.lossSeen = true;
      this.losses.set(session, decision);
    }
    if (decision === 'first') return 'as-is';
    const files = others >= 1 ? Math.max(1, Math.ceil(others / 2)) : this.files;
    // How many requests the file had in flight is not known here: at most the usual number.
    const requests = others < 1 ? Math.max(1, Math.ceil(Math.min(this.requests, PIPELINE.requestsInFlight) / 2)) : this.requests;
    return this.lower(job, files, requests, 'load', (err as Error).message) ? 'retry-free' : 'as-is';
  }

  /**
   * `job` failed for good: where its own failures lowered the level and nothing lowered it since,
   * the level goes back to what it was (the failure was the file's, not the server's load).
   */
  failedForGood(job: object): void {
    const before = this.lowerings.get(job);
    if (!before || before.generation !== this.generation) return;
    this.files = before.files;
    this.requests = before.requests;
    this.generation++;
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const wake of waiting) wake();
  }

  private lower(job: object, files: number, requests: number, kind: Lowered['kind'], reason: string): boolean {
    files = Math.min(files, this.files);
    requests = Math.min(requests, this.requests);
    if (files === this.files && requests === this.requests) return false;
    const earlier = this.lowerings.get(job);
    const before = earlier && earlier.generation === this.generation ? earlier : { files: this.files, requests: this.requests };
    this.files = files;
    this.requests = requests;
    this.generation++;
    this.lowerings.set(job, { files: before.files, requests: before.requests, generation: this.generation });
    if (!this.told) {
      this.told = true;
      this.onLowered({ files: files < this.initialFiles ? files : null, requests: requests < this.initialRequests ? requests : null, kind, reason });
    }
    return true;
  }
}
