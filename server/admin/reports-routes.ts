import type { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { fileExportReport, findFiledReport } from '../../reports/export-compliance.js';
import { AppError } from '../errors.js';
import { errorResponses } from '../licenses/schemas.js';
import { sendFiledReport } from './report-download.js';

const Day = Type.String({ format: 'date', description: 'YYYY-MM-DD, UTC' });
const FiledReport = Type.Object({
  report: Type.Object({ id: Type.Integer(), from: Type.String(), to: Type.String(), rows: Type.Integer(), checksum: Type.String({ description: 'SHA-256 of the CSV' }) }),
});

/** Export-compliance reports: file one for any period, download a filed one (byte-identical each time). */
const reportRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.addHook('onRequest', app.requireAdmin);

  app.post('/v1/admin/reports/export', {
    schema: {
      tags: ['admin'],
      summary: 'File the export-compliance report of a period (non-U.S. businesses that bought or registered)',
      security: [{ adminToken: [] }],
      body: Type.Object({ from: Day, to: Day }, { additionalProperties: false }),
      response: { 201: FiledReport, ...errorResponses({ body: true }, 401) },
    },
  }, async (request, reply) => {
    const { from, to } = request.body;
    if (from > to) throw new AppError('PERIOD_INVALID', 400, `the period ends (${to}) before it starts (${from})`);
    const report = await fileExportReport(app.db, from, to, 'admin');
    request.log.info({ reportId: report.id, rows: report.rows }, 'export-compliance report filed');
    return reply.code(201).send({ report: { id: report.id, from, to, rows: report.rows, checksum: report.checksum } });
  });

  app.get('/v1/admin/reports/:file', {
    schema: {
      tags: ['admin'],
      summary: 'Download a filed report: `<id>.csv` or `<id>.json`',
      security: [{ adminToken: [] }],
      params: Type.Object({ file: Type.String({ pattern: '^[0-9]{1,18}\\.(csv|json)$' }) }),
      produces: ['text/csv', 'application/json'],
      response: {
        // A stream, sent as it is (not serialized): the schema is for the documentation.
        200: Type.Unsafe<Readable>({ type: 'string', description: 'The filed report as CSV or JSON, byte-identical each time; X-CSV-SHA256 is its checksum, X-Report-Chain `intact` or `broken`. Refused (409 REPORT_TAMPERED) when its rows no longer make the checksum' }),
        ...errorResponses({}, 401, 404, 409),
      },
    },
  }, async (request, reply) => {
    const [id, format] = request.params.file.split('.') as [string, 'csv' | 'json'];
    const report = await findFiledReport(app.db, Number(id));
    if (!report) throw new AppError('REPORT_NOT_FOUND', 404, `no filed report ${id}`);
    return sendFiledReport(request, reply, report, format);
  });
};

export default reportRoutes;
