import type { RowDataPacket } from 'mysql2/promise';
import { fileExportReport } from '../../reports/export-compliance.js';
import type { JobContext } from './context.js';

/** On 1 January and 1 July, for the half-year just ended. */
export const EXPORT_REPORT_SCHEDULE = { cron: '0 2 1 1,7 *', tz: 'UTC' };

export interface ExportReportJob {
  from?: string;
  to?: string;
}

/** The half-year that ended before `now`: 1 Jan–30 Jun or 1 Jul–31 Dec. */
export function previousHalfYear(now: Date): { from: string; to: string } {
  const year = now.getUTCFullYear();
  return now.getUTCMonth() < 6 ? { from: `${year - 1}-07-01`, to: `${year - 1}-12-31` } : { from: `${year}-01-01`, to: `${year}-06-30` };
}

/** Files the report of the period once: a retried or repeated job finds it filed and stops. */
export async function processExportReport(ctx: JobContext, job: ExportReportJob) {
  const period = job.from && job.to ? { from: job.from, to: job.to } : previousHalfYear(ctx.now());
  const [filed] = await ctx.db.execute<RowDataPacket[]>(
    "SELECT id FROM export_reports WHERE period_from = ? AND period_to = ? AND filed_by = 'schedule' AND status = 'filed'",
    [period.from, period.to],
  );
  if (filed.length > 0) return { reportId: filed[0]!.id, alreadyFiled: true };
  const report = await fileExportReport(ctx.db, period.from, period.to, 'schedule', ctx.now());
  ctx.log.info({ reportId: report.id, ...period, rows: report.rows }, 'export-compliance report filed');
  return { reportId: report.id, rows: report.rows };
}
