import type { FastifyInstance } from 'fastify';
import { inTransaction, isDuplicateKey } from '../../licenses/repository.js';
import { COUNTRIES, Form } from '../forms.js';
import { ACCOUNT_TEMPLATES, formatDateTime, LINK_LIFETIME } from '../mail.js';
import { hashPassword, verifyPassword } from '../passwords.js';
import type { Portal } from '../plugin.js';
import { accounts, audit, consent, optOuts, tokens, type CustomerType } from '../repository.js';

/** Where to go after logging in: only a page of the portal (never another site). */
function safeNext(next: unknown): string {
  return typeof next === 'string' && /^\/account(\/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$/.test(next) && !next.startsWith('/account//') ? next : '/account/data';
}

/** Register, verify the address, log in and out, reset a forgotten password. */
export default async function authRoutes(app: FastifyInstance, portal: Portal): Promise<void> {
  const { limits } = portal;

  const sendVerification = async (customerId: number, email: string, newEmail: string | null) => {
    const now = new Date();
    await tokens.spendAll(app.db, customerId, 'verify_email', now);
    const { id, token } = await tokens.issue(app.db, customerId, 'verify_email', LINK_LIFETIME.verifyEmail.ms, now, newEmail);
    await app.mail.enqueue({
      key: `verify-email:${customerId}:${id}`,
      template: ACCOUNT_TEMPLATES.verifyEmail,
      to: newEmail ?? email,
      customerId,
      data: { link: portal.link(`/account/verify?token=${token}`), validFor: LINK_LIFETIME.verifyEmail.text, change: newEmail !== null },
    });
  };

  app.get('/', async (request, reply) => reply.redirect(request.signedIn ? '/account/data' : '/account/login', 303));

  app.get('/register', async (request, reply) => {
    if (request.signedIn) return reply.redirect('/account/data', 303);
    return portal.render(request, reply, 'register', { title: 'Create your account', countries: COUNTRIES, values: { type: 'individual' } });
  });

  app.post('/register', async (request, reply) => {
    await limits.formsPerAddress(request, request.ip);
    const form = new Form(request.body);
    const email = form.email('email');
    const password = form.newPassword('password');
    const name = form.required('name', 'your name', 200);
    const type = form.choice<CustomerType>('type', ['business', 'individual'], 'Choose whether you buy as a business or as an individual.');
    const organization = type === 'business' ? form.required('organization', 'the name of your company or organization', 200) : null;
    const address = form.required('address', 'your postal address', 500);
    const country = form.country('country');
    const age = form.checked('age');
    if (!age) form.fail('age', 'You must be 13 or older to have a Ferry account.');
    const news = form.checked('news');
    if (!form.ok) {
      // What was ticked stays ticked: a mistake in another field must not undo a confirmation.
      const values = { email, name, type, organization, address, country, news, age };
      return portal.render(request, reply, 'register', { title: 'Create your account', countries: COUNTRIES, values, errors: form.errors }, 400);
    }
    await limits.mailPerAccount(request, email);

    const now = new Date();
    const passwordHash = await hashPassword(password);
    let customerId: number | null = null;
    try {
      customerId = await inTransaction(app.db, async (tx) => {
        const id = await accounts.insert(tx, { type, name, organization, address, country, email, passwordHash, marketingOptIn: news }, now);
        await consent.record(tx, id, 'news', news, 'registration', now);
        await audit.record(tx, id, 'account.registered', now);
        return id;
      });
    } catch (err) {
      if (!isDuplicateKey(err, 'customers_account_email')) throw err;
    }
    if (customerId !== null) {
      await sendVerification(customerId, email, null);
    } else {
      // The address has an account: say so to its owner only, so this page does not tell a stranger.
      const existing = await accounts.byEmail(app.db, email);
      if (existing) {
        await app.mail.enqueue({
          key: `account-exists:${existing.id}:${now.getTime()}`,
          template: ACCOUNT_TEMPLATES.accountExists,
          to: email,
          customerId: existing.id,
          data: { loginUrl: portal.link('/account/login'), resetUrl: portal.link('/account/password/forgot') },
        });
      }
    }
    return reply.redirect('/account/check-email', 303);
  });

  app.get('/check-email', async (request, reply) =>
    portal.render(request, reply, 'check-email', { title: 'Check your mail' }));

  app.post('/verify/resend', async (request, reply) => {
    await limits.formsPerAddress(request, request.ip);
    const form = new Form(request.body);
    const email = form.email('email');
    if (!form.ok) return portal.render(request, reply, 'check-email', { title: 'Check your mail', values: { email }, errors: form.errors }, 400);
    await limits.mailPerAccount(request, email);
    const account = await accounts.byEmail(app.db, email);
    if (account && !account.email_verified_at) await sendVerification(account.id, email, null);
    return reply.redirect('/account/check-email', 303);
  });

  app.get<{ Querystring: { token?: string } }>('/verify', async (request, reply) => {
    const now = new Date();
    const token = await tokens.spend(app.db, String(request.query.token ?? ''), 'verify_email', now);
    const account = token ? await accounts.byId(app.db, token.customer_id) : null;
    if (!token || !account || !account.email) {
      return portal.render(request, reply, 'message', {
        title: 'This link does not work any more',
        message: 'Links in our mail work once and for 48 hours. Log in to have a new one sent, or register again.',
        links: [{ href: '/account/login', text: 'Log in' }, { href: '/account/register', text: 'Register' }],
      }, 400);
    }
    if (token.new_email) {
      const oldEmail = account.email;
      const newEmail = token.new_email;
      try {
        await inTransaction(app.db, async (tx) => {
          await accounts.changeEmail(tx, account.id, newEmail, now);
          // The customer's choices and licenses follow the address.
          await tx.execute('UPDATE licenses SET email = ? WHERE customer_id = ? AND email = ?', [newEmail, account.id, oldEmail]);
          if (await optOuts.of(tx, oldEmail)) {
            await optOuts.remove(tx, oldEmail);
            await optOuts.add(tx, newEmail, now);
          }
          await audit.record(tx, account.id, 'email.changed', now);
        });
      } catch (err) {
        if (!isDuplicateKey(err, 'customers_account_email')) throw err;
        return portal.render(request, reply, 'message', {
          title: 'This address is taken',
          message: 'Another account uses this address now, so your address was not changed.',
          links: [{ href: '/account/email', text: 'Change your email address' }],
        }, 409);
      }
      await app.mail.enqueue({
        key: `email-changed:${account.id}:${token.id}`,
        template: ACCOUNT_TEMPLATES.emailChanged,
        to: oldEmail,
        customerId: account.id,
        data: { changedAt: formatDateTime(now) },
      });
      return portal.render(request, reply, 'message', {
        title: 'Your new email address is confirmed',
        message: `From now on we write to ${newEmail}, and you log in with it.`,
        links: [{ href: '/account/data', text: 'Go to My data' }],
      });
    }
    await accounts.markVerified(app.db, account.id, now);
    await audit.record(app.db, account.id, 'account.email_verified', now);
    return portal.render(request, reply, 'message', {
      title: 'Your email address is confirmed',
      message: 'Thank you. You can now log in to your account.',
      links: [{ href: request.signedIn ? '/account/data' : '/account/login', text: request.signedIn ? 'Go to My data' : 'Log in' }],
    });
  });

  app.get<{ Querystring: { next?: string } }>('/login', async (request, reply) => {
    if (request.signedIn) return reply.redirect('/account/data', 303);
    return portal.render(request, reply, 'login', { title: 'Log in', next: safeNext(request.query.next) });
  });

  app.post('/login', async (request, reply) => {
    const form = new Form(request.body);
    const email = form.email('email');
    const password = form.raw('password');
    const next = safeNext(form.text('next'));
    if (password === '') form.fail('password', 'Enter your password.');
    if (!form.ok) return portal.render(request, reply, 'login', { title: 'Log in', next, values: { email }, errors: form.errors }, 400);
    // Counted per client address and per account, before the password is looked at.
    await limits.loginPerAddress(request, request.ip);
    await limits.loginPerAccount(request, email);
    const account = await accounts.byEmail(app.db, email);
    // Unknown addresses cost the same hashing time and get the same words as a wrong password.
    const right = await verifyPassword(password, account?.password_hash ?? null);
    if (!account || !right) {
      return portal.render(request, reply, 'login', {
        title: 'Log in', next, values: { email },
        errors: { password: 'The email address or the password is not right.' },
      }, 401);
    }
    if (!account.email_verified_at) {
      return portal.render(request, reply, 'check-email', {
        title: 'Confirm your email address first',
        unverified: true,
        values: { email },
      }, 403);
    }
    // A fresh session id at every login; a session this browser had before ends.
    if (request.signedIn) await portal.signOut(request, reply);
    await portal.signIn(reply, account.id);
    await audit.record(app.db, account.id, 'account.login');
    return reply.redirect(next, 303);
  });

  app.post('/logout', { config: { signedIn: true } }, async (request, reply) => {
    const account = portal.account(request);
    await portal.signOut(request, reply);
    await audit.record(app.db, account.id, 'account.logout');
    return reply.redirect('/account/login?done=logged-out', 303);
  });

  app.get('/password/forgot', async (request, reply) =>
    portal.render(request, reply, 'forgot', { title: 'Forgot your password?' }));

  app.post('/password/forgot', async (request, reply) => {
    await limits.formsPerAddress(request, request.ip);
    const form = new Form(request.body);
    const email = form.email('email');
    if (!form.ok) return portal.render(request, reply, 'forgot', { title: 'Forgot your password?', values: { email }, errors: form.errors }, 400);
    await limits.mailPerAccount(request, email);
    const account = await accounts.byEmail(app.db, email);
    if (account) {
      const now = new Date();
      await tokens.spendAll(app.db, account.id, 'reset_password', now);
      const { id, token } = await tokens.issue(app.db, account.id, 'reset_password', LINK_LIFETIME.resetPassword.ms, now);
      await app.mail.enqueue({
        key: `password-reset:${account.id}:${id}`,
        template: ACCOUNT_TEMPLATES.passwordReset,
        to: email,
        customerId: account.id,
        data: { link: portal.link(`/account/password/reset?token=${token}`), validFor: LINK_LIFETIME.resetPassword.text },
      });
    }
    return portal.render(request, reply, 'message', {
      title: 'Check your mail',
      message: `If an account has the address ${email}, we have sent it a link to choose a new password. The link works once and for ${LINK_LIFETIME.resetPassword.text}.`,
    });
  });

  const expiredReset = {
    title: 'This link does not work any more',
    message: `A password link works once and for ${LINK_LIFETIME.resetPassword.text}. Ask for a new one.`,
    links: [{ href: '/account/password/forgot', text: 'Send me a new link' }],
  };

  app.get<{ Querystring: { token?: string } }>('/password/reset', async (request, reply) => {
    const token = String(request.query.token ?? '');
    if (!(await tokens.find(app.db, token, 'reset_password', new Date()))) return portal.render(request, reply, 'message', expiredReset, 400);
    return portal.render(request, reply, 'reset', { title: 'Choose a new password', token });
  });

  app.post('/password/reset', async (request, reply) => {
    const form = new Form(request.body);
    const token = form.text('token');
    const password = form.newPassword('password');
    if (!form.ok) return portal.render(request, reply, 'reset', { title: 'Choose a new password', token, errors: form.errors }, 400);
    const now = new Date();
    const passwordHash = await hashPassword(password);
    const spent = await inTransaction(app.db, async (tx) => {
      const row = await tokens.spend(tx, token, 'reset_password', now);
      if (!row) return null;
      await accounts.setPassword(tx, row.customer_id, passwordHash, now);
      // The link came by mail: following it proves the address too.
      await accounts.markVerified(tx, row.customer_id, now);
      await audit.record(tx, row.customer_id, 'password.reset', now);
      return row;
    });
    if (!spent) return portal.render(request, reply, 'message', expiredReset, 400);
    await portal.sessions.destroyAllOf(spent.customer_id);
    const account = await accounts.byId(app.db, spent.customer_id);
    if (account?.email) {
      await app.mail.enqueue({
        key: `password-changed:${account.id}:reset-${spent.id}`,
        template: ACCOUNT_TEMPLATES.passwordChanged,
        to: account.email,
        customerId: account.id,
        data: { changedAt: formatDateTime(now), resetUrl: portal.link('/account/password/forgot') },
      });
    }
    return reply.redirect('/account/login?done=password-reset', 303);
  });
}
