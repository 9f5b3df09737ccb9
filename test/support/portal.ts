import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'mysql2/promise';
import type { Config } from '../../server/config.js';
import { request as jsonRequest } from './http.js';
import { newMachine } from './machines.js';
import { freePort } from './processes.js';
import { openDb, startServer, type TestServer } from './server.js';
import { startSmtp, type ReceivedMail, type TestSmtp } from './smtp.js';

/** A server whose mail links point at itself (PUBLIC_URL = its own address), sending to `smtp`. */
export async function startPortalServer(smtp: TestSmtp, overrides: Partial<Config> = {}): Promise<TestServer> {
  const port = await freePort();
  return startServer({ port, publicUrl: `http://127.0.0.1:${port}`, smtpUrl: smtp.url, ...overrides });
}

/** What a portal suite runs against: an SMTP server, a portal server sending to it, a pool on its database. */
export interface PortalWorld {
  smtp: TestSmtp;
  server: TestServer;
  db: Pool;
  close(): Promise<void>;
}

export async function startPortalWorld(overrides: Partial<Config> = {}): Promise<PortalWorld> {
  const smtp = await startSmtp();
  let server: TestServer | undefined;
  try {
    server = await startPortalServer(smtp, overrides);
    const db = await openDb(server.config.databaseUrl);
    const started = server;
    return {
      smtp, server, db,
      async close() {
        await db.end();
        await started.close();
        await smtp.close();
      },
    };
  } catch (err) {
    await server?.close();
    await smtp.close();
    throw err;
  }
}

export interface PageAnswer {
  status: number;
  headers: Headers;
  /** The body as text (HTML for pages). */
  html: string;
  location: string | null;
}

/**
 * A browser without JavaScript, over fetch: keeps cookies by hand, sends forms as
 * application/x-www-form-urlencoded, and reads the CSRF token from the page a form is on.
 */
export class PortalClient {
  readonly cookies = new Map<string, string>();
  constructor(readonly baseUrl: string, readonly userAgent = 'Mozilla/5.0 (X11; Linux x86_64) PortalTest/1.0') {}

  private remember(headers: Headers): void {
    for (const line of headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a) || (/^\s*expires=/i.test(a) && Date.parse(a.split('=')[1]!) < Date.now()));
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  async fetch(path: string, init: { method?: string; body?: string; contentType?: string; headers?: Record<string, string> } = {}): Promise<PageAnswer> {
    const headers: Record<string, string> = { 'user-agent': this.userAgent, ...init.headers };
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    if (init.body !== undefined) headers['content-type'] = init.contentType ?? 'application/x-www-form-urlencoded';
    const response = await fetch(`${this.baseUrl}${path}`, { method: init.method ?? (init.body === undefined ? 'GET' : 'POST'), headers, body: init.body, redirect: 'manual' });
    this.remember(response.headers);
    return { status: response.status, headers: response.headers, html: await response.text(), location: response.headers.get('location') };
  }

  get(path: string): Promise<PageAnswer> {
    return this.fetch(path);
  }

  /** Posts fields as a form would; `_csrf` only if given (see `submit` for the usual way). */
  post(path: string, fields: Record<string, string>): Promise<PageAnswer> {
    return this.fetch(path, { body: new URLSearchParams(fields).toString() });
  }

  /** Opens `page`, takes the CSRF token of its forms, and posts `fields` to `action` with it. */
  async submit(page: string, action: string, fields: Record<string, string>): Promise<PageAnswer> {
    const opened = await this.get(page);
    assert.equal(opened.status, 200, `${page} answered ${opened.status}: ${text(opened.html).slice(0, 300)}`);
    return this.post(action, { _csrf: csrfToken(opened.html), ...fields });
  }
}

export function csrfToken(html: string): string {
  const token = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
  assert.ok(token, 'the page has no CSRF token');
  return token;
}

/** The text of a page's <main>, tags removed, for messages a person reads. */
export function text(html: string): string {
  const main = /<main>([\s\S]*)<\/main>/.exec(html)?.[1] ?? html;
  return main.replace(/<[^>]+>/g, ' ').replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&amp;/g, '&').replace(/\s+/g, ' ').trim();
}

/** The error shown next to a field (the element with id `<field>-error`). */
export function fieldError(html: string, field: string): string | null {
  const match = new RegExp(`id="${field}-error"[^>]*>([\\s\\S]*?)</p>`).exec(html);
  return match ? match[1]!.replace(/<[^>]+>/g, '').replace(/^Error: /, '').trim() : null;
}

/** The first link in a message's text that starts with `prefix`. */
export function linkIn(mail: ReceivedMail, prefix: string): string {
  const escaped = prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const link = new RegExp(`${escaped}[^\\s<>"]+`).exec(mail.parsed.text ?? '')?.[0];
  assert.ok(link, `no link ${prefix}… in "${mail.parsed.subject}"`);
  return link;
}

let counter = 0;
export function uniqueEmail(tag: string): string {
  return `${tag}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}-${++counter}@example.org`;
}

export interface Person {
  email: string;
  password: string;
  name: string;
  organization: string;
  address: string;
  country: string;
}

export function newPerson(tag: string): Person {
  const id = randomBytes(4).toString('hex');
  return {
    email: uniqueEmail(tag),
    password: `correct horse ${id}`,
    name: `Ada Quillfeather ${id}`,
    organization: `Analytical Engines ${id} GmbH`,
    address: `${id} Engine Row, 10115 Berlin`,
    country: 'DE',
  };
}

/** Registers, follows the verification link from the mail, and logs in: a signed-in client. */
export async function signUp(server: TestServer, smtp: TestSmtp, person: Person, options: { news?: boolean } = {}): Promise<PortalClient> {
  const client = await registerAndVerify(server, smtp, person, options);
  await logIn(client, person);
  return client;
}

/** Registers and follows the verification link from the mail, without logging in. */
export async function registerAndVerify(server: TestServer, smtp: TestSmtp, person: Person, options: { news?: boolean } = {}): Promise<PortalClient> {
  const client = new PortalClient(server.url);
  const registered = await client.submit('/account/register', '/account/register', {
    email: person.email, password: person.password, name: person.name, type: 'business', organization: person.organization,
    address: person.address, country: person.country, age: 'yes', ...(options.news ? { news: 'yes' } : {}),
  });
  assert.equal(registered.status, 303, text(registered.html));
  const [mail] = await smtp.waitFor(person.email, 1);
  const link = new URL(linkIn(mail!, `${server.url}/account/verify?token=`));
  const verified = await client.get(link.pathname + link.search);
  assert.equal(verified.status, 200, text(verified.html));
  return client;
}

export async function logIn(client: PortalClient, person: Pick<Person, 'email' | 'password'>): Promise<PageAnswer> {
  const answer = await client.submit('/account/login', '/account/login', { email: person.email, password: person.password });
  assert.equal(answer.status, 303, `login failed: ${answer.status} ${text(answer.html)}`);
  return answer;
}

/**
 * A trial started the way `ferry activate --trial` does, with a few usage reports: its claim code and ids.
 * `ip`: the address it comes from, as X-Forwarded-For (for a server with `trustProxy`).
 */
export async function startTrial(server: TestServer, { ip, ...facts }: { hostname?: string; email?: string; ip?: string } = {}) {
  const fingerprint = newMachine();
  const headers = ip === undefined ? undefined : { 'x-forwarded-for': ip };
  const trial = await jsonRequest(`${server.url}/v1/trials`, { headers, body: { fingerprint, locale: 'de-DE', platform: 'linux', agentVersion: '0.1.0', ...facts } });
  assert.equal(trial.status, 201, JSON.stringify(trial.body));
  const usage = await jsonRequest(`${server.url}/v1/usage`, {
    headers,
    token: trial.body.token,
    body: { events: [{ at: new Date().toISOString(), locale: 'de-DE', kind: 'put' }, { at: new Date(Date.now() - 1000).toISOString(), locale: 'de-DE', kind: 'get' }] },
  });
  assert.equal(usage.status, 202, JSON.stringify(usage.body));
  return {
    claimCode: trial.body.license.claimCode as string, licenseId: trial.body.license.id as number,
    activationId: trial.body.activation.id as number, fingerprint, token: trial.body.token as string,
  };
}

/**
 * The portal's routes as the server has them (`GET /account/data`, …), read from Fastify's route
 * tree, so that a test can prove it covers every one; another prefix (`/v1`) gives those routes.
 */
export function portalRoutes(app: FastifyInstance, prefix = '/account'): string[] {
  const routes: string[] = [];
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^([│ ]*)(?:├── |└── )(.+?) \(([^)]+)\)$/.exec(line.replace(/\u00a0/g, ' '));
    if (!match) continue;
    const depth = match[1]!.length / 4;
    stack.length = depth;
    stack.push(match[2]!);
    const path = stack.join('');
    if (!path.startsWith(prefix)) continue;
    for (const method of match[3]!.split(', ')) if (method !== 'HEAD') routes.push(`${method} ${path.replace(/\/$/, '') || '/'}`);
  }
  return [...new Set(routes)].sort();
}
