import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, createReadStream, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import { createdDatabases } from '../../test/support/databases.js';
import { MYSQL_SERVER_URL, startServer } from '../../test/support/server.js';
import { startSshd } from '../../test/support/sshd.js';
import { TEST_ROOT } from '../../test/support/trust-root.js';
import { packageAgent } from '../../server/releases/package.js';
import { formatTable } from '../table.js';

/**
 * `npm run bench` (transfer part): ferry against OpenSSH `sftp` and lftp, in one run on this
 * machine, against one local sshd (loopback, internal-sftp), data and "remote" folders on the same
 * disk. Scenarios: one 512 MiB file up and down, 2,000 files of 16 KiB up and down. Every result
 * is verified (sizes and SHA-256) so that a fast wrong answer cannot pass. Exits 1 when a target is
 * missed. BENCH_BIG_MIB, BENCH_SMALL_FILES and BENCH_RUNS=1 make it shorter for a quick look
 * (BENCH_RUNS=6 runs every order of the tools once);
 * BENCH_ONLY=TEXT runs only the scenarios whose name contains TEXT (e.g. "big file down"); TMPDIR
 * chooses the disk (the data and both "sides" live there). ferry runs as the single executable
 * packaged from this checkout (what install.sh installs); BENCH_FERRY=node runs the checkout.
 */

const CLI = fileURLToPath(new URL('../../agent/cli.js', import.meta.url));
const BIG_MIB = Number(process.env.BENCH_BIG_MIB ?? 512);
const SMALL_FILES = Number(process.env.BENCH_SMALL_FILES ?? 2000);
const SMALL_BYTES = 16 * 1024;
/** Rounds of every scenario and tool; the table shows each one's median. */
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const ONLY = process.env.BENCH_ONLY ?? '';
/** The orders of the three tools, one per round: in the first three, sftp and ferry each run right after lftp once, and in all six twice. */
const ORDERS = [[0, 1, 2], [2, 1, 0], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1]] as const;
/** Between runs: the previous session's processes exit and its removed files are reclaimed. */
const SETTLE_MS = 1000;
const LFTP_PARALLEL = 8;
const progress = (message: string) => process.stderr.write(`bench: ${message}\n`);

interface Timed {
  ms: number;
  /** Peak resident set of the process, KiB (from /usr/bin/time). */
  rssKiB: number | null;
  code: number | null;
  output: string;
}

function timed(command: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('/usr/bin/time', ['-f', 'BENCH_MAXRSS_KIB=%M', command, ...args], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.once('error', reject);
    child.once('close', (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const rss = /BENCH_MAXRSS_KIB=(\d+)/.exec(output);
      resolve({ ms, rssKiB: rss ? Number(rss[1]) : null, code, output: output.replace(/BENCH_MAXRSS_KIB=\d+\n?/, '') });
    });
  });
}

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path, { highWaterMark: 1024 * 1024 }).on('data', (d) => hash.update(d)).on('end', () => resolve(hash.digest('hex'))).on('error', reject);
  });
}

/** One digest for a folder of files: names, sizes and contents. */
async function folderDigest(dir: string): Promise<{ files: number; bytes: number; digest: string }> {
  const hash = createHash('sha256');
  let files = 0;
  let bytes = 0;
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const st = statSync(path);
    if (!st.isFile()) continue;
    files++;
    bytes += st.size;
    hash.update(`${name}\0${st.size}\0${await sha256File(path)}\n`);
  }
  return { files, bytes, digest: hash.digest('hex') };
}

function writeRandomFile(path: string, bytes: number): void {
  const fd = openSync(path, 'w');
  const block = 4 * 1024 * 1024;
  for (let written = 0; written < bytes; written += block) writeSync(fd, randomBytes(Math.min(block, bytes - written)));
  closeSync(fd);
}

interface Row {
  scenario: string;
  tool: string;
  ms: number;
  bytes: number;
  rssKiB: number | null;
  verified: boolean;
  note: string;
}

/** What ferry was timed as, for the table's title. */
let ferryKind = 'node dist/agent/cli.js';
/** `ferry --version` started as the bench runs it, from the checkout, and through npx: what each command pays before work. */
let startCosts: [how: string, ms: number][] = [];
const STARTS = 9;

async function packagedExecutable(dataDir: string, publicUrl: string): Promise<string> {
  const { dir, body } = await packageAgent({ dataDir, publicUrl, version: '1.0.0' });
  const artefact = body.artefacts.find((a) => a.platform === 'linux-x64');
  if (!artefact) throw new Error('packaging made no linux-x64 executable');
  return join(dir, artefact.name);
}

async function medianStart(command: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < STARTS; i++) {
    const run = await timed(command[0]!, [...command.slice(1), '--version'], env, cwd);
    if (run.code !== 0) throw new Error(`${command.join(' ')} --version failed: ${run.output}`);
    ms.push(run.ms);
  }
  return ms.sort((a, b) => a - b)[Math.floor(STARTS / 2)]!;
}

async function measureStarts(ferry: string[], checkout: string[], env: NodeJS.ProcessEnv): Promise<[string, number][]> {
  const repo = fileURLToPath(new URL('../../..', import.meta.url));
  const costs: [string, number][] = [];
  if (ferry.length === 1) costs.push(['single executable (as installed by install.sh)', await medianStart(ferry, env)]);
  costs.push(['node dist/agent/cli.js (checkout)', await medianStart(checkout, env)]);
  // One npx run first: its very first start in a checkout reads the whole dependency tree.
  await timed('npx', ['--no-install', 'ferry', '--version'], env, repo);
  costs.push(['npx ferry (checkout)', await medianStart(['npx', '--no-install', 'ferry'], env, repo)]);
  return costs;
}

/** The peers this bench compares against come from Debian: say which is missing rather than crash. */
function missingTools(): string[] {
  const needed: [string, string][] = [['lftp', 'lftp'], ['sftp', 'openssh-client'], ['/usr/sbin/sshd', 'openssh-server'], ['/usr/bin/time', 'time']];
  return needed.filter(([tool]) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0).map(([, pkg]) => pkg);
}

async function main(): Promise<number> {
  const missing = missingTools();
  if (missing.length > 0) {
    process.stderr.write(`bench: the transfer bench needs ${missing.join(', ')}: apt-get install -y ${missing.join(' ')}\n`);
    return 2;
  }
  const root = mkdtempSync(join(tmpdir(), 'ferry-bench-transfer-'));
  const cleanups: (() => Promise<void> | void)[] = [() => rmSync(root, { recursive: true, force: true })];
  try {
    progress(`preparing data in ${root}: one ${BIG_MIB} MiB file, ${SMALL_FILES} files of 16 KiB`);
    const data = join(root, 'data');
    const small = join(data, 'small');
    mkdirSync(small, { recursive: true });
    const big = join(data, 'big.bin');
    writeRandomFile(big, BIG_MIB * 1024 * 1024);
    for (let i = 0; i < SMALL_FILES; i++) writeFileSync(join(small, `f${String(i).padStart(5, '0')}.bin`), randomBytes(SMALL_BYTES));
    const bigDigest = await sha256File(big);
    const smallDigest = await folderDigest(small);

    const sshd = await startSshd({ dir: join(root, 'sshd') });
    cleanups.push(() => sshd.stop());
    const knownHosts = join(root, 'known_hosts');
    writeFileSync(knownHosts, `${sshd.knownHostsLines().join('\n')}\n`);
    const url = (path: string) => `sftp://${sshd.user}@127.0.0.1:${sshd.port}${path}`;

    progress('starting a license server and activating a trial for ferry');
    const license = await startServer();
    cleanups.push(async () => {
      await license.close();
      const connection = await mysql.createConnection({ uri: MYSQL_SERVER_URL });
      for (const name of createdDatabases) await connection.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await connection.end();
    });
    const home = join(root, 'home');
    mkdirSync(join(home, '.ssh'), { recursive: true });
    copyFileSync(knownHosts, join(home, '.ssh', 'known_hosts'));
    copyFileSync(sshd.clientKey, join(home, '.ssh', 'id_ed25519'));
    chmodSync(join(home, '.ssh', 'id_ed25519'), 0o600);
    const ferryEnv: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: home, USER: sshd.user, FERRY_HOME: join(home, 'ferry'), FERRY_MACHINE_ID: `bench-${randomBytes(6).toString('hex')}`, FERRY_TRUST_ROOT: TEST_ROOT.publicFile };
    // ferry is timed as a customer runs it: the single executable that install.sh installs, packaged
    // here from this checkout (BENCH_FERRY=node times `node dist/agent/cli.js` instead, BENCH_FERRY=PATH
    // another executable). BENCH_FERRY_NODE_ARGS (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`) profiles
    // the agent's runs, with BENCH_FERRY=node.
    const ferryNodeArgs = (process.env.BENCH_FERRY_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
    const checkout = [process.execPath, ...ferryNodeArgs, CLI];
    let ferryCommand: string[];
    if (process.env.BENCH_FERRY === 'node') ferryCommand = checkout;
    else if (process.env.BENCH_FERRY) ferryCommand = [process.env.BENCH_FERRY];
    else {
      progress('packaging the single executable from this checkout');
      ferryCommand = [await packagedExecutable(license.config.dataDir, license.url)];
      cleanups.push(() => rmSync(join(license.config.dataDir, 'releases'), { recursive: true, force: true }));
      // A release build trusts the root it was packaged with: the license server's.
      delete ferryEnv.FERRY_TRUST_ROOT;
    }
    ferryKind = ferryCommand.length === 1 ? `executable ${ferryCommand[0]}` : 'node dist/agent/cli.js';
    const [ferryBinary, ...ferryArgs] = ferryCommand;
    const ferry = (args: string[]) => timed(ferryBinary!, [...ferryArgs, ...args], ferryEnv);
    startCosts = await measureStarts(ferryCommand, checkout, ferryEnv);
    const activated = await ferry(['activate', '--trial', '--server', license.url]);
    if (activated.code !== 0) throw new Error(`ferry activate failed: ${activated.output}`);

    const sshOptions = ['-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-i', sshd.clientKey];
    const sftp = (batch: string) => {
      const file = join(root, `batch-${randomBytes(4).toString('hex')}`);
      writeFileSync(file, batch);
      return timed('sftp', ['-q', ...sshOptions, '-P', String(sshd.port), '-b', file, `${sshd.user}@127.0.0.1`], { PATH: process.env.PATH });
    };
    const lftp = (commands: string) => {
      const file = join(root, `lftp-${randomBytes(4).toString('hex')}`);
      writeFileSync(file, [
        `set sftp:connect-program "ssh -a -x ${sshOptions.join(' ')}"`,
        `open -u ${sshd.user}, -p ${sshd.port} sftp://127.0.0.1`,
        commands,
        'bye',
        '',
      ].join('\n'));
      return timed('lftp', ['-f', file], { PATH: process.env.PATH, HOME: home });
    };

    const rows: Row[] = [];
    /** Every run of a scenario and tool; the table shows the median (this machine's timings vary by ±20 % from run to run). */
    const runs = new Map<string, Row[]>();
    const fresh = (name: string) => {
      const dir = join(root, name);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      return dir;
    };
    const record = async (scenario: string, tool: string, run: Timed, bytes: number, verify: () => Promise<boolean>, note = '') => {
      const verified = run.code === 0 && (await verify());
      if (run.code !== 0) progress(`${tool} failed (${run.code}): ${run.output.slice(-500)}`);
      const key = `${scenario}\0${tool}`;
      if (!runs.has(key)) runs.set(key, []);
      runs.get(key)!.push({ scenario, tool, ms: run.ms, bytes, rssKiB: run.rssKiB, verified, note });
      progress(`${scenario} ${tool}: ${(run.ms / 1000).toFixed(2)} s${verified ? '' : ' (NOT VERIFIED)'}`);
    };
    const bigBytes = BIG_MIB * 1024 * 1024;
    const smallBytes = SMALL_FILES * SMALL_BYTES;
    const bigOk = (path: string) => async () => statSync(path).size === bigBytes && (await sha256File(path)) === bigDigest;
    const smallOk = (dir: string) => async () => {
      const got = await folderDigest(dir);
      return got.files === smallDigest.files && got.digest === smallDigest.digest;
    };

    type Tool = readonly [tool: string, run: (dir: string) => Promise<Timed>, note: string];
    /**
     * One scenario in one round: each tool into a fresh folder, its result checked, then removed,
     * then a pause. Each round takes the tools in another of their orders (all six over six
     * rounds), so that each tool follows each other one alike: what a run leaves behind falls on
     * the next one. (The earlier rotation kept the cyclic order, so ferry always ran right after
     * lftp, and a run right after lftp's download measured up to 0.3 s of extra system time,
     * whichever tool it was.)
     */
    const scenario = async (round: number, name: string, bytes: number, tools: Tool[], verify: (dir: string) => () => Promise<boolean>) => {
      if (!name.includes(ONLY)) return;
      for (const index of ORDERS[(round - 1) % ORDERS.length]!) {
        const [tool, run, note] = tools[index]!;
        const dir = fresh(`out-${tool.replace(/\W+/g, '-')}`);
        await record(name, tool, await run(dir), bytes, verify(dir), note);
        rmSync(dir, { recursive: true, force: true });
        await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
      }
    };

    // Downloads read the data files themselves: the sshd runs on this machine.
    for (let round = 1; round <= RUNS; round++) {
      if (RUNS > 1) progress(`round ${round} of ${RUNS}`);
      await scenario(round, `big file up (${BIG_MIB} MiB)`, bigBytes, [
        ['OpenSSH sftp', (dir) => sftp(`put ${big} ${dir}/big.bin\n`), ''],
        ['lftp', (dir) => lftp(`put ${big} -o ${dir}/big.bin`), ''],
        ['ferry', (dir) => ferry(['put', '-q', big, url(`${dir}/`)]), ''],
      ], (dir) => bigOk(join(dir, 'big.bin')));
      await scenario(round, `big file down (${BIG_MIB} MiB)`, bigBytes, [
        ['OpenSSH sftp', (dir) => sftp(`get ${big} ${dir}/big.bin\n`), ''],
        ['lftp', (dir) => lftp(`get ${big} -o ${dir}/big.bin`), ''],
        ['ferry', (dir) => ferry(['get', '-q', url(big), `${dir}/`]), ''],
      ], (dir) => bigOk(join(dir, 'big.bin')));
      await scenario(round, `${SMALL_FILES} × 16 KiB up`, smallBytes, [
        ['OpenSSH sftp', (dir) => sftp(`put -r ${small} ${dir}/small\n`), ''],
        ['lftp', (dir) => lftp(`mirror -R --parallel=${LFTP_PARALLEL} ${small} ${dir}/small`), `mirror --parallel=${LFTP_PARALLEL}`],
        ['ferry', (dir) => ferry(['put', '-q', '-r', `${small}/`, url(`${dir}/small/`)]), ''],
      ], (dir) => smallOk(join(dir, 'small')));
      await scenario(round, `${SMALL_FILES} × 16 KiB down`, smallBytes, [
        ['OpenSSH sftp', (dir) => sftp(`get -r ${small} ${dir}/small\n`), ''],
        ['lftp', (dir) => lftp(`mirror --parallel=${LFTP_PARALLEL} ${small} ${dir}/small`), `mirror --parallel=${LFTP_PARALLEL}`],
        ['ferry', (dir) => ferry(['get', '-q', '-r', url(`${small}/`), `${dir}/small/`]), ''],
      ], (dir) => smallOk(join(dir, 'small')));
    }
    for (const group of runs.values()) {
      const sorted = [...group].sort((a, b) => a.ms - b.ms);
      const median = sorted[Math.floor(sorted.length / 2)]!;
      const peak = group.reduce<number | null>((max, r) => (r.rssKiB === null ? max : Math.max(max ?? 0, r.rssKiB)), null);
      rows.push({ ...median, rssKiB: peak, verified: group.every((r) => r.verified) });
    }
    return report(rows);
  } finally {
    for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
  }
}

function report(rows: Row[]): number {
  const byScenario = new Map<string, Row[]>();
  for (const row of rows) byScenario.set(row.scenario, [...(byScenario.get(row.scenario) ?? []), row]);
  const lines: string[][] = [];
  const verdicts: string[] = [];
  let passed = true;
  for (const [scenario, group] of byScenario) {
    const sftp = group.find((r) => r.tool === 'OpenSSH sftp')!;
    const lftp = group.find((r) => r.tool === 'lftp')!;
    const ferry = group.find((r) => r.tool === 'ferry')!;
    for (const row of group) {
      lines.push([
        scenario,
        row.tool + (row.note ? ` (${row.note})` : ''),
        (row.ms / 1000).toFixed(2),
        (row.bytes / 1024 / 1024 / (row.ms / 1000)).toFixed(1),
        (sftp.ms / row.ms).toFixed(2),
        row.tool === 'ferry' && row.rssKiB !== null ? `${Math.round(row.rssKiB / 1024)} MiB` : '',
        row.verified ? 'yes' : 'NO',
      ]);
    }
    const big = scenario.startsWith('big');
    const ok = ferry.verified && (big ? ferry.ms <= sftp.ms : ferry.ms * 3 <= sftp.ms && ferry.ms < lftp.ms);
    passed &&= ok && group.every((r) => r.verified);
    verdicts.push(`${ok ? 'PASS' : 'FAIL'}  ${scenario}: ferry ${(sftp.ms / ferry.ms).toFixed(2)}× OpenSSH sftp${big ? ' (target ≥ 1×)' : `, ${(lftp.ms / ferry.ms).toFixed(2)}× lftp (target ≥ 3× sftp and faster than lftp)`}`);
  }
  const table = formatTable(
    [{ title: 'scenario' }, { title: 'tool' }, { title: 's', align: 'right' }, { title: 'MiB/s', align: 'right' }, { title: '× sftp', align: 'right' }, { title: 'ferry peak RSS', align: 'right' }, { title: 'verified' }],
    lines,
  );
  const starts = formatTable(
    [{ title: 'ferry --version started as', align: 'left' }, { title: 's', align: 'right' }, { title: 'extra per command', align: 'right' }],
    startCosts.map(([how, ms]) => [how, (ms / 1000).toFixed(2), `${((ms - startCosts[0]![1]) / 1000).toFixed(2)} s`]),
  );
  process.stdout.write(`\nTransfers on ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, Node ${process.version}, loopback sshd (internal-sftp); OpenSSH sftp and lftp with their defaults; ferry as ${ferryKind}; median of ${RUNS} run${RUNS > 1 ? 's' : ''}, data in ${tmpdir()}\n\n${table}\n\n${verdicts.join('\n')}\n`);
  if (startCosts.length > 0) process.stdout.write(`\nWhat every ferry command pays to start (median of ${STARTS}); the transfer rows include it:\n\n${starts}\n`);
  return passed ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`\nbench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(2);
  },
);
