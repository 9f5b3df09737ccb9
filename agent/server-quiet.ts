import { unlink } from 'node:fs/promises';
import { readTextFile, writeFileAtomic, type HomePaths } from './home.js';

/**
 * A license server that did not answer a background call in its time (the trial's usage report, a
 * check-in; ServerSilent, not a refusal, which costs nothing) is left alone by the background calls
 * of the commands that follow, for QUIET_MS. Behind a
 * firewall that drops the packets, every command of a trial used to end with the full background
 * timeout (3 s) spent waiting for it. What a command needs (an activation, a lease renewal that is
 * due) always goes; the usage spool keeps the events for the first report after the quiet time. The
 * file holds the server and when it did not answer; a successful call anywhere removes it.
 */
export const QUIET_MS = 10 * 60_000;

interface Quiet {
  server: string;
  at: number;
}

async function readQuiet(paths: HomePaths): Promise<Quiet | null> {
  try {
    const parsed = JSON.parse((await readTextFile(paths.serverQuiet)) ?? 'null') as Partial<Quiet> | null;
    return parsed && typeof parsed.server === 'string' && typeof parsed.at === 'number' ? { server: parsed.server, at: parsed.at } : null;
  } catch {
    return null;
  }
}

/** Whether background calls to `server` should wait: it did not answer one less than QUIET_MS ago (a clock set back ends the wait). */
export async function keepQuiet(paths: HomePaths, server: string, now: number): Promise<boolean> {
  const quiet = await readQuiet(paths);
  return quiet !== null && quiet.server === server && now >= quiet.at && now - quiet.at < QUIET_MS;
}

/** A background call found `server` silent at `now`. */
export async function noteUnreachable(paths: HomePaths, server: string, now: number): Promise<void> {
  await writeFileAtomic(paths.serverQuiet, `${JSON.stringify({ server, at: now })}\n`).catch(() => undefined);
}

/** `server` answered: background calls go again. */
export async function noteAnswered(paths: HomePaths, server: string): Promise<void> {
  if ((await readQuiet(paths))?.server === server) await unlink(paths.serverQuiet).catch(() => undefined);
}
