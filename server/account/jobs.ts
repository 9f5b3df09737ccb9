import type { RowDataPacket } from 'mysql2/promise';
import type { JobContext } from '../jobs/context.js';
import { setCancelledAccountPurge } from '../jobs/retention.js';
import { anonymiseMailOfErasedCustomers, eraseCustomer } from './erase.js';
// Registers the portal's mail templates: a worker process sends the portal's mail too.
import './mail.js';

/** Accounts erased per query round: each is its own short transaction. */
const PURGE_BATCH = 200;

/**
 * The retention job's part for MyAccount: erases accounts cancelled before `cancelledBefore`, the
 * same erasure as "Delete my account", and takes the address off any deletion confirmation that a
 * mail retry sent since. Answers how many accounts it erased.
 */
export async function purgeCancelledAccounts(ctx: JobContext, cancelledBefore: Date): Promise<number> {
  const deps = { db: ctx.db, redis: ctx.queues.mail.client, mail: ctx.mail, config: ctx.config, log: ctx.log };
  let erased = 0;
  for (;;) {
    const [rows] = await ctx.db.execute<RowDataPacket[]>(
      `SELECT id FROM customers WHERE status = 'cancelled' AND cancelled_at < ? ORDER BY cancelled_at, id LIMIT ${PURGE_BATCH}`,
      [cancelledBefore],
    );
    for (const row of rows) if (await eraseCustomer(deps, Number(row.id), 'retention')) erased++;
    if (rows.length < PURGE_BATCH) break;
  }
  await anonymiseMailOfErasedCustomers(ctx.db);
  return erased;
}

/**
 * Hands the purge to the retention job and registers the portal's mail templates. The server calls
 * it when the portal starts; `ferry-server worker` must call it too (see the report to the jobs
 * issue), or its mail queue cannot render the portal's messages.
 */
export function registerAccountJobs(): void {
  setCancelledAccountPurge(purgeCancelledAccounts);
}
