import type { AgentError } from '../errors.js';
import { jsonLine } from '../terminal-text.js';
import type { EngineSummary } from './engine.js';

/**
 * The end of a put, get or sync with `--json`: whatever went wrong, a program reading stdout gets
 * a `failed` event for each file or source that did not go, and one `summary` event last, and
 * nothing else. The engine's own file events come from progress.ts; what fails outside the engine
 * (a source missing, the connection or login refused, a sync's deletes) comes here.
 */
export class RunReport {
  private readonly started = Date.now();
  private files = 0;
  private failedCount = 0;
  private bytes = 0;
  private engineMs: number | null = null;
  private done = false;
  /** The failures outside the engine, in the order they happened. */
  readonly errors: AgentError[] = [];
  /** Names that have had a failed event already. */
  private readonly failedNames = new Set<string>();
  /**
   * Set when every failure has had its event and the error now thrown only sums them up: the
   * command's outcome needs no event of its own then.
   */
  accounted = false;

  constructor(private readonly out: (line: string) => void, readonly json: boolean) {}

  /** A file or source that failed outside the engine. */
  failed(file: string, error: AgentError): void {
    this.failedCount++;
    this.errors.push(error);
    this.failedNames.add(file);
    if (this.json) this.out(jsonLine({ event: 'failed', file, code: error.exitCode, exit: error.exit, message: error.message }));
  }

  /** What the engine did (its failed events are out already). */
  engine(summary: EngineSummary): void {
    this.files += summary.files;
    this.failedCount += summary.failed;
    this.bytes += summary.bytes;
    this.engineMs = (this.engineMs ?? 0) + summary.ms;
  }

  /** A file moved outside the engine (`-`, stdin or stdout). */
  moved(bytes: number): void {
    this.files++;
    this.bytes += bytes;
  }

  /**
   * The run failed as a whole with `error` (nothing connected, the license refused…): each source
   * named that has had no event yet gets one.
   */
  failedWhole(names: string[], error: AgentError): void {
    if (this.accounted) return;
    for (const name of names) if (!this.failedNames.has(name)) this.failed(name, error);
  }

  /** The summary event (once). `--dry-run` skips it: its plan-summary ends the output instead. */
  finish(options: { skip?: boolean } = {}): void {
    if (this.done) return;
    this.done = true;
    if (!this.json || options.skip) return;
    const seconds = (this.engineMs ?? Date.now() - this.started) / 1000;
    this.out(jsonLine({ event: 'summary', files: this.files, failed: this.failedCount, bytes: this.bytes, seconds, rate: Math.round(this.bytes / Math.max(seconds, 0.001)) }));
  }
}
