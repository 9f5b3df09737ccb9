import { computeDay, storeDay } from '../../reports/usage-statistics.js';
import type { JobContext } from './context.js';

/** `{day}` to roll up one day (admin "run now"); empty data: yesterday, as the daily schedule runs it. */
export interface RollupJob {
  day?: string;
}

export const ROLLUP_SCHEDULE = { cron: '15 0 * * *', tz: 'UTC' };

export function yesterday(now: Date): string {
  return new Date(now.getTime() - 86_400_000).toISOString().slice(0, 10);
}

export async function processRollup(ctx: JobContext, job: RollupJob) {
  const day = job.day ?? yesterday(ctx.now());
  const stats = await computeDay(ctx.db, day, ctx.config.mailSecret);
  await storeDay(ctx.db, stats, ctx.now());
  ctx.log.info({ day, installations: stats.installations, active: stats.activeMachinesDay, signals: stats.signals.length }, 'usage roll-up');
  return { day, installations: stats.installations, activeMachinesDay: stats.activeMachinesDay, signals: stats.signals.length };
}
