import { join } from 'node:path';
import { compareVersions, isVersion } from '../licensing/release-manifest.js';
import type { AgentContext } from './context.js';
import { readJsonFile, UnreadableFileError, writeJsonAtomic } from './home.js';

/**
 * "ferry 0.3.0 is available: ferry update". The license server names its newest release in the
 * answers the agent gets anyway (trial, activation, lease renewal); the agent keeps it in
 * `$FERRY_HOME/update.json` with when it last told the user, and says so on a terminal at most
 * once a day: never into a pipe, a script's log, `--json` or `-q`.
 */
export const UPDATE_NOTICE_INTERVAL_MS = 24 * 3_600_000;

interface UpdateFile {
  latestVersion: string;
  /** ISO time of the last notice, or null. */
  toldAt: string | null;
}

const updateFile = (ctx: AgentContext) => join(ctx.paths.dir, 'update.json');

async function readUpdateFile(ctx: AgentContext): Promise<UpdateFile | null> {
  try {
    const stored = (await readJsonFile(updateFile(ctx))) as Partial<UpdateFile> | undefined;
    if (typeof stored?.latestVersion !== 'string' || !isVersion(stored.latestVersion)) return null;
    return { latestVersion: stored.latestVersion, toldAt: typeof stored.toldAt === 'string' ? stored.toldAt : null };
  } catch (err) {
    if (err instanceof UnreadableFileError) return null;
    throw err;
  }
}

export interface NoticeFlags {
  json?: boolean;
  quiet?: boolean;
}

/** At the end of a command: remember what the server said, and tell the user when it is time. */
export async function updateNotice(ctx: AgentContext, flags: NoticeFlags): Promise<void> {
  let stored = await readUpdateFile(ctx);
  if (ctx.latestVersion !== null && ctx.latestVersion !== stored?.latestVersion) {
    stored = { latestVersion: ctx.latestVersion, toldAt: stored?.toldAt ?? null };
    await writeJsonAtomic(updateFile(ctx), stored);
  }
  if (!stored || compareVersions(stored.latestVersion, ctx.agentVersion) <= 0) return;
  if (flags.json || flags.quiet || !ctx.terminal?.output.isTTY) return;
  const toldAt = stored.toldAt ? Date.parse(stored.toldAt) : NaN;
  const now = ctx.clock.wallNow;
  // A notice "in the future" (the clock was set back since) counts as long ago.
  if (Number.isFinite(toldAt) && now - toldAt < UPDATE_NOTICE_INTERVAL_MS && now >= toldAt) return;
  ctx.notice(`ferry ${stored.latestVersion} is available: ferry update`);
  await writeJsonAtomic(updateFile(ctx), { ...stored, toldAt: new Date(now).toISOString() });
}
