import cliProgress from 'cli-progress';
import { jsonLine, printable } from '../terminal-text.js';
import { PROGRESS } from './constants.js';
import type { EngineSummary, Job, TransferEngine } from './engine.js';
import { barLine } from './progress-bar.js';
import type { ResumeStart } from './sftp-ops.js';

/**
 * How a transfer shows itself. `bars`: a progress bar with rate and time left, on a terminal.
 * `json`: one JSON object per line on stdout, for programs. `lines`: one line per file (asked for
 * with --progress when not on a terminal). `quiet`: nothing but failures.
 */
export type ProgressMode = 'bars' | 'json' | 'lines' | 'quiet';

export interface ProgressOutput {
  mode: ProgressMode;
  /** A line on stdout. */
  out(line: string): void;
  /** A `ferry: …` line on stderr (it makes names printable itself). */
  notice(message: string): void;
  /** The terminal's stream, for bars. */
  terminal?: NodeJS.WriteStream;
  /**
   * Say what was found in part files (not matching, replaced), also when no progress is shown;
   * off with --quiet, and with --json, whose events say it.
   */
  notices?: boolean;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  // Rates are fractions too: whole bytes below a KiB (`266 B/s`, not `266.6666666666667 B/s`).
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${rest}` : `${m}:${rest}`;
}

/**
 * Rate over the last few seconds, so the bar's time left follows the current speed; the average
 * since the start while that window is still too short to say (a transfer done in a blink shows
 * its real rate, not 0 B/s).
 */
class RateMeter {
  private readonly samples: { at: number; bytes: number }[] = [];
  private readonly started = Date.now();
  sample(bytes: number): number {
    const at = Date.now();
    this.samples.push({ at, bytes });
    while (this.samples.length > 2 && at - this.samples[0]!.at > 5_000) this.samples.shift();
    const first = this.samples[0]!;
    const seconds = (at - first.at) / 1000;
    if (seconds > 0.2) return (bytes - first.bytes) / seconds;
    return at > this.started ? bytes / ((at - this.started) / 1000) : 0;
  }
}

export interface Totals {
  files: number;
  bytes: number;
  /** `put`, `get`, `sync`: the first word of per-file lines. */
  verb: string;
}

/**
 * What a look at a part file found, for people; null when there is nothing to say (it matched, or
 * a retry continues this run's own data).
 */
export function resumeNotice(file: string, size: number, resume: ResumeStart): string | null {
  if (resume.matched || resume.verified === 'this-run') return null;
  if (resume.partBytes > size) return `${file}: the part file (${formatBytes(resume.partBytes)}) is longer than the source: starting over`;
  if (resume.from > 0) {
    return `${file}: the part file did not match the source after ${formatBytes(resume.from)} (SHA-256 of 1 MiB blocks): continuing from there`;
  }
  return `${file}: the part file did not match the source (its first 1 MiB block differs): starting over`;
}

export function leftoverNotice(file: string, bytes: number): string {
  return `${file}: a part file from an earlier run is there (${formatBytes(bytes)}): --resume continues it; starting over`;
}

/** Follows an engine run and shows it; `finish` prints the summary. */
export function watchTransfer(engine: TransferEngine, totals: Totals, output: ProgressOutput): { finish(summary: EngineSummary): void } {
  let bytesDone = 0;
  let filesDone = 0;
  const started = Date.now();
  const fileBytes = new Map<Job, number>();
  const meter = new RateMeter();

  engine.on('bytes', (job, delta) => {
    bytesDone += delta;
    fileBytes.set(job, (fileBytes.get(job) ?? 0) + delta);
  });
  engine.on('failed', (job) => fileBytes.delete(job));
  engine.on('done', () => filesDone++);
  // Said once per run, whatever the output mode: the run goes on, slower.
  engine.on('fewer', ({ parallel, requests, kind, reason }) => {
    if (output.mode === 'json') output.out(jsonLine({ event: 'fewer', parallel, requests, kind, reason }));
    if (kind === 'open') output.notice(`the server refused to open more files at once (${reason}): moving ${parallel} at a time from now on`);
    else {
      const lower = [
        ...(parallel === null ? [] : [`moving ${parallel} ${parallel === 1 ? 'file' : 'files'} at a time`]),
        ...(requests === null ? [] : [`${requests} ${requests === 1 ? 'request' : 'requests'} in flight per file`]),
      ];
      output.notice(`the server failed under load (${reason}): ${lower.join(', ')} from now on, and trying again`);
    }
  });

  if (output.mode === 'json') {
    const lastLine = new Map<Job, number>();
    const emit = (value: Record<string, unknown>) => output.out(jsonLine(value));
    engine.on('start', (job) => {
      lastLine.set(job, Date.now());
      emit({ event: 'start', file: job.display, size: job.size });
    });
    engine.on('bytes', (job) => {
      const now = Date.now();
      if (now - (lastLine.get(job) ?? 0) < PROGRESS.jsonIntervalMs) return;
      lastLine.set(job, now);
      emit({ event: 'progress', file: job.display, bytes: fileBytes.get(job) ?? 0, size: job.size, totalBytes: bytesDone, total: totals.bytes, rate: Math.round(meter.sample(bytesDone)) });
    });
    engine.on('retry', (job, info) => emit({ event: 'retry', file: job.display, ...info }));
    engine.on('resumed', (job, resume) => emit({
      event: 'resumed', file: job.display, from: resume.from, size: job.size, partBytes: resume.partBytes, verified: resume.verified, matched: resume.matched, ...(resume.via ? { via: resume.via } : {}),
    }));
    engine.on('leftover', (job, bytes) => emit({ event: 'leftover', file: job.display, bytes, action: 'starting over' }));
    engine.on('done', (job) => {
      lastLine.delete(job);
      emit({ event: 'done', file: job.display, size: job.size });
    });
    engine.on('failed', (job, error) => {
      lastLine.delete(job);
      emit({ event: 'failed', file: job.display, code: error.exitCode, exit: error.exit, message: error.message });
    });
    // The `summary` event ends the whole command's output (run-report.ts), not the engine's part.
    return { finish: () => undefined };
  }

  if (output.notices) {
    engine.on('resumed', (job, resume) => {
      const notice = resumeNotice(job.display, job.size, resume);
      if (notice) output.notice(notice);
    });
    engine.on('leftover', (job, bytes) => output.notice(leftoverNotice(job.display, bytes)));
  }

  if (output.mode === 'lines') {
    engine.on('done', (job) => output.notice(`${totals.verb} ${job.display} (${formatBytes(job.size)})`));
    engine.on('retry', (job, info) => output.notice(`${job.display}: connection lost (${info.reason}); retry ${info.attempt} in ${info.delayMs} ms from ${formatBytes(info.resumeFrom)}`));
    // Running totals, so that a log shows a large file moving (or not) between its file lines.
    const ticker = setInterval(() => output.notice(runningTotals(totals, bytesDone, filesDone, meter.sample(bytesDone))), PROGRESS.linesIntervalMs);
    ticker.unref();
    return {
      finish(summary) {
        clearInterval(ticker);
        output.notice(summaryLine(summary));
      },
    };
  }

  if (output.mode === 'bars' && output.terminal) {
    let current = '';
    const terminal = output.terminal;
    const bar = new cliProgress.SingleBar(
      {
        stream: terminal,
        hideCursor: true,
        // The finished bar is wiped: the summary line takes its place.
        clearOnComplete: true,
        fps: 1000 / PROGRESS.barIntervalMs,
        // Laid out for the terminal's width, read at every frame (it follows a resized window).
        format: (_options, params) => {
          const rate = meter.sample(bytesDone);
          const left = rate > 0 ? (totals.bytes - bytesDone) / rate : Number.NaN;
          const percent = `${Math.floor(params.progress * 100)}%`;
          const figures = `${percent} ${formatBytes(bytesDone)}/${formatBytes(totals.bytes)} ${formatBytes(rate)}/s ${formatDuration(left)} left ${filesDone}/${totals.files}`;
          const short = `${percent} ${formatBytes(rate)}/s ${formatDuration(left)}`;
          return barLine({ progress: params.progress, figures, short, name: current }, terminal.columns || 80);
        },
      },
      cliProgress.Presets.shades_classic,
    );
    // A resized window (SIGWINCH) is redrawn at once rather than at the next frame.
    const redraw = () => bar.render();
    terminal.on('resize', redraw);
    bar.start(Math.max(totals.bytes, 1), 0);
    // `current` is drawn on the terminal as it is: the names in it are made printable here.
    engine.on('start', (job) => (current = printable(job.display)));
    engine.on('bytes', () => bar.update(Math.min(bytesDone, Math.max(totals.bytes, 1))));
    engine.on('done', () => bar.update(Math.min(bytesDone, Math.max(totals.bytes, 1))));
    engine.on('retry', (job, info) => {
      current = `${printable(job.display)} (retry ${info.attempt})`;
    });
    return {
      finish(summary) {
        current = '';
        terminal.off('resize', redraw);
        bar.update(Math.max(totals.bytes, 1));
        bar.stop();
        if (summary.files + summary.failed > 0) output.notice(summaryLine(summary, started));
      },
    };
  }

  return { finish: () => undefined };
}

/** A `--progress` line off a terminal: how far the run is, every few seconds. */
export function runningTotals(totals: Totals, bytes: number, files: number, rate: number): string {
  const percent = totals.bytes > 0 ? Math.floor((bytes / totals.bytes) * 100) : 100;
  return `${totals.verb}: ${formatBytes(bytes)} of ${formatBytes(totals.bytes)} (${percent}%), ${formatBytes(rate)}/s, ${files}/${totals.files} files done`;
}

export function summaryLine(summary: EngineSummary, started?: number): string {
  const seconds = (started !== undefined ? Date.now() - started : summary.ms) / 1000;
  const rate = summary.bytes / Math.max(seconds, 0.001);
  const failed = summary.failed > 0 ? `, ${summary.failed} failed` : '';
  return `${summary.files} file${summary.files === 1 ? '' : 's'}, ${formatBytes(summary.bytes)} in ${seconds.toFixed(1)} s (${formatBytes(rate)}/s)${failed}`;
}
