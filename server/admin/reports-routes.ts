import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { fileExportReport, findFiledReport, reportCsv, reportJson } from '../../reports/export-compliance.js';
import { AppError } from '../errors.js';
import { errorResponses } from '../licenses/schemas.js';

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
        200: Type.Unsafe<Readable>({ type: 'string', description: 'The filed report as CSV or JSON, byte-identical each time; X-CSV-SHA256 is its checksum' }),
        ...errorResponses({}, 401, 404),
      },
    },
  }, async (request, reply) => {
    const [id, format] = request.params.file.split('.') as [string, 'csv' | 'json'];
    const report = await findFiledReport(app.db, Number(id));
    if (!report) throw new AppError('REPORT_NOT_FOUND', 404, `no filed report ${id}`);
    const name = `ferry-export-compliance-${report.from}-to-${report.to}-${report.id}.${format}`;
    reply
      .type(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/json; charset=utf-8')
      .header('content-disposition', `attachment; filename="${name}"`)
      .header('x-csv-sha256', report.checksum);
    return reply.send(Readable.from(format === 'csv' ? reportCsv(app.db, report) : reportJson(app.db, report)));
  });
};

export default reportRoutes;
