import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import formbody from '@fastify/formbody';
import { readUnsubscribeLink } from './compose.js';

interface LinkQuery {
  e?: string;
  t?: string;
}

function page(reply: FastifyReply, status: number, title: string, body: string) {
  return reply
    .code(status)
    .type('text/html; charset=utf-8')
    .send(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Ferry</title><style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;line-height:1.5}button{font:inherit;padding:.4rem 1rem}</style></head>
<body><h1>${title}</h1>${body}</body></html>`);
}

const escape = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * One-click unsubscribe, without logging in. Following the link (GET) only shows the choice, with
 * one button: mail scanners and link previews fetch every link in a message, and must not
 * unsubscribe anyone. The button posts, as RFC 8058 mail clients do directly with
 * `List-Unsubscribe=One-Click`; the post takes effect at once. Its page offers to undo it, in case
 * a click was a mistake.
 */
const unsubscribeRoutes: FastifyPluginAsync = async (app) => {
  const secret = app.config.mailSecret;
  // Mail clients post `List-Unsubscribe=One-Click` as a form; only these routes take forms.
  await app.register(formbody);
  // Pages for people who follow a mailed link: not part of the API documented at /docs.
  app.addHook('onRoute', (route) => {
    route.schema = { ...route.schema, hide: true };
  });

  const optOut = async (email: string) => {
    await app.db.execute(
      "INSERT INTO mail_opt_outs (email, source, opted_out_at) VALUES (?, 'unsubscribe_link', ?) ON DUPLICATE KEY UPDATE email = email",
      [email.toLowerCase(), new Date()],
    );
  };

  const invalid = (reply: FastifyReply) =>
    page(reply, 400, 'This unsubscribe link is not valid', '<p>The link was changed or cut short. Use the link from the message as it is, or change your choices in <a href="/account">MyAccount</a>.</p>');

  /** The link's own query, for forms that post back to it. */
  const linkQuery = (e: string, t: string) => `e=${encodeURIComponent(e)}&amp;t=${encodeURIComponent(t)}`;

  app.get<{ Querystring: LinkQuery }>('/unsubscribe', async (request, reply) => {
    const { e = '', t = '' } = request.query;
    const email = readUnsubscribeLink(secret, e, t);
    if (!email) return invalid(reply);
    return page(reply, 200, 'Unsubscribe from Ferry reminders and news?',
      `<p>${escape(email)} will get no more reminders or news from Ferry. Service notices about your license are still sent.</p>
<form method="post" action="/unsubscribe?${linkQuery(e, t)}"><button type="submit">Unsubscribe</button></form>`);
  });

  app.post<{ Querystring: LinkQuery }>('/unsubscribe', async (request, reply) => {
    const { e = '', t = '' } = request.query;
    const email = readUnsubscribeLink(secret, e, t);
    if (!email) return invalid(reply);
    await optOut(email);
    request.log.info('unsubscribed by link');
    return page(reply, 200, 'You are unsubscribed',
      `<p>${escape(email)} will get no more reminders or news from Ferry. Service notices about your license are still sent.</p>
<form method="post" action="/unsubscribe/undo?${linkQuery(e, t)}"><button type="submit">Undo: keep sending me reminders</button></form>`);
  });

  app.post<{ Querystring: LinkQuery }>('/unsubscribe/undo', async (request, reply) => {
    const { e = '', t = '' } = request.query;
    const email = readUnsubscribeLink(secret, e, t);
    if (!email) return invalid(reply);
    await app.db.execute("DELETE FROM mail_opt_outs WHERE email = ? AND source = 'unsubscribe_link'", [email.toLowerCase()]);
    return page(reply, 200, 'Subscribed again', `<p>${escape(email)} will get Ferry's reminders again (and news, if you chose news).</p>`);
  });
};

export default unsubscribeRoutes;
