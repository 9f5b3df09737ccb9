import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServerProcess } from './support/processes.js';
import { testEnv } from './support/server.js';

/** What a person reading the server's log (or a log shipper collecting it) must never find there. */
describe('secrets in the server log', () => {
  it('logs addresses with mailed tokens and unsubscribe keys taken out, in every line', async () => {
    const server = await startServerProcess(testEnv({ LOG_LEVEL: 'info' }));
    const secret = (name: string) => `${name}${randomBytes(12).toString('hex')}`;
    const secrets = [secret('verify'), secret('reset'), secret('unsub'), secret('lost'), secret('key')];
    const [verify, reset, unsubscribe, lost, key] = secrets;
    try {
      const pages = [
        `/account/verify?token=${verify}`,
        `/account/password/reset?token=${reset}&from=mail`,
        `/unsubscribe?e=ada%40example.org&t=${unsubscribe}`,
        `/no/such/page?token=${lost}`,
        `/account/verify?key=${key}`,
      ];
      for (const page of pages) {
        const res = await fetch(`${server.url}${page}`);
        assert.ok(res.status < 500, `${page}: ${res.status}`);
        await res.arrayBuffer();
      }
    } finally {
      await server.stop();
    }
    const log = server.logOutput();
    for (const value of [...secrets, 'ada%40example.org']) assert.ok(!log.includes(value), `${value} is in the log:\n${log}`);
    // The requests were logged, with the parameters named and their values replaced.
    assert.match(log, /"url":"\/account\/verify\?token=\[redacted\]"/);
    assert.match(log, /"url":"\/account\/password\/reset\?token=\[redacted\]&from=mail"/);
    assert.match(log, /"url":"\/unsubscribe\?e=\[redacted\]&t=\[redacted\]"/);
    assert.match(log, /"url":"\/no\/such\/page\?token=\[redacted\]"/);
  });
});
