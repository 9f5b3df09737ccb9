import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import { createdDatabases } from '../../test/support/databases.js';
import { freePort } from '../../test/support/processes.js';
import { MYSQL_SERVER_URL, startServer } from '../../test/support/server.js';
import { startSshd } from '../../test/support/sshd.js';
import { packageAgent } from '../../server/releases/package.js';
import { listPackaged, publish } from '../../server/releases/store.js';
import { formatTable } from '../table.js';

/**
 * `npm run bench` (install part): a release packaged and published on a local ferry-server, then
 * the time from a cold `curl | sh` (empty install folder and HOME) through `ferry activate --trial`
 * to a first `ferry ls` against a local sshd; and the start-up of the single executable
 * (`ferry --version`, median of BENCH_STARTS runs) beside `node dist/agent/cli.js --version`.
 */
const CLI = fileURLToPath(new URL('../../agent/cli.js', import.meta.url));
const STARTS = Number(process.env.BENCH_STARTS ?? 15);

async function timed(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const started = process.hrtime.bigint();
  const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} failed (${code}): ${output.slice(-400)}`);
  return Number(process.hrtime.bigint() - started) / 1e6;
}

async function median(times: number, run: () => Promise<number>): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < times; i++) ms.push(await run());
  return ms.sort((a, b) => a - b)[Math.floor(ms.length / 2)]!;
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'ferry-bench-install-'));
  const port = await freePort();
  const server = await startServer({ port, publicUrl: `http://127.0.0.1:${port}` });
  const sshd = await startSshd({ dir: join(root, 'sshd') });
  try {
    process.stderr.write('bench: packaging and publishing a release\n');
    await packageAgent({ dataDir: server.config.dataDir, publicUrl: server.url, version: '1.0.0' });
    const rootPem = readFileSync(join(server.config.dataDir, 'root', 'root-public.pem'), 'utf8');
    const [release] = (await listPackaged(server.config.dataDir, rootPem)).releases;
    await publish(server.app.db, release!, 'bench');

    const home = join(root, 'home');
    mkdirSync(join(home, '.ssh'), { recursive: true });
    writeFileSync(join(home, '.ssh', 'known_hosts'), `${sshd.knownHostsLines().join('\n')}\n`);
    copyFileSync(sshd.clientKey, join(home, '.ssh', 'id_ed25519'));
    chmodSync(join(home, '.ssh', 'id_ed25519'), 0o600);
    const bin = join(root, 'bin');
    const env = { HOME: home, USER: sshd.user, PATH: process.env.PATH, FERRY_INSTALL_DIR: bin };
    const install = await timed('sh', ['-c', `curl -fsSL ${server.url}/install.sh | sh`], env);
    const activate = await timed(join(bin, 'ferry'), ['activate', '--trial'], env);
    const ls = await timed(join(bin, 'ferry'), ['ls', `sftp://${sshd.user}@127.0.0.1:${sshd.port}${root}`], env);

    const sea = await median(STARTS, () => timed(join(bin, 'ferry'), ['--version'], { PATH: '/nonexistent' }));
    const node = await median(STARTS, () => timed(process.execPath, [CLI, '--version'], { PATH: process.env.PATH }));
    const s = (ms: number) => (ms / 1000).toFixed(2);
    process.stdout.write(`\nGetting ferry (a release from a local ferry-server, single executable for Linux x64)\n\n${formatTable(
      [{ title: 'scenario' }, { title: 's', align: 'right' }, { title: 'ratio', align: 'right' }],
      [
        ['curl | sh (download, SHA-256, signature check, install)', s(install), ''],
        ['… then ferry activate --trial', s(activate), ''],
        ['… then a first ferry ls against sshd', s(ls), ''],
        ['cold install to a first ls, total', s(install + activate + ls), ''],
        [`node dist/agent/cli.js --version (median of ${STARTS})`, s(node), '1.00'],
        [`single executable ferry --version (median of ${STARTS})`, s(sea), (sea / node).toFixed(2)],
      ],
    )}\n`);
  } finally {
    await sshd.stop();
    await server.close();
    const connection = await mysql.createConnection({ uri: MYSQL_SERVER_URL });
    for (const name of createdDatabases) await connection.query(`DROP DATABASE IF EXISTS \`${name}\``);
    await connection.end();
    rmSync(root, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (err: Error) => {
  process.stderr.write(`bench: ${err.message}\n`);
  process.exit(1);
});
