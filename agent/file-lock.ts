import { randomBytes } from 'node:crypto';
import { link, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { ensurePrivateDir, PRIVATE_FILE_MODE } from './home.js';
import { dirname } from 'node:path';

/**
 * An exclusive lock between ferry processes of one home: a file created with O_EXCL holding the
 * holder's pid, a random nonce and the time. Node has no flock(), and a lock file works the same on
 * every platform ferry runs on.
 *
 * A holder that died (kill -9, power loss) leaves its file behind: it is stale when its pid is no
 * longer alive, or when it is older than `staleAfterMs` (a pid reused by another process, a home on a
 * disk another machine also mounts). Breaking a stale lock renames it away first and checks that what
 * it took is the file it judged stale: of two processes breaking the same stale lock at once, the
 * second takes the first one's fresh lock, sees a different nonce, and links it back (link never
 * replaces a file). Only a third process creating a lock in the instant between those two steps could
 * then hold it beside the first: a crash and three racing commands in one millisecond.
 */

export interface LockOptions {
  /** How long to wait for another holder; 0: try once. */
  waitMs: number;
  /** Older than this, a lock is stale whoever holds it: well above the longest time a holder keeps it. */
  staleAfterMs: number;
}

/** A lock file another process is writing right now has no content yet: give it this long. */
const EMPTY_LOCK_STALE_MS = 10_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, it is another user's.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function tryCreate(file: string, content: string): Promise<boolean> {
  try {
    const handle = await open(file, 'wx', PRIVATE_FILE_MODE);
    try {
      await handle.writeFile(content);
    } finally {
      await handle.close();
    }
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/** The content of a stale lock at `file`, or null when it is held (or gone). */
async function staleContent(file: string, staleAfterMs: number): Promise<string | null> {
  let content: string;
  let mtimeMs: number;
  try {
    [content, { mtimeMs }] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
  } catch {
    return null; // released meanwhile: try again to create it
  }
  const [pidText, , sinceText] = content.trim().split(' ');
  const age = Date.now() - (Number(sinceText) || mtimeMs);
  if (content.trim() === '') return Date.now() - mtimeMs > EMPTY_LOCK_STALE_MS ? content : null;
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid) || age > staleAfterMs) return content;
  return null;
}

async function breakStale(file: string, content: string): Promise<void> {
  const taken = `${file}.stale-${randomBytes(6).toString('hex')}`;
  try {
    await rename(file, taken);
  } catch {
    return; // someone else broke or released it
  }
  const took = await readFile(taken, 'utf8').catch(() => null);
  if (took !== null && took !== content) {
    // A fresh lock taken by another breaker a moment ago: put it back unless a newer one is there.
    await link(taken, file).catch(() => undefined);
  }
  await unlink(taken).catch(() => undefined);
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `work` holding the lock `file`; returns `{ done: false }` when another process held it for
 * longer than `waitMs`.
 */
export async function withFileLock<T>(file: string, options: LockOptions, work: () => Promise<T>): Promise<{ done: true; value: T } | { done: false }> {
  await ensurePrivateDir(dirname(file));
  const mine = `${process.pid} ${randomBytes(8).toString('hex')} ${Date.now()}\n`;
  const deadline = Date.now() + options.waitMs;
  for (;;) {
    if (await tryCreate(file, mine)) break;
    const stale = await staleContent(file, options.staleAfterMs);
    if (stale !== null) {
      await breakStale(file, stale);
      continue;
    }
    if (Date.now() >= deadline) return { done: false };
    await pause(5 + Math.random() * 20);
  }
  try {
    return { done: true, value: await work() };
  } finally {
    // Only our own: after a (wrongly) broken lock, the file may be another holder's.
    if ((await readFile(file, 'utf8').catch(() => null)) === mine) await unlink(file).catch(() => undefined);
  }
}
