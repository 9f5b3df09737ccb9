import assert from 'node:assert/strict';
import type { Pool } from 'mysql2/promise';
import { launchChromium, screenshot } from './support/browser.js';
import { request } from './support/http.js';
import { PortalClient, portalRoutes, text } from './support/portal.js';
import { startServerWorld, type ServerWorld, type TestServer } from './support/server.js';

/**
 * What an operator meets first: the landing page at /, the API documentation at /docs, the way
 * back from the queue dashboard, and statistics before the first roll-up.
 */

/** The errors each API call answers besides 400 and 503 (and 413/415 with a body, 401 with a credential): README's API table. */
const CALL_ERRORS: Record<string, number[]> = {
  'POST /v1/trials': [403, 429],
  'POST /v1/activations': [403, 404, 409, 429],
  'POST /v1/validate': [401, 403],
  'DELETE /v1/activations/{id}': [401, 403, 404],
  'POST /v1/activations/{id}/rebind-challenge': [401, 403, 404, 429],
  'POST /v1/activations/{id}/rebind': [401, 403, 404, 409, 429],
  'POST /v1/usage': [401, 403],
  'POST /v1/admin/licenses': [401],
  'POST /v1/admin/licenses/{id}/revoke': [401, 404],
  'POST /v1/admin/reports/export': [401],
  'GET /v1/admin/reports/{file}': [401, 404],
};

describe('Landing page, API documentation, admin area additions', function () {
  this.timeout(60_000);
  let server: TestServer;
  let db: Pool;

  let world: ServerWorld;
  before(async () => {
    world = await startServerWorld();
    ({ server, db } = world);
  });
  after(() => world?.close());

  it('GET / is a page that leads to the download, MyAccount and the docs, without script or cookies', async () => {
    const res = await fetch(`${server.url}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    assert.doesNotMatch(res.headers.get('content-security-policy') ?? '', /script-src/);
    assert.equal(res.headers.get('set-cookie'), null);
    const html = await res.text();
    assert.doesNotMatch(html, /<script/i);
    assert.match(html, /<a href="\/account">MyAccount<\/a>/);
    assert.match(html, /<a href="\/docs">API documentation<\/a>/);
    // The download page belongs to another module: linked exactly when it is there.
    assert.equal(html.includes('<a href="/download">'), server.app.hasRoute({ method: 'GET', url: '/download' }));
    assert.match(text(html), /Try it for 30 days/);
    assert.equal((await fetch(`${server.url}/account/style.css`)).status, 200, 'its stylesheet');
  });

  it('/docs documents every /v1 call with tags, a summary and each answer it gives, and no page for people', async () => {
    const docs = await request(`${server.url}/docs/json`);
    assert.equal(docs.status, 200);
    const paths = docs.body.paths as Record<string, Record<string, any>>;
    const documented = Object.entries(paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));

    // Every /v1 route the server has is documented, and none of the pages is.
    const served = portalRoutes(server.app, '/v1').map((r) => r.replace(/:(\w+)/g, '{$1}'));
    assert.deepEqual(documented.filter((d) => d.includes(' /v1/')).sort(), served);
    assert.deepEqual(Object.keys(CALL_ERRORS).sort(), served, 'this test knows every call');
    for (const path of Object.keys(paths)) {
      assert.doesNotMatch(path, /^\/(account|admin|unsubscribe)(\/|$)|^\/$/, `${path} is a page, not an API call`);
    }

    for (const [call, errors] of Object.entries(CALL_ERRORS)) {
      const [method, path] = call.split(' ') as [string, string];
      const op = paths[path]![method.toLowerCase()];
      assert.ok(op.summary?.length > 10, `${call} has a summary`);
      assert.ok(op.tags?.length > 0, `${call} has tags`);
      const expected = [400, 503, ...errors, ...(op.requestBody ? [413, 415] : []), ...(op.security ? [401] : [])];
      const statuses = Object.keys(op.responses).map(Number);
      for (const status of expected) assert.ok(statuses.includes(status), `${call} documents ${status} (has ${statuses.join(', ')})`);
      assert.ok(statuses.some((s) => s >= 200 && s < 300), `${call} documents its success`);
      for (const [status, answer] of Object.entries(op.responses as Record<string, any>)) {
        assert.ok(answer.description, `${call} ${status} says what it means`);
        if (status !== '204') assert.ok(Object.values(answer.content ?? {}).some((c: any) => c.schema), `${call} ${status} has a schema`);
        if (Number(status) >= 400) {
          const schema = answer.content['application/json'].schema;
          assert.deepEqual(schema.required, ['error'], `${call} ${status} is the error body`);
        }
      }
    }
    const tags = new Set((docs.body.tags as { name: string; description: string }[]).filter((t) => t.description).map((t) => t.name));
    for (const op of Object.values(paths).flatMap((ops) => Object.values(ops))) {
      for (const tag of op.tags ?? []) assert.ok(tags.has(tag), `the tag ${tag} is described`);
    }
    for (const path of ['/healthz', '/readyz', '/.well-known/jwks.json', '/metrics']) {
      assert.ok(paths[path]?.get?.summary, `${path} is documented`);
      assert.ok(Object.keys(paths[path].get.responses).includes('200'));
    }
  });

  it('answers each call\'s errors only with statuses its documentation lists', async () => {
    const docs = (await request(`${server.url}/docs/json`)).body.paths as Record<string, Record<string, any>>;
    for (const call of Object.keys(CALL_ERRORS)) {
      const [method, path] = call.split(' ') as [string, string];
      const url = `${server.url}${path.replace('{id}', '1').replace('{file}', '1.csv')}`;
      const attempts: { body?: string; contentType?: string }[] = [{}, { body: '{not json', contentType: 'application/json' }, { body: 'a=1', contentType: 'application/x-www-form-urlencoded' }];
      for (const attempt of attempts) {
        if (attempt.body !== undefined && method !== 'POST') continue;
        const res = await fetch(url, { method, body: attempt.body, headers: attempt.contentType ? { 'content-type': attempt.contentType } : {} });
        assert.ok(res.status >= 400, `${call} refused`);
        assert.ok(Object.keys(docs[path]![method.toLowerCase()].responses).includes(String(res.status)), `${call} answered ${res.status}, which /docs does not list`);
        assert.ok((await res.json()).error.code);
      }
    }
  });

  it('the queue dashboard has a visible way back to the admin area', async () => {
    const client = new PortalClient(server.url);
    assert.equal((await client.post('/admin/login', { token: server.adminToken })).status, 303);
    for (const page of ['/admin/queues', '/admin/queues/queue/mail']) {
      const res = await client.get(page);
      assert.equal(res.status, 200, page);
      assert.match(res.html, /<body[^>]*><p id="ferry-back"[^>]*><a href="\/admin"[^>]*>← Back to the admin area<\/a><\/p>/, page);
    }
    const api = await client.get('/admin/queues/api/queues');
    assert.equal(api.status, 200);
    assert.doesNotMatch(api.html, /ferry-back/, 'the dashboard\'s JSON is left alone');
  });

  it('the way back is visible above the dashboard in a browser, and leads to the admin area', async function () {
    this.timeout(120_000);
    const browser = await launchChromium();
    try {
      const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
      await page.goto(`${server.url}/admin/queues`);
      await page.getByLabel('Admin token').fill(server.adminToken);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(`${server.url}/admin/queues`);
      await page.getByText('usage-rollup', { exact: true }).first().waitFor();
      const back = page.getByRole('link', { name: '← Back to the admin area' });
      // Clicked as a person would: Playwright refuses when another element covers the link.
      await back.click({ timeout: 10_000 });
      await page.waitForURL(`${server.url}/admin`);
      await page.goto(`${server.url}/admin/queues`);
      await page.getByText('usage-rollup', { exact: true }).first().waitFor();
      await screenshot(page, 'admin-queues-way-back');
    } finally {
      await browser.close();
    }
  });

  it('statistics say "not yet rolled up" before the first roll-up, and "no trials" only after it', async () => {
    const client = new PortalClient(server.url);
    assert.equal((await client.post('/admin/login', { token: server.adminToken })).status, 303);
    const before = text((await client.get('/admin/statistics')).html);
    assert.match(before, /Not yet rolled up: the usage roll-up has not run yet/);
    assert.doesNotMatch(before, /No trials started/);
    assert.doesNotMatch(before, /No signals in this period/);

    // What the roll-up writes for a day without trials.
    const today = new Date().toISOString().slice(0, 10);
    await db.query('INSERT INTO usage_daily (day, installations, new_installations, active_machines_day, active_machines_week, uses, computed_at) VALUES (?, 0, 0, 0, 0, 0, NOW())', [today]);
    const after = text((await client.get('/admin/statistics')).html);
    assert.doesNotMatch(after, /Not yet rolled up/);
    assert.match(after, /No trials started in this period/);
    assert.match(after, /No signals in this period/);
  });
});
