import type { ResultSetHeader } from 'mysql2/promise';
import type { JobContext } from './context.js';

export const RETENTION_SCHEDULE = { cron: '30 0 * * *', tz: 'UTC' };

/** Rows removed per statement: long purges go in steps that never hold locks for long. */
const PURGE_STEP = 5_000;

/**
 * Removes what is past its retention and logs what it removed, as counts: usage events of trials
 * that ended longer ago than RETAIN_TRIAL_USAGE, and (through `purgeCancelledAccounts`, which
 * MyAccount provides) accounts cancelled longer ago than RETAIN_CANCELLED_ACCOUNTS.
 */
export interface RetentionResult {
  lapsedTrialUsageEvents: number;
  cancelledAccounts: number;
}

export type PurgeCancelledAccounts = (ctx: JobContext, cancelledBefore: Date) => Promise<number>;

let purgeCancelledAccounts: PurgeCancelledAccounts = async () => 0;

/** MyAccount hands over its erase-an-account function at start-up. */
export function setCancelledAccountPurge(purge: PurgeCancelledAccounts): void {
  purgeCancelledAccounts = purge;
}

export async function processRetention(ctx: JobContext): Promise<RetentionResult> {
  const now = ctx.now().getTime();
  const trialsEndedBefore = new Date(now - ctx.config.retainLapsedTrialUsageMs);
  let lapsedTrialUsageEvents = 0;
  for (;;) {
    const [result] = await ctx.db.query<ResultSetHeader>(
      `DELETE FROM usage_events WHERE license_id IN (
         SELECT id FROM licenses WHERE kind = 'trial' AND expires_at < ?) LIMIT ${PURGE_STEP}`,
      [trialsEndedBefore],
    );
    lapsedTrialUsageEvents += result.affectedRows;
    if (result.affectedRows < PURGE_STEP) break;
  }
  const cancelledAccounts = await purgeCancelledAccounts(ctx, new Date(now - ctx.config.retainCancelledAccountsMs));
  const removed = { lapsedTrialUsageEvents, cancelledAccounts };
  ctx.log.info(removed, 'retention purge');
  return removed;
}
