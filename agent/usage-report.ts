import type { UsageKind } from '../licensing/index.js';
import type { AgentContext } from './context.js';
import { existingDeviceKey } from './device-key.js';
import { AgentError } from './errors.js';
import { sendUsageBatch } from './license-api.js';
import type { LicenseState } from './license-state.js';
import { ServerError, ServerSilent } from './server-client.js';
import { keepQuiet, noteAnswered, noteUnreachable } from './server-quiet.js';
import { recordChained } from './usage-chain.js';
import { flushSpool, spoolEvents, type BatchOutcome, type UsageEvent } from './usage-spool.js';

/**
 * Software reporting during a trial: each command records what `ferry privacy` says (time, locale,
 * command kind) in the spool and then tries to send the spool. Reporting never fails a command:
 * whatever goes wrong, the events wait for the next try. An activation with a device key signs its
 * events into a hash chain (usage-chain.ts); one from before device keys sends them unsigned.
 */

/** Server refusals that no retry can fix: these events are dropped rather than resent forever. */
function neverAccepted(err: ServerError): boolean {
  return err.code === 'NOT_A_TRIAL' || err.status === 400 || err.status === 413 || err.status === 422;
}

async function sendBatch(ctx: AgentContext, server: string, token: string, events: UsageEvent[]): Promise<BatchOutcome> {
  try {
    await sendUsageBatch(server, token, events);
    return 'sent';
  } catch (err) {
    if (err instanceof ServerError) return neverAccepted(err) ? 'drop' : 'keep';
    if (err instanceof AgentError && err.exit === 'SERVER_UNREACHABLE') ctx.unreachableServers.add(server);
    if (err instanceof ServerSilent) await noteUnreachable(ctx.paths, server, ctx.clock.wallNow);
    return 'keep';
  }
}

/** Sends what is in the spool with this trial's token; stays quiet about failures. */
export async function sendSpooledUsage(ctx: AgentContext, trial: LicenseState): Promise<void> {
  try {
    const server = await ctx.resolveServer(trial.server);
    // Found unreachable earlier in this command, or by a recent one: do not make the user wait for it again.
    if (ctx.unreachableServers.has(server) || (await keepQuiet(ctx.paths, server, ctx.clock.wallNow))) return;
    const flushed = await flushSpool(ctx.paths.spool, (events) => sendBatch(ctx, server, trial.token, events));
    if (flushed.sent > 0) await noteAnswered(ctx.paths, server);
  } catch {
    // Reporting must never fail the command; the spool keeps what was not sent.
  }
}

/**
 * Records this use (and a clock newly found set back) while a trial is in force, then sends the
 * spool. `trial` is null when no trial is in force: then nothing is recorded.
 */
export async function reportUsage(ctx: AgentContext, trial: LicenseState | null, kind: UsageKind): Promise<void> {
  if (trial === null) return;
  const at = new Date(ctx.clock.wallNow).toISOString();
  const events: UsageEvent[] = [];
  if (ctx.clock.newlySetBack) events.push({ at, locale: ctx.locale, kind: 'clock_set_back' });
  events.push({ at, locale: ctx.locale, kind });
  try {
    const key = await existingDeviceKey(ctx.paths.deviceKey);
    if (key) await recordChained(ctx.paths.usageChain, ctx.paths.spool, { activationId: trial.activationId, key }, events);
    else await spoolEvents(ctx.paths.spool, events);
  } catch {
    // An unwritable home already shows elsewhere; reporting stays quiet. A damaged device key records
    // nothing: unsigned events of an activation with a key would be taken for forged ones.
    return;
  }
  await sendSpooledUsage(ctx, trial);
}
