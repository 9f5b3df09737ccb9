import type Bull from 'bull';
import { campaignMessage, fanOut, recordFailure, recordOutcome, resumeUnfinishedCampaigns, type FanOutJob } from '../mail/campaigns.js';
import type { MailRequest } from '../mail/service.js';
import { ClaimedElsewhere } from '../mail/service.js';
import type { JobContext } from './context.js';
import { EXPORT_REPORT_SCHEDULE, processExportReport, type ExportReportJob } from './export-report.js';
import { processReminder, sweepReminders, type ReminderJob } from './reminders.js';
import { processRetention, RETENTION_SCHEDULE } from './retention.js';
import { processRollup, ROLLUP_SCHEDULE, type RollupJob } from './usage-rollup.js';

/**
 * Jobs in flight per worker process. Mail and reminders wait on MySQL, Redis and SMTP, not on the
 * CPU: measured with the jobs bench, 4 at a time left the worker idle half the time.
 */
const MAIL_CONCURRENCY = 16;
const MARKETING_MAIL_CONCURRENCY = 16;
const REMINDER_CONCURRENCY = 16;

/** One message of either mail queue; a campaign's message gets the campaign's text and reports back to its recipient row. */
async function processMail(ctx: JobContext, job: Bull.Job<MailRequest>) {
  const { log } = ctx;
  try {
    const request = job.data.campaign ? await campaignMessage(ctx, job.data) : job.data;
    const outcome = await ctx.mail.deliver(request);
    if (request.campaign) await recordOutcome(ctx.db, request, ctx.now());
    log.info({ key: job.data.key, template: job.data.template, outcome }, 'mail');
    return outcome;
  } catch (err) {
    if (err instanceof ClaimedElsewhere) log.info({ key: job.data.key }, err.message);
    else log.warn({ key: job.data.key, err: (err as Error).message, attempt: job.attemptsMade + 1 }, 'mail not sent; will retry');
    const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    if (lastAttempt && job.data.campaign) await recordFailure(ctx.db, job.data, ctx.now()).catch(() => {});
    throw err;
  }
}

/**
 * Starts the Bull processors on this process, and the repeatable jobs (Bull keeps one schedule per
 * repeat key, however many workers add it). Jobs are idempotent, so any number of workers may run.
 */
export async function startWorkers(ctx: JobContext): Promise<void> {
  const { queues, log } = ctx;

  // Service and marketing mail: two queues, each with its own pace and SMTP connections, so that
  // a marketing send to everyone never holds a password link back.
  queues.mail.process(MAIL_CONCURRENCY, (job: Bull.Job<MailRequest>) => processMail(ctx, job));
  queues.marketingMail.process(MARKETING_MAIL_CONCURRENCY, (job: Bull.Job<MailRequest>) => processMail(ctx, job));
  queues.campaigns.process(1, async (job: Bull.Job<FanOutJob>) => ({ queued: await fanOut(ctx, job.data) }));

  queues.reminders.process('sweep', 1, async () => sweepReminders(ctx));
  queues.reminders.process(REMINDER_CONCURRENCY, async (job: Bull.Job<ReminderJob>) => processReminder(ctx, job.data));
  // The daily and half-yearly jobs.
  queues.usageRollup.process(1, async (job: Bull.Job<RollupJob>) => processRollup(ctx, job.data));
  queues.retention.process(1, async () => processRetention(ctx));
  queues.exportReport.process(1, async (job: Bull.Job<ExportReportJob>) => processExportReport(ctx, job.data));

  // Repeatable jobs: one repeat key each, however many workers add them.
  const daily = { removeOnComplete: 30, removeOnFail: 30, attempts: 3, backoff: { type: 'exponential', delay: 60_000 } };
  const schedule = async () => {
    await queues.reminders.add('sweep', {}, { repeat: { every: ctx.config.reminderSweepMs }, jobId: 'reminder-sweep', removeOnComplete: true, removeOnFail: 100 });
    await queues.usageRollup.add({}, { ...daily, repeat: ROLLUP_SCHEDULE, jobId: 'usage-rollup-daily' });
    await queues.retention.add({}, { ...daily, repeat: RETENTION_SCHEDULE, jobId: 'retention-daily' });
    await queues.exportReport.add({}, { ...daily, repeat: EXPORT_REPORT_SCHEDULE, jobId: 'export-report-half-year' });
  };
  await schedule();
  // A campaign left sending (a crash, a restart) carries on.
  await resumeUnfinishedCampaigns(ctx);
  // A Redis without persistence comes back empty after a restart, repeatable schedules included:
  // schedule again on every reconnect (the same repeat keys: still one schedule each), and sweep
  // the reminders at once. (The queues share one command connection.)
  queues.reminders.client.on('ready', () => {
    schedule()
      .then(() => queues.reminders.add('sweep', {}, { removeOnComplete: true, removeOnFail: 100 }))
      .then(() => resumeUnfinishedCampaigns(ctx))
      .catch((err: Error) => log.warn({ err: err.message }, 'could not schedule the repeatable jobs'));
  });

  for (const queue of queues.all()) {
    queue.on('error', (err) => log.warn({ queue: queue.name, err: err.message }, 'queue error'));
  }
}
