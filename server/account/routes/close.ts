import type { FastifyInstance } from 'fastify';
import type { RowDataPacket } from 'mysql2/promise';
import { formatDuration } from '../../../licensing/index.js';
import { inTransaction } from '../../licenses/repository.js';
import { eraseCustomer } from '../erase.js';
import { Form } from '../forms.js';
import { ACCOUNT_TEMPLATES, formatDate } from '../mail.js';
import { verifyPassword } from '../passwords.js';
import type { Portal } from '../plugin.js';
import { audit } from '../repository.js';

/** Cancel the subscription (data kept for the retention period), or delete the account now. */
export default async function closeRoutes(app: FastifyInstance, portal: Portal): Promise<void> {
  const signedIn = { config: { signedIn: true } };
  const retention = () => app.config.retainCancelledAccountsMs;

  const cancelPage = (cancelledAt: Date | null) => ({
    title: 'Cancel your subscription',
    retentionText: formatDuration(retention()),
    cancelledOn: cancelledAt ? formatDate(cancelledAt) : null,
    eraseOn: cancelledAt ? formatDate(new Date(cancelledAt.getTime() + retention())) : null,
  });

  app.get('/cancel', signedIn, async (request, reply) => {
    const account = portal.account(request);
    return portal.render(request, reply, 'cancel', cancelPage(account.status === 'cancelled' ? account.cancelled_at : null));
  });

  app.post('/cancel', signedIn, async (request, reply) => {
    const account = portal.account(request);
    if (account.status === 'cancelled') return reply.redirect('/account/cancel', 303);
    const form = new Form(request.body);
    if (!form.checked('confirm')) {
      form.fail('confirm', 'Tick the box to confirm that you want to cancel.');
      return portal.render(request, reply, 'cancel', { ...cancelPage(null), errors: form.errors }, 400);
    }
    const now = new Date();
    const ended = await inTransaction(app.db, async (tx) => {
      await tx.execute("UPDATE customers SET status = 'cancelled', cancelled_at = ?, updated_at = ? WHERE id = ? AND status = 'active'", [now, now, account.id]);
      // The subscription ends: its licenses stop at their next validation.
      const [licenses] = await tx.execute<RowDataPacket[]>(
        "SELECT id FROM licenses WHERE customer_id = ? AND kind = 'permanent' AND status = 'active' FOR UPDATE", [account.id],
      );
      await tx.execute("UPDATE licenses SET status = 'cancelled' WHERE customer_id = ? AND kind = 'permanent' AND status = 'active'", [account.id]);
      await tx.execute("UPDATE orders SET status = 'cancelled' WHERE customer_id = ? AND status = 'pending'", [account.id]);
      await audit.record(tx, account.id, 'account.cancelled', now);
      return licenses.map((row) => Number(row.id));
    });
    // Every server forgets what it cached of them: "next validation" means the next one anywhere.
    for (const id of ended) await app.licenses.licenseChanged(id);
    if (account.email) {
      await app.mail.enqueue({
        key: `account-cancelled:${account.id}:${now.getTime()}`,
        template: ACCOUNT_TEMPLATES.accountCancelled,
        to: account.email,
        customerId: account.id,
        data: { cancelledOn: formatDate(now), eraseOn: formatDate(new Date(now.getTime() + retention())) },
      });
    }
    return reply.redirect('/account/cancel?done=cancelled', 303);
  });

  const keptRows = async (customerId: number) => {
    const [rows] = await app.db.execute<RowDataPacket[]>(
      `SELECT COUNT(*) AS n, MIN(x.period_from) AS first_from, MAX(x.period_to) AS last_to
         FROM export_report_rows r JOIN export_reports x ON x.id = r.report_id WHERE r.customer_id = ?`,
      [customerId],
    );
    const row = rows[0] as { n: number; first_from: Date | null; last_to: Date | null };
    return { count: Number(row.n), from: row.first_from ? formatDate(row.first_from) : null, to: row.last_to ? formatDate(row.last_to) : null };
  };

  app.get('/delete', signedIn, async (request, reply) => {
    const account = portal.account(request);
    return portal.render(request, reply, 'delete', { title: 'Delete your account', kept: await keptRows(account.id) });
  });

  app.post('/delete', signedIn, async (request, reply) => {
    const account = portal.account(request);
    const form = new Form(request.body);
    const password = form.raw('password');
    if (password === '') form.fail('password', 'Enter your password to confirm.');
    else {
      // The password is asked again here: guessing it counts against the account like logins do.
      await portal.limits.loginPerAccount(request, account.email ?? '');
      if (!(await verifyPassword(password, account.password_hash))) form.fail('password', 'This is not your password.');
    }
    if (!form.ok) return portal.render(request, reply, 'delete', { title: 'Delete your account', kept: await keptRows(account.id), errors: form.errors }, 400);
    await audit.record(app.db, account.id, 'account.deletion_requested');
    const erased = await eraseCustomer({ db: app.db, redis: app.redis, mail: app.mail, config: app.config, log: request.log }, account.id, 'request');
    await portal.signOut(request, reply);
    return portal.render(request, reply, 'deleted', { title: 'Your account is deleted', keptExportReportRows: erased?.keptExportReportRows ?? 0 });
  });
}
