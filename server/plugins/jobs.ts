import fp from 'fastify-plugin';
import { createJobContext, type JobContext } from '../jobs/context.js';
import { startWorkers } from '../jobs/worker.js';
import type { MailService } from '../mail/service.js';

declare module 'fastify' {
  interface FastifyInstance {
    jobs: JobContext;
    mail: MailService;
  }
}

/**
 * The Bull queues, the mail service, and (unless FERRY_WORKERS=0, when `ferry-server worker`
 * processes run them) the processors, inside the server process.
 */
export default fp(
  async (app) => {
    const jobs = createJobContext(app.config, app.db, app.log);
    app.decorate('jobs', jobs);
    app.decorate('mail', jobs.mail);
    app.log.info({ mail: jobs.mail.description }, app.config.smtpUrl ? 'mail goes out by SMTP' : 'SMTP_URL is not set: mail is written to the outbox folder');
    if (app.config.runWorkers) {
      app.addHook('onReady', () => startWorkers(jobs));
    }
    app.addHook('onClose', async () => {
      await jobs.queues.close();
      jobs.mail.close();
    });
  },
  { name: 'jobs', dependencies: ['config', 'mysql'] },
);
