import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort, until } from '../support/processes.js';

/**
 * The container stack built and started for real: `npm run test:docker`, on a machine with a
 * Docker engine and the compose plugin. Not part of `npm test`, whose machines have neither (the
 * files themselves are checked there, by test/ops-deploy.test.ts); here a missing engine fails.
 */

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function dockerEngine(): boolean {
  return spawnSync('docker', ['info'], { stdio: 'ignore', timeout: 20_000 }).status === 0;
}

describe('the container stack (compose.yaml)', function () {
  this.timeout(120_000);

  it('is accepted by `docker compose config`', async function () {
    const { stdout } = await run('docker', ['compose', '-f', join(ROOT, 'compose.yaml'), 'config', '--quiet']);
    assert.equal(stdout, '');
  });

  it('builds and starts, and the server answers', async function () {
    assert.ok(dockerEngine(), '`docker info` fails: this needs a Docker engine');
    this.timeout(900_000);
    const project = `ferry-test-${process.pid}`;
    const port = await freePort();
    const env = { ...process.env, FERRY_PORT: String(port), MAILPIT_PORT: String(await freePort()) };
    const compose = (...args: string[]) => run('docker', ['compose', '-p', project, '-f', join(ROOT, 'compose.yaml'), ...args], { env, maxBuffer: 64 * 1024 * 1024 });
    try {
      await compose('up', '-d', '--build', '--wait');
      await until('the server in its container', async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, 120_000, 500);
      assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 200);
      const { stdout } = await compose('ps', '--format', 'json');
      assert.match(stdout, /worker/);
      const { stdout: logs } = await compose('logs', 'server');
      assert.match(logs, /ADMIN_TOKEN was not set, so one was generated/);
    } finally {
      await compose('down', '-v').catch(() => {});
    }
  });
});
