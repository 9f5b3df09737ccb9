import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { openVerifiedReport, ReportTamperedError, type FiledReport } from '../../reports/export-compliance.js';
import { AppError } from '../errors.js';

/**
 * Sends a filed report, the same for the admin API and the admin area: checked against its filed
 * checksum and the chain before the first byte. A tampered report is refused (409 REPORT_TAMPERED),
 * logged at error level for staff, and marked in /admin/reports.
 */
export async function sendFiledReport(request: FastifyRequest, reply: FastifyReply, report: FiledReport, format: 'csv' | 'json') {
  let verified;
  try {
    verified = await openVerifiedReport(request.server.db, report, format, (problem) => {
      request.log.error({ reportId: report.id, problem }, 'export-compliance report integrity check failed');
    });
  } catch (err) {
    if (err instanceof ReportTamperedError) {
      throw new AppError('REPORT_TAMPERED', 409, `report ${report.id} is not sent: ${err.message}. Staff have been alerted (see /admin/reports).`);
    }
    throw err;
  }
  const name = `ferry-export-compliance-${report.from}-to-${report.to}-${report.id}.${format}`;
  reply
    .type(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/json; charset=utf-8')
    .header('content-disposition', `attachment; filename="${name}"`)
    .header('x-csv-sha256', report.checksum)
    .header('x-report-chain', verified.chainIntact ? 'intact' : 'broken');
  const body = Readable.from(verified.body);
  body.on('error', (err) => request.log.error({ reportId: report.id, err }, 'export-compliance report download cut short'));
  return reply.send(body);
}
