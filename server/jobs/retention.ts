import type { ResultSetHeader } from 'mysql2/promise';
import type { JobContext } from './context.js';

export const RETENTION_SCHEDULE = { cron: '30 0 * * *', tz: 'UTC' };

/** Rows removed per statement: long purges go in steps that never hold locks for long. */
const PURGE_STEP = 5_000;

/**
 * Removes what is past its retention and logs what it removed, as counts: usage events of trials
 * that ended longer ago than RETAIN_TRIAL_USAGE; the email of trials never claimed (and the address
 * of mail sent to no customer) after RETAIN_TRIAL_EMAIL; client addresses of activations, license
 * events, rebinds and usage events after RETAIN_IP_ADDRESSES; piracy signals naming an address after
 * RETAIN_ADDRESS_SIGNALS; and (through `purgeCancelledAccounts`, which MyAccount provides) accounts
 * cancelled longer ago than RETAIN_CANCELLED_ACCOUNTS.
 */
export interface RetentionResult {
  lapsedTrialUsageEvents: number;
  trialEmails: number;
  /** Addresses of trial users in finished news and release sends. */
  campaignAddresses: number;
  trialHostnames: number;
  trialMailAddresses: number;
  activationAddresses: number;
  licenseEventAddresses: number;
  rebindAddresses: number;
  usageEventAddresses: number;
  addressSignals: number;
  cancelledAccounts: number;
}

export type PurgeCancelledAccounts = (ctx: JobContext, cancelledBefore: Date) => Promise<number>;

let purgeCancelledAccounts: PurgeCancelledAccounts = async () => 0;

/** MyAccount hands over its erase-an-account function at start-up. */
export function setCancelledAccountPurge(purge: PurgeCancelledAccounts): void {
  purgeCancelledAccounts = purge;
}

/** Runs a purge statement in steps until it touches fewer rows than a step; answers the rows touched. */
async function inSteps(ctx: JobContext, sql: string, params: unknown[]): Promise<number> {
  let total = 0;
  for (;;) {
    const [result] = await ctx.db.query<ResultSetHeader>(`${sql} LIMIT ${PURGE_STEP}`, params);
    total += result.affectedRows;
    if (result.affectedRows < PURGE_STEP) return total;
  }
}

export async function processRetention(ctx: JobContext): Promise<RetentionResult> {
  const now = ctx.now().getTime();
  const { config } = ctx;
  const before = (ms: number) => new Date(now - ms);
  const lapsedTrialUsageEvents = await inSteps(ctx,
    "DELETE FROM usage_events WHERE license_id IN (SELECT id FROM licenses WHERE kind = 'trial' AND expires_at < ?)",
    [before(config.retainLapsedTrialUsageMs)]);
  // A claimed trial's address is the account's, kept with it; an unclaimed one's goes.
  const trialEmails = await inSteps(ctx,
    "UPDATE licenses SET email = NULL, marketing_opt_in = FALSE WHERE kind = 'trial' AND customer_id IS NULL AND email IS NOT NULL AND expires_at < ?",
    [before(config.retainTrialEmailMs)]);
  // The machine's name of such a trial goes with its email: no one can claim the trial any more to see it.
  const trialHostnames = await inSteps(ctx,
    `UPDATE activations SET hostname = NULL WHERE hostname IS NOT NULL AND license_id IN (
       SELECT id FROM licenses WHERE kind = 'trial' AND customer_id IS NULL AND expires_at < ?)`,
    [before(config.retainTrialEmailMs)]);
  const trialMailAddresses = await inSteps(ctx,
    'UPDATE sent_mail SET to_email = NULL WHERE customer_id IS NULL AND to_email IS NOT NULL AND claimed_at < ?',
    [before(config.retainTrialEmailMs)]);
  // A news message or release notice to a trial user (no account): the address is needed while the
  // send runs; once it is finished and RETAIN_TRIAL_EMAIL old, only a digest stays (it keeps the
  // recipient counted, once, in the send's figures).
  const campaignAddresses = await inSteps(ctx,
    `UPDATE campaign_recipients SET email = CONCAT('erased:', SHA2(email, 256))
       WHERE customer_id IS NULL AND email NOT LIKE 'erased:%'
         AND campaign_id IN (SELECT id FROM campaigns WHERE state = 'sent' AND finished_at < ?)`,
    [before(config.retainTrialEmailMs)]);
  const addressesBefore = before(config.retainIpAddressesMs);
  const activationAddresses = await inSteps(ctx,
    'UPDATE activations SET ip = NULL WHERE ip IS NOT NULL AND COALESCE(last_validated_at, created_at) < ?', [addressesBefore]);
  const licenseEventAddresses = await inSteps(ctx, 'UPDATE license_events SET ip = NULL WHERE ip IS NOT NULL AND occurred_at < ?', [addressesBefore]);
  const rebindAddresses = await inSteps(ctx, 'UPDATE activation_rebinds SET ip = NULL WHERE ip IS NOT NULL AND occurred_at < ?', [addressesBefore]);
  const usageEventAddresses = await inSteps(ctx, 'UPDATE usage_events SET ip = NULL WHERE ip IS NOT NULL AND received_at < ?', [addressesBefore]);
  const addressSignals = await inSteps(ctx,
    "DELETE FROM piracy_signals WHERE subject LIKE 'address:%' AND day < ?",
    [before(config.retainAddressSignalsMs).toISOString().slice(0, 10)]);
  const cancelledAccounts = await purgeCancelledAccounts(ctx, before(config.retainCancelledAccountsMs));
  const removed = {
    lapsedTrialUsageEvents, trialEmails, trialHostnames, trialMailAddresses, campaignAddresses, activationAddresses, licenseEventAddresses, rebindAddresses, usageEventAddresses, addressSignals, cancelledAccounts,
  };
  ctx.log.info(removed, 'retention purge');
  return removed;
}
