import { AgentError } from '../errors.js';

/**
 * `--bwlimit RATE`: one token bucket for the whole run, shared by every file and connection, so
 * that the limit is the run's and not each file's (32 files at once stay within it together).
 * Reads and writes ask it before each request goes out; what the server has not been asked for
 * cannot arrive, so downloads are bounded the same way as uploads.
 */

/** What the SFTP pipelines ask before sending a request of `bytes`. */
export interface Throttle {
  /** 0 when `bytes` may go now (they are counted); otherwise the milliseconds to wait before asking again. */
  tryTake(bytes: number): number;
  /** Resolves when `bytes` may go (and counts them). */
  take(bytes: number): Promise<void>;
}

const UNITS: Record<string, number> = { '': 1024, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/**
 * Bytes per second from a rate as rclone writes it: a number with an optional suffix K, M, G or T
 * (binary: 1K = 1024 bytes, also written Ki or KiB) or B for bytes; a bare number is KiB/s, as in
 * rclone. `off` or 0: no limit (null).
 */
export function parseRate(text: string): number | null {
  const value = text.trim().toLowerCase();
  if (value === 'off') return null;
  const match = /^(\d+(?:\.\d+)?)\s*(?:(b)|([kmgt])(?:i?b?)?)?$/.exec(value);
  if (!match) {
    throw new AgentError('USAGE', `--bwlimit "${text}" is not a rate: write bytes per second with K, M or G (binary), e.g. --bwlimit 500K or --bwlimit 10M`);
  }
  const unit = match[2] ?? match[3] ?? '';
  const rate = Math.floor(Number(match[1]) * UNITS[unit]!);
  if (rate === 0 && Number(match[1]) === 0) return null;
  if (rate < 1) throw new AgentError('USAGE', `--bwlimit "${text}" is less than one byte per second`);
  return rate;
}

/** Rates for uploads and downloads (`--bwlimit UP:DOWN`); null: no limit that way. */
export interface Rates {
  up: number | null;
  down: number | null;
}

/**
 * `--bwlimit RATE` (both ways) or `--bwlimit UP:DOWN`, as rclone: `10M:100M` uploads at most
 * 10 MiB/s and downloads at most 100 MiB/s, `off:1M` limits downloads only.
 */
export function parseRates(text: string): Rates {
  const parts = text.split(':');
  if (parts.length > 2) throw new AgentError('USAGE', `--bwlimit "${text}" is not a rate: give RATE, or UP:DOWN as in --bwlimit 10M:100M`);
  const up = parseRate(parts[0]!);
  return { up, down: parts.length === 2 ? parseRate(parts[1]!) : up };
}

/**
 * The bucket holds at most a quarter of a second of data (and at least one request's worth), so a
 * pause does not let a burst through. A request larger than what the bucket can hold goes once it
 * is full, leaving it in debt: the rate holds over time whatever the request size.
 */
export class TokenBucket implements Throttle {
  private tokens: number;
  private last = Date.now();
  private readonly capacity: number;

  constructor(private readonly bytesPerSecond: number) {
    this.capacity = Math.max(bytesPerSecond / 4, 1);
    this.tokens = this.capacity;
  }

  tryTake(bytes: number): number {
    const now = Date.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.bytesPerSecond);
    this.last = now;
    const needed = Math.min(bytes, this.capacity);
    if (this.tokens >= needed) {
      this.tokens -= bytes;
      return 0;
    }
    return Math.max(1, Math.ceil(((needed - this.tokens) / this.bytesPerSecond) * 1000));
  }

  async take(bytes: number): Promise<void> {
    for (let wait = this.tryTake(bytes); wait > 0; wait = this.tryTake(bytes)) {
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

/** The run's throttle for `--bwlimit`, or undefined without one. */
export function throttleFor(rate: string | undefined): Throttle | undefined {
  if (rate === undefined) return undefined;
  const bytesPerSecond = parseRate(rate);
  return bytesPerSecond === null ? undefined : new TokenBucket(bytesPerSecond);
}
