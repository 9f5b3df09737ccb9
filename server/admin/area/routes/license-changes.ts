import type { FastifyInstance } from 'fastify';
import type { ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { AppError } from '../../../errors.js';
import { licenseEvents } from '../../../licenses/repository.js';
import { REBIND_REASON_TEXT, rebinds } from '../../../licenses/rebinds-repository.js';
import { machineName, setSeats } from '../../../licenses/seats.js';
import { MAX_SEATS_PER_LICENSE } from '../../../account/orders.js';
import { isDay } from '../format.js';
import { field, type FieldErrors } from '../forms.js';
import type { AdminPages } from '../pages.js';
import { findLicense } from '../queries.js';
import { licenseId } from './licenses.js';

const EVENTS_SHOWN = 200;
const REBINDS_SHOWN = 50;
/** The most moves a year staff may allow one license (the column is a SMALLINT). */
const MAX_REBIND_BUDGET = 1_000;

/** License events that are a refusal of a machine, and how staff read them. */
const REFUSALS: Record<string, string> = {
  seat_refused: 'activation refused: every seat in use',
  activation_velocity: 'activation refused: too many new machines too fast',
  rebind_refused: 'move to a new machine id refused',
  trial_moved: 'trial asked for where it had moved away from',
  trial_repeat: 'trial asked for again without its activation secret',
  wrong_machine: 'token shown by another machine',
};
const DAY_MS = 86_400_000;

/**
 * One license with its machines and its history, and what staff may change about it: suspend and
 * reinstate (unlike revoking, not final), extend a trial, set a permanent license's seats. Every
 * change is a license event, shown on this page.
 */
export default async function licenseChangeRoutes(app: FastifyInstance, pages: AdminPages): Promise<void> {
  const found = async (idText: string) => {
    const id = licenseId(idText);
    const license = await findLicense(app.db, id, new Date());
    if (!license) throw new AppError('LICENSE_NOT_FOUND', 404, `There is no license ${id}.`);
    return license;
  };

  const detailPage = async (idText: string, extra: Record<string, unknown> = {}) => {
    const license = await found(idText);
    const [machines] = await app.db.query<RowDataPacket[]>(
      `SELECT id, fingerprint, active, hostname, platform, agent_version, created_at, last_validated_at, deactivated_at, converted_from_license_id
         FROM activations WHERE license_id = ? ORDER BY active DESC, id`,
      [license.id],
    );
    const [events] = await app.db.query<RowDataPacket[]>(
      'SELECT kind, fingerprint, detail, occurred_at FROM license_events WHERE license_id = ? ORDER BY occurred_at DESC, id DESC LIMIT ?',
      [license.id, EVENTS_SHOWN],
    );
    const refusals = await app.db.query<RowDataPacket[]>(
      `SELECT kind, fingerprint, detail, occurred_at FROM license_events WHERE license_id = ? AND kind IN (?)
        ORDER BY occurred_at DESC, id DESC LIMIT ?`,
      [license.id, Object.keys(REFUSALS), EVENTS_SHOWN],
    );
    const moves = await rebinds.ofLicense(app.db, license.id, REBINDS_SHOWN);
    return {
      title: `License ${license.id}`, license, machines, events, values: {}, errors: {},
      refusals: refusals[0], refusalText: REFUSALS, moves, reasonText: REBIND_REASON_TEXT,
      rebindBudget: await app.rebinds.budget(license.id), defaultRebindBudget: app.rebinds.defaultBudget,
      ...extra,
    };
  };

  app.get('/licenses/:id', async (request, reply) => pages.render(request, reply, 'license', await detailPage((request.params as { id: string }).id)));

  /** Sets the status from `from` to `to`; false when the license was not in `from`. */
  const changeStatus = async (id: number, from: string, to: string): Promise<boolean> => {
    const [result] = await app.db.execute<ResultSetHeader>('UPDATE licenses SET status = ? WHERE id = ? AND status = ?', [to, id, from]);
    // Every server drops its cached copy: a suspension is refused at the next check-in anywhere.
    if (result.affectedRows === 1) await app.licenses.licenseChanged(id);
    return result.affectedRows === 1;
  };

  app.post('/licenses/:id/suspend', async (request, reply) => {
    const license = await found((request.params as { id: string }).id);
    if (await changeStatus(license.id, 'active', 'suspended')) {
      await licenseEvents.record(app.db, license.id, 'suspended', null, null, new Date(), 'by staff');
      request.log.info({ licenseId: license.id, via: 'admin area' }, 'license suspended');
    }
    return reply.redirect(`/admin/licenses/${license.id}?done=suspended`, 303);
  });

  app.post('/licenses/:id/reinstate', async (request, reply) => {
    const license = await found((request.params as { id: string }).id);
    if (await changeStatus(license.id, 'suspended', 'active')) {
      await licenseEvents.record(app.db, license.id, 'reinstated', null, null, new Date(), 'by staff');
      request.log.info({ licenseId: license.id, via: 'admin area' }, 'license reinstated');
    }
    return reply.redirect(`/admin/licenses/${license.id}?done=reinstated`, 303);
  });

  app.post('/licenses/:id/extend', async (request, reply) => {
    const idText = (request.params as { id: string }).id;
    const license = await found(idText);
    const ends = field(request.body, 'ends');
    const errors: FieldErrors = {};
    const endsAt = isDay(ends) ? new Date(`${ends}T23:59:59.999Z`) : null;
    if (license.kind !== 'trial') errors.ends = 'Only a trial has an end to extend.';
    else if (!endsAt) errors.ends = 'Enter the new last day of the trial as YYYY-MM-DD, such as 2026-03-31.';
    else if (endsAt.getTime() <= Date.now()) errors.ends = 'Enter a day that is still to come.';
    else if (endsAt.getTime() > Date.now() + 366 * DAY_MS) errors.ends = 'A trial can be extended by a year at most.';
    if (Object.keys(errors).length > 0) return pages.render(request, reply, 'license', await detailPage(idText, { values: { ends }, errors }), 400);
    await app.db.execute('UPDATE licenses SET expires_at = ? WHERE id = ?', [endsAt, license.id]);
    await app.licenses.licenseChanged(license.id);
    await licenseEvents.record(app.db, license.id, 'extended', null, null, new Date(), `ends ${endsAt!.toISOString()} (was ${license.expiresAt?.toISOString() ?? 'none'})`);
    request.log.info({ licenseId: license.id, endsAt, via: 'admin area' }, 'trial extended');
    return reply.redirect(`/admin/licenses/${license.id}?done=extended`, 303);
  });

  // The license's own budget of moves to a new machine id a year: raised, a refused machine can move at once.
  app.post('/licenses/:id/rebind-budget', async (request, reply) => {
    const idText = (request.params as { id: string }).id;
    const license = await found(idText);
    const text = field(request.body, 'budget');
    const budget = Number(text);
    if (!/^\d{1,4}$/.test(text) || budget > MAX_REBIND_BUDGET) {
      return pages.render(request, reply, 'license', await detailPage(idText, {
        values: { budget: text }, errors: { budget: `Enter the moves a year: a whole number from 0 to ${MAX_REBIND_BUDGET.toLocaleString('en')}.` },
      }), 400);
    }
    const before = await app.rebinds.budget(license.id);
    await rebinds.setOwnBudget(app.db, license.id, budget);
    await licenseEvents.record(app.db, license.id, 'rebind_budget_changed', null, null, new Date(), `${before.budget} → ${budget} a year (by staff)`);
    request.log.info({ licenseId: license.id, budget, via: 'admin area' }, 'rebind budget changed');
    return reply.redirect(`/admin/licenses/${license.id}?done=rebind-budget-changed`, 303);
  });

  app.post('/licenses/:id/seats', async (request, reply) => {
    const idText = (request.params as { id: string }).id;
    const license = await found(idText);
    const text = field(request.body, 'seats');
    const seats = Number(text);
    const refuse = async (message: string, status = 400) =>
      pages.render(request, reply, 'license', await detailPage(idText, { values: { seats: text }, errors: { seats: message } }), status);
    if (license.kind !== 'permanent') return refuse('A trial has one seat; only a permanent license changes its seats.');
    if (!/^\d{1,6}$/.test(text) || seats < 1 || seats > MAX_SEATS_PER_LICENSE) return refuse(`Enter the seats: a whole number from 1 to ${MAX_SEATS_PER_LICENSE.toLocaleString('en')}.`);
    const change = await setSeats(app.db, license.id, seats, { customerId: null, why: 'by staff' });
    if (change.changed) await app.licenses.licenseChanged(license.id);
    if (!change.changed && change.reason === 'machines-in-use') {
      return refuse(`${change.inUse.length} machines use this license: deactivate ${change.inUse.length - seats} first (${change.inUse.map(machineName).join(', ')}).`, 409);
    }
    request.log.info({ licenseId: license.id, seats, via: 'admin area' }, 'license seats changed');
    return reply.redirect(`/admin/licenses/${license.id}?done=seats-changed`, 303);
  });
}
