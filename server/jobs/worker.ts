import type Bull from 'bull';
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
const REMINDER_CONCURRENCY = 16;

/**
 * Starts the Bull processors on this process, and the repeatable jobs (Bull keeps one schedule per
 * repeat key, however many workers add it). Jobs are idempotent, so any number of workers may run.
 */
export async function startWorkers(ctx: JobContext): Promise<void> {
  const { queues, log } = ctx;

  queues.mail.process(MAIL_CONCURRENCY, async (job: Bull.Job<MailRequest>) => {
    try {
      const outcome = await ctx.mail.deliver(job.data);
      log.info({ key: job.data.key, template: job.data.template, outcome }, 'mail');
      return outcome;
    } catch (err) {
      if (err instanceof ClaimedElsewhere) log.info({ key: job.data.key }, err.message);
      else log.warn({ key: job.data.key, err: (err as Error).message, attempt: job.attemptsMade + 1 }, 'mail not sent; will retry');
      throw err;
    }
  });

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
  // A Redis without persistence comes back empty after a restart, repeatable schedules included:
  // schedule again on every reconnect (the same repeat keys: still one schedule each), and sweep
  // the reminders at once. (The queues share one command connection.)
  queues.reminders.client.on('ready', () => {
    schedule()
      .then(() => queues.reminders.add('sweep', {}, { removeOnComplete: true, removeOnFail: 100 }))
      .catch((err: Error) => log.warn({ err: err.message }, 'could not schedule the repeatable jobs'));
  });

  for (const queue of queues.all()) {
    queue.on('error', (err) => log.warn({ queue: queue.name, err: err.message }, 'queue error'));
  }
}
