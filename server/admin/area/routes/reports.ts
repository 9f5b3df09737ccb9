import type { FastifyInstance } from 'fastify';
import { fileExportReport, findFiledReport, listFiledReports, recordReportAlert, reportAlerts, verifyChain } from '../../../../reports/export-compliance.js';
import { AppError } from '../../../errors.js';
import { sendFiledReport } from '../../report-download.js';
import { previousHalfYear } from '../../../jobs/export-report.js';
import { yesterday, type RollupJob } from '../../../jobs/usage-rollup.js';
import { isDay } from '../format.js';
import { field, param, type FieldErrors } from '../forms.js';
import type { AdminPages } from '../pages.js';

/**
 * Export-compliance reports: the filed ones with their downloads, and a form to file one for a
 * period (in the request: filing streams rows and takes seconds even for large periods, and the
 * report is then on the page). Also the usage roll-up, run now for a day through its queue.
 */
export default async function reportRoutes(app: FastifyInstance, pages: AdminPages): Promise<void> {
  // Checked on every look at the page: a break is logged for staff and marked on the report.
  const chainBreaks = async () => {
    const breaks = await verifyChain(app.db);
    for (const b of breaks) {
      app.log.error({ reportId: b.reportId, problem: b.problem }, 'export-compliance report chain broken');
      await recordReportAlert(app.db, b.reportId, b.problem);
    }
    return breaks;
  };
  const page = async (extra: Record<string, unknown> = {}) => {
    const now = new Date();
    return {
      title: 'Reports',
      reports: await listFiledReports(app.db),
      alerts: Object.fromEntries(await reportAlerts(app.db)),
      chainBreaks: await chainBreaks(),
      values: { ...previousHalfYear(now), day: yesterday(now) },
      ...extra,
    };
  };

  app.get('/reports', async (request, reply) => {
    const highlight = Number(param(request.query, 'report')) || null;
    const job = /^[\w:-]{1,64}$/.test(param(request.query, 'job')) ? param(request.query, 'job') : null;
    const day = isDay(param(request.query, 'day')) ? param(request.query, 'day') : null;
    return pages.render(request, reply, 'reports', await page({ highlight, queued: job && day ? { job, day } : null }));
  });

  app.post('/reports', async (request, reply) => {
    const from = field(request.body, 'from');
    const to = field(request.body, 'to');
    const errors: FieldErrors = {};
    if (!isDay(from)) errors.from = 'Enter the first day of the period as a date.';
    if (!isDay(to)) errors.to = 'Enter the last day of the period as a date.';
    else if (isDay(from) && from > to) errors.to = 'The period must end on or after the day it starts.';
    if (Object.keys(errors).length) {
      const base = await page();
      return pages.render(request, reply, 'reports', { ...base, values: { ...base.values, from, to }, errors }, 400);
    }
    const report = await fileExportReport(app.db, from, to, 'admin');
    request.log.info({ reportId: report.id, rows: report.rows, via: 'admin area' }, 'export-compliance report filed');
    return reply.redirect(`/admin/reports?done=report-filed&report=${report.id}#report-${report.id}`, 303);
  });

  // The same bytes as GET /v1/admin/reports/:id.csv, for a browser that has the session cookie.
  app.get('/reports/:file', async (request, reply) => {
    const match = /^(\d{1,15})\.(csv|json)$/.exec((request.params as { file: string }).file);
    const report = match ? await findFiledReport(app.db, Number(match[1])) : null;
    if (!match || !report) throw new AppError('REPORT_NOT_FOUND', 404, 'There is no such filed report.');
    return sendFiledReport(request, reply, report, match[2] as 'csv' | 'json');
  });

  app.post('/reports/usage-rollup', async (request, reply) => {
    const day = field(request.body, 'day');
    if (!isDay(day)) {
      const base = await page();
      return pages.render(request, reply, 'reports', { ...base, values: { ...base.values, day }, errors: { day: 'Enter the day to roll up as a date.' } }, 400);
    }
    const data: RollupJob = { day };
    // No jobId: "run now" runs even when the day's scheduled job is still kept as completed.
    const job = await app.jobs.queues.usageRollup.add(data, { attempts: 3, backoff: { type: 'exponential', delay: 10_000 }, removeOnComplete: 100, removeOnFail: 100 });
    request.log.info({ day, jobId: job.id, via: 'admin area' }, 'usage roll-up queued');
    return reply.redirect(`/admin/reports?done=rollup-queued&job=${encodeURIComponent(String(job.id))}&day=${day}`, 303);
  });
}
