import assert from 'node:assert/strict';
import { request } from './support/http.js';
import { newMachine } from './support/machines.js';
import { until } from './support/processes.js';
import { startServer, testEnv, type TestServer } from './support/server.js';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.js';
import { loadConfig } from '../server/config.js';
import { migrate } from '../server/db/migrate.js';

/**
 * The server talks to the real MariaDB and Redis through proxies that the tests cut: to the server
 * the service is gone (connections dropped, new ones refused) until the proxy is restored.
 */
describe('when MySQL or Redis goes away', () => {
  let mysqlProxy: TcpProxy;
  let redisProxy: TcpProxy;
  let server: TestServer;

  before(async () => {
    mysqlProxy = await startTcpProxy('127.0.0.1', 3306);
    redisProxy = await startTcpProxy('127.0.0.1', 6379);
    const base = loadConfig(testEnv());
    await migrate(base.databaseUrl);
    server = await startServer({
      ...base,
      databaseUrl: base.databaseUrl.replace(':3306/', `:${mysqlProxy.port}/`),
      redisUrl: `redis://127.0.0.1:${redisProxy.port}`,
    });
  });
  after(async () => {
    await server.close();
    await mysqlProxy.close();
    await redisProxy.close();
  });

  const trial = () => request(`${server.url}/v1/trials`, { body: { fingerprint: newMachine() } });

  it('says so on /readyz, answers API calls 503 with Retry-After, and recovers by itself when MySQL is back', async () => {
    const before = await trial();
    assert.equal(before.status, 201);

    await mysqlProxy.cut();
    const ready = await until('readyz to report MySQL down', async () => {
      const res = await request(`${server.url}/readyz`);
      return res.status === 503 ? res : undefined;
    });
    assert.deepEqual(ready.body, { ready: false, mysql: false, redis: true });
    assert.ok(Number(ready.headers.get('retry-after')) > 0);

    for (const call of [trial(), request(`${server.url}/v1/validate`, { body: {}, token: before.body.token })]) {
      const res = await call;
      assert.equal(res.status, 503);
      assert.equal(res.body.error.code, 'SERVICE_UNAVAILABLE');
      assert.ok(Number(res.headers.get('retry-after')) > 0);
    }
    assert.equal((await request(`${server.url}/healthz`)).status, 200, 'the process itself is alive');

    await mysqlProxy.restore();
    await until('the API to answer again', async () => (await trial()).status === 201);
    assert.equal((await request(`${server.url}/readyz`)).status, 200);
    assert.equal((await request(`${server.url}/v1/validate`, { body: {}, token: before.body.token })).status, 200);
  });

  it('answers trial calls 503 while Redis is away (their rate limit lives there) but keeps validating', async () => {
    const before = await trial();
    await redisProxy.cut();
    await until('readyz to report Redis down', async () => (await request(`${server.url}/readyz`)).status === 503);
    const res = await trial();
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, 'SERVICE_UNAVAILABLE');
    assert.ok(Number(res.headers.get('retry-after')) > 0);
    assert.equal((await request(`${server.url}/v1/validate`, { body: {}, token: before.body.token })).status, 200);

    await redisProxy.restore();
    await until('trials to work again', async () => (await trial()).status === 201, 30_000, 200);
    assert.equal((await request(`${server.url}/readyz`)).status, 200);
  });
});
