/**
 * What ferry-server logged during the bench (it runs at LOG_LEVEL=warn, so every line matters):
 * pino JSON lines grouped by level and message, with the error's code and message, counted.
 */

const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

interface Entry {
  level: string;
  text: string;
  count: number;
}

export class LogSummary {
  private readonly entries = new Map<string, Entry>();
  private lines = 0;

  add(line: string): void {
    if (line.trim() === '') return;
    this.lines++;
    let level = 'text';
    let text = line;
    try {
      const record = JSON.parse(line) as {
        level?: number;
        msg?: string;
        err?: { type?: string; code?: string; message?: string };
        [key: string]: unknown;
      };
      level = LEVELS[record.level ?? 0] ?? String(record.level);
      const err = record.err;
      const cause = err ? ` [${[err.type, err.code].filter(Boolean).join(' ')}] ${err.message ?? ''}` : '';
      text = `${record.msg ?? ''}${cause}`;
    } catch {
      // Not JSON: keep the line as it is.
    }
    text = text.replace(/\s+/g, ' ').trim().slice(0, 240);
    const key = `${level}\u0000${text}`;
    const entry = this.entries.get(key);
    if (entry) entry.count++;
    else this.entries.set(key, { level, text, count: 1 });
  }

  get lineCount(): number {
    return this.lines;
  }

  /** Most frequent first, at most `max` distinct entries. */
  summary(max = 10): string[] {
    const sorted = [...this.entries.values()].sort((a, b) => b.count - a.count);
    const lines = sorted.slice(0, max).map((e) => `${String(e.count).padStart(6)} x ${e.level}: ${e.text}`);
    if (sorted.length > max) lines.push(`  … and ${sorted.length - max} other distinct lines`);
    return lines;
  }
}
