import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createCipheriv, randomBytes, scryptSync } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from './support/http.js';
import { newMachine } from './support/machines.js';
import { SERVER_MAIN, startServerProcess, until, type ServerProcess } from './support/processes.js';
import { testEnv } from './support/server.js';
import { tempDir } from './support/temp.js';

/**
 * `ferry-server backup FILE` and `restore FILE`: the signing keys, the trust root and the secrets
 * of the data folder, encrypted with a passphrase, put back into a fresh folder, so that a server
 * started there accepts the tokens agents already hold.
 */

const PASSPHRASE = 'correct horse battery staple';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** ferry-server with a command, as an operator runs it (no terminal: stdin is closed). */
function ferryServer(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SERVER_MAIN, ...args], { env: { PATH: process.env.PATH!, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Every file below `dir`, relative, with its bytes: what a restore must reproduce. */
function filesOf(dir: string, relative = ''): Map<string, string> {
  const files = new Map<string, string>();
  for (const entry of readdirSync(join(dir, relative), { withFileTypes: true })) {
    const path = relative ? `${relative}/${entry.name}` : entry.name;
    if (entry.isDirectory()) for (const [k, v] of filesOf(dir, path)) files.set(k, v);
    else files.set(path, readFileSync(join(dir, path), 'utf8'));
  }
  return files;
}

/** The environment of a server on `dataDir` and `databaseUrl`, with the admin token generated into the folder. */
function serverEnv(dataDir: string, databaseUrl: string): Record<string, string> {
  const { ADMIN_TOKEN: _generated, ...env } = testEnv({ FERRY_DATA_DIR: dataDir, DATABASE_URL: databaseUrl });
  return env;
}

describe('Backing up and restoring the keys (ferry-server backup / restore)', function () {
  this.timeout(120_000);
  const original = tempDir('ferry-backup-original-');
  const databaseUrl = testEnv().DATABASE_URL!;
  const backupFile = join(tempDir('ferry-backup-file-'), 'ferry.backup');
  let token: string;
  let adminToken: string;
  const running: ServerProcess[] = [];

  before(async () => {
    const server = await startServerProcess(serverEnv(original, databaseUrl));
    running.push(server);
    const trial = await request(`${server.url}/v1/trials`, { body: { fingerprint: newMachine() } });
    assert.equal(trial.status, 201, JSON.stringify(trial.body));
    token = trial.body.token;
    adminToken = readFileSync(join(original, 'admin-token'), 'utf8').trim();
    await server.stop();
    // What is not kept: mail written without SMTP, published release files.
    mkdirSync(join(original, 'outbox'), { recursive: true });
    writeFileSync(join(original, 'outbox', 'message.eml'), 'Subject: hello\n\nnot kept\n');
    mkdirSync(join(original, 'releases'), { recursive: true });
    writeFileSync(join(original, 'releases', 'ferry-linux-x64'), 'a big binary');
  });
  after(async () => {
    for (const server of running) await server.stop();
  });

  it('writes one encrypted file (0600) that holds no key in the clear', async () => {
    const run = await ferryServer(['backup', backupFile], { FERRY_DATA_DIR: original, FERRY_BACKUP_PASSPHRASE: PASSPHRASE });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /backed up \d+ files/);
    assert.equal(statSync(backupFile).mode & 0o777, 0o600);
    const bytes = readFileSync(backupFile);
    assert.ok(!bytes.includes('PRIVATE KEY'), 'no PEM in the clear');
    assert.ok(!bytes.includes(adminToken), 'no admin token in the clear');
    assert.ok(!bytes.includes('not kept'));
  });

  it('restores into a fresh folder: a server started there accepts the tokens issued before, and the admin token', async () => {
    const restored = join(tempDir('ferry-backup-restored-'), 'data');
    const run = await ferryServer(['restore', backupFile], { FERRY_DATA_DIR: restored, FERRY_BACKUP_PASSPHRASE: PASSPHRASE });
    assert.equal(run.code, 0, run.stderr);

    const kept = [...filesOf(original)].filter(([path]) => !path.startsWith('outbox/') && !path.startsWith('releases/'));
    assert.ok(kept.some(([path]) => path.startsWith('signing-keys/')), 'the signing key is among them');
    assert.deepEqual(new Map(kept), filesOf(restored), 'the same files, byte for byte; no outbox, no releases');
    // Private keys and secrets stay 0600 (a key's certificate is public).
    for (const [path] of kept.filter(([p]) => (p.startsWith('signing-keys/') && p.endsWith('.pem')) || p === 'root/root-key.pem' || p === 'admin-token' || p === 'mail-secret')) {
      assert.equal(statSync(join(restored, path)).mode & 0o777, 0o600, path);
    }

    const server = await startServerProcess(serverEnv(restored, databaseUrl));
    running.push(server);
    const validated = await request(`${server.url}/v1/validate`, { body: {}, token });
    assert.equal(validated.status, 200, JSON.stringify(validated.body));
    assert.equal(validated.body.valid, true);
    assert.equal((await request(`${server.url}/metrics`, { token: adminToken })).status, 200, 'the generated admin token came back');

    // Without the backup, a new data folder has a new key, and every agent's token is refused.
    const fresh = await startServerProcess(serverEnv(tempDir('ferry-backup-lost-'), databaseUrl));
    running.push(fresh);
    assert.equal((await request(`${fresh.url}/v1/validate`, { body: {}, token })).status, 401);
  });

  it('refuses to replace the keys of a folder that has them, unless --force', async () => {
    const target = tempDir('ferry-backup-occupied-');
    assert.equal((await ferryServer(['restore', backupFile], { FERRY_DATA_DIR: target, FERRY_BACKUP_PASSPHRASE: PASSPHRASE })).code, 0);
    const keyFile = readdirSync(join(target, 'signing-keys')).find((f) => f.endsWith('.pem'))!;
    writeFileSync(join(target, 'signing-keys', keyFile), 'changed since');

    const refused = await ferryServer(['restore', backupFile], { FERRY_DATA_DIR: target, FERRY_BACKUP_PASSPHRASE: PASSPHRASE });
    assert.equal(refused.code, 4);
    assert.match(refused.stderr, /^ferry-server: .*already has .*--force/);
    assert.equal(readFileSync(join(target, 'signing-keys', keyFile), 'utf8'), 'changed since', 'nothing was replaced');

    const forced = await ferryServer(['restore', backupFile, '--force'], { FERRY_DATA_DIR: target, FERRY_BACKUP_PASSPHRASE: PASSPHRASE });
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(readFileSync(join(target, 'signing-keys', keyFile), 'utf8'), /BEGIN PRIVATE KEY/);
  });

  it('says so, in one line, for a wrong passphrase, a missing passphrase, another file, and an existing backup file', async () => {
    const target = tempDir('ferry-backup-wrong-');
    const wrong = await ferryServer(['restore', backupFile], { FERRY_DATA_DIR: target, FERRY_BACKUP_PASSPHRASE: 'not the passphrase' });
    assert.equal(wrong.code, 3);
    assert.equal(wrong.stderr, `ferry-server: wrong passphrase, or ${backupFile} is damaged\n`);
    assert.deepEqual(readdirSync(target), [], 'nothing written');

    const none = await ferryServer(['restore', backupFile], { FERRY_DATA_DIR: target });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^ferry-server: set FERRY_BACKUP_PASSPHRASE, or run this on a terminal/);

    const other = join(target, 'notes.txt');
    writeFileSync(other, 'just text, not a backup');
    const notBackup = await ferryServer(['restore', other], { FERRY_DATA_DIR: join(target, 'data'), FERRY_BACKUP_PASSPHRASE: PASSPHRASE });
    assert.equal(notBackup.code, 3);
    assert.match(notBackup.stderr, /is not a ferry-server backup/);

    const again = await ferryServer(['backup', backupFile], { FERRY_DATA_DIR: original, FERRY_BACKUP_PASSPHRASE: PASSPHRASE });
    assert.equal(again.code, 4);
    assert.match(again.stderr, /exists already \(--force replaces it\)/);

    const short = await ferryServer(['backup', join(target, 'short.backup')], { FERRY_DATA_DIR: original, FERRY_BACKUP_PASSPHRASE: 'short' });
    assert.equal(short.code, 2);
    assert.match(short.stderr, /at least 12 characters/);
    assert.equal((await ferryServer(['backup'], { FERRY_DATA_DIR: original })).code, 2);
  });

  it('asks for the passphrase on a terminal, twice, without showing it', async () => {
    const file = join(tempDir('ferry-backup-tty-'), 'asked.backup');
    // script(1) gives ferry-server a terminal; what is written to script's stdin is typed on it.
    const child = spawn('script', ['-q', '-e', '-c', `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(SERVER_MAIN)} backup ${JSON.stringify(file)}`, '/dev/null'], {
      env: { PATH: process.env.PATH!, FERRY_DATA_DIR: original }, stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    await until('the first question', async () => output.includes('Passphrase for the backup (at least 12 characters): '));
    child.stdin.write(`${PASSPHRASE}\r`);
    await until('the second question', async () => output.includes('The same passphrase again: '));
    child.stdin.write(`${PASSPHRASE}\r`);
    assert.equal(await exited, 0, output);
    assert.match(output, /backed up \d+ files/);
    assert.ok(!output.includes(PASSPHRASE), 'the passphrase is not echoed');
    const restored = await ferryServer(['restore', file], { FERRY_DATA_DIR: tempDir('ferry-backup-tty-restored-'), FERRY_BACKUP_PASSPHRASE: PASSPHRASE });
    assert.equal(restored.code, 0, restored.stderr);
  });

  it('never writes outside the data folder, whatever a crafted backup names', async () => {
    // A backup made by hand in the documented format, with the right passphrase, naming "../escaped".
    const crafted = join(tempDir('ferry-backup-crafted-'), 'crafted.backup');
    const salt = randomBytes(16);
    const iv = randomBytes(12);
    const header = Buffer.concat([Buffer.from('FERRYBK1'), Buffer.from([10, 8, 1]), salt, iv]);
    const cipher = createCipheriv('aes-256-gcm', scryptSync(PASSPHRASE, salt, 32, { N: 1024, r: 8, p: 1 }), iv);
    cipher.setAAD(header);
    const files = [{ path: '../escaped', mode: 0o644, data: Buffer.from('gotcha').toString('base64') }];
    const body = Buffer.concat([cipher.update(JSON.stringify({ format: 1, createdAt: new Date().toISOString(), files })), cipher.final()]);
    writeFileSync(crafted, Buffer.concat([header, body, cipher.getAuthTag()]));

    const parent = tempDir('ferry-backup-victim-');
    const run = await ferryServer(['restore', crafted], { FERRY_DATA_DIR: join(parent, 'data'), FERRY_BACKUP_PASSPHRASE: PASSPHRASE });
    assert.equal(run.code, 3);
    assert.match(run.stderr, /names a file outside the data folder/);
    assert.ok(!existsSync(join(parent, 'escaped')));
  });
});
