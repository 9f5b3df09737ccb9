import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { loadConfig } from '../server/config.js';
import { newPerson, registerAndVerify } from './support/portal.js';
import { freePort, SERVER_MAIN } from './support/processes.js';
import { startServer, testEnv } from './support/server.js';
import { startSmtp } from './support/smtp.js';

describe('ferry-server worker, as its own process', () => {
  it('sends the mail of a server that runs no workers, the portal\'s included', async function () {
    this.timeout(90_000);
    const smtp = await startSmtp();
    const port = await freePort();
    const env = testEnv({ PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}`, SMTP_URL: smtp.url, FERRY_WORKERS: '0', LOG_LEVEL: 'warn' });
    const server = await startServer(loadConfig(env));
    const worker = spawn(process.execPath, [SERVER_MAIN, 'worker'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    worker.stdout!.on('data', (d) => (output += d));
    worker.stderr!.on('data', (d) => (output += d));
    try {
      // Registration mails a verification link: only the worker process can send it.
      await registerAndVerify(server, smtp, newPerson('worker'));
      assert.equal(worker.exitCode, null, output);
    } finally {
      const exited = new Promise((r) => worker.once('exit', r));
      worker.kill('SIGTERM');
      await exited;
      await server.close();
      await smtp.close();
    }
  });
});
