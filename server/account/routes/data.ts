import type { FastifyInstance } from 'fastify';
import type { RowDataPacket } from 'mysql2/promise';
import { AppError } from '../../errors.js';
import { activations, licenseEvents } from '../../licenses/repository.js';
import { countryName } from '../forms.js';
import { collectMyData } from '../my-data.js';
import { formatAmount } from '../orders.js';
import type { Portal } from '../plugin.js';
import { audit } from '../repository.js';

/** The usage table on the page shows the latest reports; data.json has them all. */
const USAGE_ROWS_ON_PAGE = 50;

/** My data: everything held about the customer, on a page and as one JSON file; machines can be deactivated. */
export default async function dataRoutes(app: FastifyInstance, portal: Portal): Promise<void> {
  app.get('/data', { config: { signedIn: true } }, async (request, reply) => {
    const account = portal.account(request);
    const data = await collectMyData(app.db, account);
    await audit.record(app.db, account.id, 'data.viewed');
    return portal.render(request, reply, 'data', {
      title: 'My data',
      data,
      countryName: countryName(account.country),
      usageShown: data.usageReports.slice(0, USAGE_ROWS_ON_PAGE),
      formatAmount,
    });
  });

  app.get('/data.json', { config: { signedIn: true } }, async (request, reply) => {
    const account = portal.account(request);
    const data = await collectMyData(app.db, account);
    await audit.record(app.db, account.id, 'data.exported');
    const now = new Date();
    return reply
      .type('application/json; charset=utf-8')
      .header('content-disposition', `attachment; filename="ferry-my-data-${now.toISOString().slice(0, 10)}.json"`)
      .send(JSON.stringify({ exportedAt: now.toISOString(), service: 'Ferry', ...data }, null, 2));
  });

  app.post<{ Params: { id: string } }>('/machines/:id/deactivate', { config: { signedIn: true } }, async (request, reply) => {
    const account = portal.account(request);
    const id = Number(request.params.id);
    // Only a machine of one of the customer's own licenses; any other id is "not found", not "forbidden".
    const [rows] = Number.isSafeInteger(id) && id > 0
      ? await app.db.execute<RowDataPacket[]>(
        'SELECT a.id, a.license_id, a.fingerprint, a.active FROM activations a JOIN licenses l ON l.id = a.license_id WHERE a.id = ? AND l.customer_id = ?',
        [id, account.id],
      )
      : [[]];
    const machine = rows[0] as { id: number; license_id: number; fingerprint: string; active: number } | undefined;
    if (!machine) throw new AppError('MACHINE_NOT_FOUND', 404, 'You have no machine with this number.');
    if (machine.active === 1) {
      const now = new Date();
      await activations.deactivate(app.db, machine.id, now);
      await app.licenses.licenseChanged(machine.license_id);
      await licenseEvents.record(app.db, machine.license_id, 'deactivated', machine.fingerprint, null, now);
      await audit.record(app.db, account.id, 'machine.deactivated', now);
    }
    return reply.redirect('/account/data?done=machine-deactivated#licenses', 303);
  });
}
