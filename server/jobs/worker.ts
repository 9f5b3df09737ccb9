import type Bull from 'bull';
import type { MailRequest } from '../mail/service.js';
import { ClaimedElsewhere } from '../mail/service.js';
import type { JobContext } from './context.js';
import { processReminder, sweepReminders, type ReminderJob } from './reminders.js';

/**
 * Starts the Bull processors on this process, and the repeatable jobs (Bull keeps one schedule per
 * repeat key, however many workers add it). Jobs are idempotent, so any number of workers may run.
 */
export async function startWorkers(ctx: JobContext): Promise<void> {
  const { queues, log } = ctx;

  queues.mail.process(4, async (job: Bull.Job<MailRequest>) => {
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
  queues.reminders.process(4, async (job: Bull.Job<ReminderJob>) => processReminder(ctx, job.data));
  const scheduleSweep = () =>
    queues.reminders.add('sweep', {}, {
      repeat: { every: ctx.config.reminderSweepMs },
      jobId: 'reminder-sweep',
      removeOnComplete: true,
      removeOnFail: 100,
    });
  await scheduleSweep();
  // A Redis without persistence comes back empty after a restart, repeatable schedules included:
  // schedule again on every reconnect (the same repeat key: still one schedule), and sweep at once.
  queues.reminders.client.on('ready', () => {
    scheduleSweep()
      .then(() => queues.reminders.add('sweep', {}, { removeOnComplete: true, removeOnFail: 100 }))
      .catch((err: Error) => log.warn({ err: err.message }, 'could not schedule the reminder sweep'));
  });

  for (const queue of queues.all()) {
    queue.on('error', (err) => log.warn({ queue: queue.name, err: err.message }, 'queue error'));
  }
}
