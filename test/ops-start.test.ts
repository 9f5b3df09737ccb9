import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { symlinkSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SERVER_MAIN, freePort, startServerProcess, until } from './support/processes.js';
import { testEnv } from './support/server.js';
import { tempDir } from './support/temp.js';

/**
 * Starting the server as the README says, from a clean clone: `npm start` builds, migrates, listens,
 * and prints where to go; every address it prints answers. Logs are readable on a terminal and
 * JSON elsewhere.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Started {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** A command in its own process group (so that npm's children stop with it), its output collected. */
function startCommand(command: string, args: string[], cwd: string, env: Record<string, string>): Started {
  const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  return {
    child,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      process.kill(-child.pid!, 'SIGTERM');
      await exited;
    },
  };
}

/** The start-up line's URLs, from the JSON log. */
function printedUrls(output: string): Record<string, string> | undefined {
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { msg?: string; urls?: Record<string, string> };
    if (entry.msg?.startsWith('ferry-server is up')) return entry.urls;
  }
  return undefined;
}

/** The environment of `npm start` in a clone: the defaults, but its own database, Redis prefix and port. */
function startEnv(port: number): Record<string, string> {
  const { DATABASE_URL, REDIS_URL, REDIS_PREFIX } = testEnv();
  // No ADMIN_TOKEN and no FERRY_DATA_DIR: as an operator's first start, ./data with a generated token.
  return { DATABASE_URL: DATABASE_URL!, REDIS_URL: REDIS_URL!, REDIS_PREFIX: REDIS_PREFIX!, PORT: String(port), LOG_LEVEL: 'info', ADMIN_TOKEN: '', FERRY_DATA_DIR: '' };
}

describe('Starting the server (npm start)', function () {
  this.timeout(300_000);
  const clone = join(tempDir('ferry-clone-'), 'ferry');
  const running: Started[] = [];

  before(() => {
    execFileSync('git', ['clone', '--quiet', ROOT, clone]);
    symlinkSync(join(ROOT, 'node_modules'), join(clone, 'node_modules'));
  });
  after(async () => {
    for (const started of running) await started.stop();
  });

  async function npmStart(): Promise<{ started: Started; urls: Record<string, string> }> {
    const started = startCommand('npm', ['start'], clone, startEnv(await freePort()));
    running.push(started);
    const urls = await until('the start-up line', async () => {
      if (started.child.exitCode !== null) throw new Error(`npm start exited with ${started.child.exitCode}: ${started.output()}`);
      return printedUrls(started.output());
    }, 240_000, 200);
    return { started, urls };
  }

  it('from a clean clone: builds, starts, and every address it prints answers', async () => {
    const { started, urls } = await npmStart();
    assert.match(started.output(), /sources changed since the last build: compiling with tsc/);
    assert.deepEqual(Object.keys(urls).filter((k) => k !== 'download').sort(), ['account', 'admin', 'docs', 'home', 'metrics']);
    const token = /ADMIN_TOKEN was not set, so one was generated and saved in \S+:\n\n {2}(\S+)\n/.exec(started.output())?.[1];
    assert.ok(token, 'the generated admin token is printed once');

    for (const [name, url] of Object.entries(urls)) {
      const headers: Record<string, string> = name === 'metrics' ? { authorization: `Bearer ${token}` } : {};
      const res = await fetch(url, { headers });
      assert.equal(res.status, 200, `${name} ${url} (after redirects: ${res.url})`);
      const body = await res.text();
      if (name === 'home') {
        for (const link of ['/account', '/docs']) assert.ok(body.includes(`href="${link}"`), `the home page links ${link}`);
        if (urls.download) assert.ok(body.includes('href="/download"'));
      }
      if (name === 'account') assert.match(res.url, /\/account\/login$/);
      if (name === 'admin') assert.match(res.url, /\/admin\/login(\?|$)/);
      if (name === 'docs') assert.match(body, /swagger/i);
      if (name === 'metrics') assert.match(body, /^# HELP /m);
    }
    await started.stop();
  });

  it('a second start compiles nothing; a changed source is compiled at the next', async () => {
    const again = await npmStart();
    assert.doesNotMatch(again.started.output(), /compiling with tsc/);
    await again.started.stop();

    const now = new Date();
    utimesSync(join(clone, 'server', 'main.ts'), now, now);
    const changed = await npmStart();
    assert.match(changed.started.output(), /sources changed since the last build: compiling with tsc/);
    await changed.started.stop();
  });
});

describe('Server logs', function () {
  this.timeout(120_000);

  it('are one JSON object a line when stdout is not a terminal', async () => {
    const server = await startServerProcess(testEnv({ LOG_LEVEL: 'info' }));
    try {
      await fetch(`${server.url}/healthz`);
    } finally {
      await server.stop();
    }
    const lines = server.output().split('\n').filter((l) => l.trim() !== '');
    assert.ok(lines.length > 3);
    for (const line of lines) assert.equal(typeof JSON.parse(line).level, 'number', line);
  });

  it('are readable lines (pino-pretty) on a terminal', async () => {
    const port = await freePort();
    const env = { ...testEnv({ LOG_LEVEL: 'info' }), PORT: String(port) };
    // script(1) gives the server a pseudo-terminal as its stdout, as an operator's shell would.
    const command = `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(SERVER_MAIN)}`;
    const started = startCommand('script', ['-q', '-e', '-c', command, '/dev/null'], ROOT, env);
    try {
      await until('the start-up line', async () => {
        if (started.child.exitCode !== null) throw new Error(`exited: ${started.output()}`);
        return /ferry-server is up/.test(started.output());
      }, 60_000, 100);
    } finally {
      await started.stop();
    }
    const output = started.output().replace(/\x1b\[[0-9;]*m/g, '');
    assert.match(output, /INFO.*: ferry-server is up: home http:\/\/127\.0\.0\.1:\d+\/, docs http:\/\/127\.0\.0\.1:\d+\/docs/);
    assert.doesNotMatch(output, /\{"level":/);
  });
});
