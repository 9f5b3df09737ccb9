import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../server/config.js';
import { tempDir } from './support/temp.js';

/**
 * The deployment files: Dockerfile, compose.yaml, the systemd units and the nginx example. What
 * can be checked on any machine is checked here always: the files parse, and they agree with each
 * other and with the settings server/config.ts reads. With a Docker engine (`docker info`), the
 * units are verified by systemd-analyze. Building and starting the stack needs a Docker engine, which
 * the machines of this project lack: `npm run test:docker` (test/docker/compose.docker.ts) does that
 * where one runs.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

function filesBelow(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesBelow(join(dir, e.name)) : [join(dir, e.name)]));
}

/** The environment variables server/config.ts reads: every name it passes to its readers. */
function configVariables(): Set<string> {
  const source = read('server/config.ts');
  return new Set([...source.matchAll(/(?:env, |env\.)'?([A-Z][A-Z0-9_]+)'?/g)].map((m) => m[1]!));
}

/** `${NAME:-default}` as compose resolves it with nothing set. */
const withDefaults = (value: string) => value.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1');

interface Instruction {
  op: string;
  args: string;
}

/** A Dockerfile's instructions by stage: continuation lines joined, comments dropped. */
function dockerStages(text: string): { name: string; from: string; instructions: Instruction[] }[] {
  const lines = text.split('\n').filter((l) => !/^\s*#/.test(l));
  const joined = lines.join('\n').replace(/\\\n/g, ' ').split('\n').filter((l) => l.trim() !== '');
  const stages: { name: string; from: string; instructions: Instruction[] }[] = [];
  for (const line of joined) {
    const [, op, args] = /^\s*([A-Z]+)\s+(.*)$/.exec(line) ?? [];
    assert.ok(op && args !== undefined, `not an instruction: ${line}`);
    if (op === 'FROM') {
      const [, from, name] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args.trim()) ?? [];
      stages.push({ name: name ?? String(stages.length), from: from!, instructions: [] });
    } else {
      assert.ok(stages.length > 0, `${op} before FROM`);
      stages.at(-1)!.instructions.push({ op, args: args.trim() });
    }
  }
  return stages;
}

function dockerEngine(): boolean {
  return spawnSync('docker', ['info'], { stdio: 'ignore', timeout: 20_000 }).status === 0;
}

describe('Deployment files (Dockerfile, compose.yaml, systemd units, nginx)', function () {
  this.timeout(60_000);

  describe('Dockerfile', () => {
    const stages = dockerStages(read('Dockerfile'));
    const runtime = stages.at(-1)!;
    const of = (op: string) => runtime.instructions.filter((i) => i.op === op).map((i) => i.args);

    it('builds in one stage and runs from another, as a user other than root, with the data folder as a volume', () => {
      assert.ok(stages.length >= 2, 'multi-stage');
      assert.match(stages[0]!.from, /^node:20\./, 'the Node the project declares');
      const env = Object.fromEntries(of('ENV').flatMap((args) => [...args.matchAll(/([A-Z_]+)=(\S+)/g)].map((m) => [m[1]!, m[2]!])));
      assert.equal(env.FERRY_DATA_DIR, '/data');
      assert.equal(env.HOST, '0.0.0.0', 'reachable from outside the container');
      assert.deepEqual(of('VOLUME'), ['["/data"]']);
      assert.deepEqual(of('EXPOSE'), [env.PORT]);
      const user = of('USER');
      assert.equal(user.length, 1);
      assert.doesNotMatch(user[0]!, /^(root|0)(:|$)/);
      assert.ok(of('HEALTHCHECK')[0]?.includes('/readyz'), 'the healthcheck asks /readyz');
      assert.match(of('ENTRYPOINT')[0]!, /dist\/server\/main\.js/);
      // Only the built result enters the runtime stage: no npm install, no compiler there.
      for (const copy of of('COPY')) assert.match(copy, new RegExp(`^--from=${stages[0]!.name} `), copy);
      assert.ok(!runtime.instructions.some((i) => i.op === 'RUN' && /npm (ci|install)|tsc/.test(i.args)));
    });

    it('copies every source folder the server imports and every file it reads from the source tree', () => {
      const build = stages[0]!;
      const copied = build.instructions.filter((i) => i.op === 'COPY').map((i) => i.args.split(/\s+/)[0]!);
      const serverSources = filesBelow(join(ROOT, 'server')).filter((f) => f.endsWith('.ts'));
      const imported = new Set<string>();
      const readAtRunTime = new Set<string>();
      for (const file of serverSources) {
        const source = readFileSync(file, 'utf8');
        for (const m of source.matchAll(/from '(\.\.\/[^']+)'/g)) {
          const top = relative(ROOT, join(file, '..', m[1]!)).split('/')[0]!;
          if (top !== 'server') imported.add(top);
        }
        for (const m of source.matchAll(/new URL\('(?:\.\.\/)+(server\/[^'*]+?)\/?(?:\*[^']*)?'/g)) readAtRunTime.add(m[1]!);
      }
      assert.ok(imported.has('licensing'));
      for (const top of ['server', ...imported]) assert.ok(copied.includes(top), `the build stage copies ${top}/`);
      // The runtime stage gets every file of server/ that is not TypeScript: the views, mail templates, migrations.
      assert.match(build.instructions.map((i) => i.args).join('\n'), /find server -type f ! -name '\*\.ts' -exec cp --parents/);
      assert.ok(readAtRunTime.size >= 4, [...readAtRunTime].join(', '));
      for (const dir of readAtRunTime) {
        const assets = filesBelow(join(ROOT, dir)).filter((f) => !f.endsWith('.ts'));
        assert.ok(assets.length > 0, `${dir} has files that reach the image`);
      }
      const ignored = read('.dockerignore').split('\n');
      for (const kept of ['node_modules', 'dist', 'data', '.git']) assert.ok(ignored.includes(kept), `.dockerignore has ${kept}`);
    });
  });

  describe('compose.yaml', () => {
    const compose = parseYaml(read('compose.yaml'), { merge: true }) as any;
    const services = compose.services as Record<string, any>;

    it('has the server, a worker, MariaDB, Redis and a mail catcher, each with a healthcheck', () => {
      assert.deepEqual(Object.keys(services).sort(), ['mail', 'mariadb', 'redis', 'server', 'worker']);
      for (const [name, service] of Object.entries(services)) {
        assert.ok(Array.isArray(service.healthcheck?.test) && service.healthcheck.test[0] === 'CMD', `${name} has a healthcheck`);
        assert.equal(service.restart, 'unless-stopped', name);
      }
      assert.equal(services.server.build, '.');
      assert.equal(services.worker.image, services.server.image, 'the worker runs the image the server builds');
      assert.deepEqual(services.server.command, ['serve']);
      assert.deepEqual(services.worker.command, ['worker']);
      assert.equal(services.server.environment.FERRY_WORKERS, '0', 'the jobs run in the worker only');
      assert.equal(services.server.depends_on.mariadb.condition, 'service_healthy');
      assert.equal(services.worker.depends_on.server.condition, 'service_healthy', 'the server migrates and makes the keys first');
      assert.ok(services.server.healthcheck.test.join(' ').includes(`127.0.0.1:${services.server.environment.PORT}/readyz`));
    });

    it('sets only variables server/config.ts reads, with values it accepts, pointing at the services', () => {
      const known = configVariables();
      assert.ok(known.has('DATABASE_URL') && known.has('FERRY_WORKERS') && known.has('ADMIN_TOKEN'), [...known].join(' '));
      for (const name of ['server', 'worker']) {
        const env = Object.fromEntries(Object.entries(services[name].environment as Record<string, string>).map(([k, v]) => [k, withDefaults(String(v))]));
        for (const variable of Object.keys(env)) assert.ok(known.has(variable), `${name}: ${variable} is not a setting of ferry-server`);
        const config = loadConfig({ ...env, FERRY_DATA_DIR: tempDir('ferry-compose-data-') });
        const database = new URL(config.databaseUrl);
        const db = services.mariadb.environment;
        assert.equal(database.hostname, 'mariadb');
        assert.equal(database.username, db.MARIADB_USER);
        assert.equal(decodeURIComponent(database.password), withDefaults(db.MARIADB_PASSWORD));
        assert.equal(database.pathname, `/${db.MARIADB_DATABASE}`);
        assert.equal(new URL(config.redisUrl).hostname, 'redis');
        assert.equal(new URL(config.smtpUrl!).host, 'mail:1025', 'Mailpit takes SMTP on 1025');
        assert.equal(env.FERRY_DATA_DIR, '/data');
        assert.ok((services[name].volumes as string[]).includes('data:/data'), `${name} mounts the data volume at FERRY_DATA_DIR`);
      }
      const server = services.server.environment;
      assert.deepEqual(services.server.ports, [`127.0.0.1:\${FERRY_PORT:-3000}:${server.PORT}`], 'published on the loopback only, to the port the server listens on');
      assert.equal(server.HOST, '0.0.0.0');
      const named = new Set(Object.values(services).flatMap((s: any) => (s.volumes ?? []).map((v: string) => v.split(':')[0])));
      assert.deepEqual([...named].sort(), Object.keys(compose.volumes).sort(), 'every named volume is declared');
    });
  });

  describe('systemd units', () => {
    const units = { 'ferry-server.service': 'serve', 'ferry-worker.service': 'worker' } as const;
    const parseUnit = (text: string) => {
      const keys = new Map<string, string[]>();
      for (const line of text.split('\n')) {
        const m = /^([A-Za-z]+)=(.*)$/.exec(line);
        if (m) keys.set(m[1]!, [...(keys.get(m[1]!) ?? []), m[2]!]);
      }
      return keys;
    };

    it('run ferry-server serve and worker as their own user, hardened, writing only the data folder', () => {
      for (const [file, command] of Object.entries(units)) {
        const keys = parseUnit(read(`deploy/${file}`));
        const one = (key: string) => {
          const values = keys.get(key);
          assert.ok(values, `${file} sets ${key}`);
          return values.at(-1)!;
        };
        assert.match(one('ExecStart'), new RegExp(`dist/server/main\\.js ${command}$`));
        assert.notEqual(one('User'), 'root');
        for (const [key, value] of Object.entries({
          NoNewPrivileges: 'yes', ProtectSystem: 'strict', ProtectHome: 'yes', PrivateTmp: 'yes', PrivateDevices: 'yes',
          CapabilityBoundingSet: '', AmbientCapabilities: '', RestrictSUIDSGID: 'yes', ProtectKernelTunables: 'yes',
          ProtectKernelModules: 'yes', ProtectControlGroups: 'yes', RestrictNamespaces: 'yes', LockPersonality: 'yes', UMask: '0077',
        })) assert.equal(one(key), value, `${file}: ${key}`);
        const dataDir = /FERRY_DATA_DIR=(\S+)/.exec(one('Environment'))?.[1];
        assert.ok(dataDir, `${file} sets FERRY_DATA_DIR`);
        assert.equal(one('ReadWritePaths'), dataDir, 'the data folder is the one writable path');
        assert.equal(`/var/lib/${one('StateDirectory')}`, dataDir, 'systemd creates it, owned by the user');
        assert.match(one('RestrictAddressFamilies'), /AF_INET AF_INET6 AF_UNIX/);
        if (command === 'serve') assert.match(one('Environment'), /FERRY_WORKERS=0/, 'the worker unit runs the jobs');
      }
    });

    it('pass `systemd-analyze verify`, and `security` rates them OK', async function () {
      // .ci/run installs systemd where it is missing: this check never passes in silence.
      assert.equal(spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status, 0, 'systemd-analyze is missing: apt-get install systemd (.ci/run does)');
      const dir = tempDir('ferry-units-');
      for (const file of Object.keys(units)) {
        // systemd checks that ExecStart's program exists: point it at this machine's node.
        writeFileSync(join(dir, file), read(`deploy/${file}`).replace(/\/usr\/bin\/node\b/g, process.execPath));
        const verify = spawnSync('systemd-analyze', ['verify', join(dir, file)], { encoding: 'utf8' });
        // Unknown or misspelt keys are only warned about: any output at all is a failure.
        assert.equal(verify.status, 0, verify.stderr);
        assert.equal(verify.stderr.trim(), '', verify.stderr);
        const security = spawnSync('systemd-analyze', ['security', '--offline=yes', join(dir, file)], { encoding: 'utf8' });
        const exposure = /Overall exposure level for \S+: ([\d.]+)/.exec(security.stdout)?.[1];
        assert.ok(exposure, security.stdout + security.stderr);
        assert.ok(Number(exposure) <= 2, `${file}: exposure ${exposure} (0 is best, 10 worst)`);
      }
    });
  });

  it('the nginx example passes the client address in a way TRUST_PROXY accepts', () => {
    const conf = read('deploy/nginx-ferry.conf');
    const trustProxy = /TRUST_PROXY=(\S+)/.exec(conf)?.[1];
    assert.ok(trustProxy);
    const config = loadConfig({ TRUST_PROXY: trustProxy, PUBLIC_URL: /PUBLIC_URL=(\S+)/.exec(conf)![1]!, FERRY_DATA_DIR: tempDir('ferry-nginx-data-'), ADMIN_TOKEN: 'x'.repeat(24) });
    assert.equal(config.trustProxy, '127.0.0.1');
    assert.ok(config.publicUrl.startsWith('https://'));
    assert.match(conf, /proxy_set_header X-Forwarded-For \$remote_addr;/, 'replaced, never appended to');
    assert.match(conf, /proxy_pass http:\/\/ferry_server;/);
    assert.match(conf, /server 127\.0\.0\.1:3000;/);
    assert.equal(statSync(join(ROOT, 'deploy')).isDirectory(), true);
  });
});
