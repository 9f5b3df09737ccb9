import type { FastifyInstance } from 'fastify';
import { inTransaction } from '../../licenses/repository.js';
import { COUNTRIES, Form } from '../forms.js';
import { ACCOUNT_TEMPLATES, formatDateTime, LINK_LIFETIME } from '../mail.js';
import { hashPassword, verifyPassword } from '../passwords.js';
import type { Portal } from '../plugin.js';
import { accounts, audit, consent, optOuts, tokens, type AccountRow, type CustomerType } from '../repository.js';

/** The customer's mail choices, from the strongest "no" to the widest "yes". */
const MAIL_CHOICES = ['none', 'reminders', 'all'] as const;
type MailChoice = (typeof MAIL_CHOICES)[number];

async function mailChoice(app: FastifyInstance, account: AccountRow): Promise<MailChoice> {
  if (account.email && (await optOuts.of(app.db, account.email))) return 'none';
  return account.marketing_opt_in === 1 ? 'all' : 'reminders';
}

/** Correct: profile and address, email (verified again), password (the current one required); mail choices. */
export default async function settingsRoutes(app: FastifyInstance, portal: Portal): Promise<void> {
  const signedIn = { config: { signedIn: true } };

  const profileValues = (a: AccountRow) => ({ type: a.type, name: a.name, organization: a.organization, address: a.address, country: a.country });

  app.get('/profile', signedIn, async (request, reply) => {
    const account = portal.account(request);
    return portal.render(request, reply, 'profile', { title: 'Profile and address', countries: COUNTRIES, values: profileValues(account) });
  });

  app.post('/profile', signedIn, async (request, reply) => {
    const account = portal.account(request);
    const form = new Form(request.body);
    const type = form.choice<CustomerType>('type', ['business', 'individual'], 'Choose whether you buy as a business or as an individual.');
    const name = form.required('name', 'your name', 200);
    const organization = type === 'business' ? form.required('organization', 'the name of your company or organization', 200) : null;
    const address = form.required('address', 'your postal address', 500);
    const country = form.country('country');
    if (!form.ok) {
      return portal.render(request, reply, 'profile', {
        title: 'Profile and address', countries: COUNTRIES, values: { type, name, organization, address, country }, errors: form.errors,
      }, 400);
    }
    const now = new Date();
    await accounts.updateProfile(app.db, account.id, { type, name, organization, address, country }, now);
    await audit.record(app.db, account.id, 'profile.corrected', now);
    return reply.redirect('/account/profile?done=profile-saved', 303);
  });

  app.get('/email', signedIn, async (request, reply) =>
    portal.render(request, reply, 'email', { title: 'Email address', current: portal.account(request).email }));

  app.post('/email', signedIn, async (request, reply) => {
    const account = portal.account(request);
    const form = new Form(request.body);
    const email = form.email('email');
    const password = form.raw('password');
    if (form.ok && email === account.email) form.fail('email', 'This is already your address.');
    if (password === '') form.fail('password', 'Enter your current password.');
    else if (!(await verifyPassword(password, account.password_hash))) form.fail('password', 'This is not your current password.');
    if (!form.ok) return portal.render(request, reply, 'email', { title: 'Email address', current: account.email, values: { email }, errors: form.errors }, 400);
    // The same limits as registration and password reset: this form mails whatever address it is given.
    await portal.limits.formsPerAddress(request, request.ip);
    await portal.limits.mailPerAccount(request, email);
    const now = new Date();
    const other = await accounts.byEmail(app.db, email);
    if (other && other.id !== account.id) {
      // Whose address it is stays unsaid here; its owner is told instead (and nothing changes).
      await app.mail.enqueue({
        key: `email-in-use:${other.id}:${now.getTime()}`,
        template: ACCOUNT_TEMPLATES.emailInUse,
        to: email,
        customerId: other.id,
        data: { loginUrl: portal.link('/account/login'), resetUrl: portal.link('/account/password/forgot') },
      });
    } else {
      await tokens.spendAll(app.db, account.id, 'verify_email', now);
      const { id, token } = await tokens.issue(app.db, account.id, 'verify_email', LINK_LIFETIME.verifyEmail.ms, now, email);
      await app.mail.enqueue({
        key: `verify-email:${account.id}:${id}`,
        template: ACCOUNT_TEMPLATES.verifyEmail,
        to: email,
        customerId: account.id,
        data: { link: portal.link(`/account/verify?token=${token}`), validFor: LINK_LIFETIME.verifyEmail.text, change: true },
      });
    }
    await audit.record(app.db, account.id, 'email.change_requested', now);
    return portal.render(request, reply, 'message', {
      title: 'Confirm your new address',
      message: `Check ${email} for a link. Your address changes when you follow it (within ${LINK_LIFETIME.verifyEmail.text}); until then we keep writing to ${account.email}.`,
      links: [{ href: '/account/data', text: 'Back to My data' }],
    });
  });

  app.get('/password', signedIn, async (request, reply) => portal.render(request, reply, 'password', { title: 'Password' }));

  app.post('/password', signedIn, async (request, reply) => {
    const account = portal.account(request);
    const form = new Form(request.body);
    const current = form.raw('current');
    const password = form.newPassword('password');
    if (current === '') form.fail('current', 'Enter your current password.');
    else if (!(await verifyPassword(current, account.password_hash))) form.fail('current', 'This is not your current password.');
    if (!form.ok) return portal.render(request, reply, 'password', { title: 'Password', errors: form.errors }, 400);
    const now = new Date();
    await accounts.setPassword(app.db, account.id, await hashPassword(password), now);
    await audit.record(app.db, account.id, 'password.changed', now);
    // Whoever else was logged in with the old password is logged out; this session stays.
    await portal.sessions.destroyAllOf(account.id, portal.session(request));
    if (account.email) {
      await app.mail.enqueue({
        key: `password-changed:${account.id}:${now.getTime()}`,
        template: ACCOUNT_TEMPLATES.passwordChanged,
        to: account.email,
        customerId: account.id,
        data: { changedAt: formatDateTime(now), resetUrl: portal.link('/account/password/forgot') },
      });
    }
    return reply.redirect('/account/password?done=password-changed', 303);
  });

  app.get('/communications', signedIn, async (request, reply) => {
    const account = portal.account(request);
    return portal.render(request, reply, 'communications', { title: 'Mail from Ferry', values: { choice: await mailChoice(app, account) }, email: account.email });
  });

  app.post('/communications', signedIn, async (request, reply) => {
    const account = portal.account(request);
    const form = new Form(request.body);
    const choice = form.choice<MailChoice>('choice', MAIL_CHOICES, 'Choose which mail you want.');
    if (!form.ok || !account.email) {
      return portal.render(request, reply, 'communications', { title: 'Mail from Ferry', values: { choice }, email: account.email, errors: form.errors }, 400);
    }
    const email = account.email;
    const before = await mailChoice(app, account);
    const now = new Date();
    // Effective at once: the mail service checks the opt-out list when it sends, not when it queues.
    await inTransaction(app.db, async (tx) => {
      const news = choice === 'all';
      if (news !== (account.marketing_opt_in === 1)) {
        await accounts.setNews(tx, account.id, news);
        await consent.record(tx, account.id, 'news', news, 'account', now);
      }
      const wantsMarketing = choice !== 'none';
      if (wantsMarketing !== (before !== 'none')) {
        if (wantsMarketing) await optOuts.remove(tx, email);
        else await optOuts.add(tx, email, now);
        await consent.record(tx, account.id, 'marketing_mail', wantsMarketing, 'account', now);
      }
      if (choice !== before) await audit.record(tx, account.id, 'mail_choices.changed', now);
    });
    return reply.redirect('/account/communications?done=mail-choices-saved', 303);
  });
}
