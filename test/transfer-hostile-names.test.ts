import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createContext } from '../agent/context.js';
import { AgentError, describeFailure } from '../agent/errors.js';
import { remoteError, SFTP_STATUS } from '../agent/transfer/errors.js';
import { jsonLine, printable } from '../agent/terminal-text.js';
import { tempDir } from './support/temp.js';
import { REAL_SERVERS } from './support/sftp-servers.js';
import { expectExitCode, FerryUser, folder, jsonLines, startWorld, startWorldOn, type Run, type World } from './support/transfer-world.js';

/**
 * File names are the server's to choose, and a terminal obeys what it is sent: names with escape
 * sequences, newlines, carriage returns and bidi overrides, served by a real sshd, must reach the
 * screen escaped (agent/terminal-text.ts), and reach programs exact in --json.
 */

/** What a terminal acts on, apart from the newlines that end ferry's own lines. */
const RAW_CONTROL = /[\x00-\x09\x0b-\x1f\x7f\u0080-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/u;

function assertNothingRaw(text: string, what: string): void {
  const found = RAW_CONTROL.exec(text);
  assert.equal(found, null, `${what}: a raw ${JSON.stringify(found?.[0])} at ${found?.index} in ${JSON.stringify(text)}`);
}

function assertRunClean(run: Run, what: string): void {
  assertNothingRaw(run.stdout, `${what} (stdout)`);
  assertNothingRaw(run.stderr, `${what} (stderr)`);
}

const HOSTILE = [
  '\x1b]0;pwned\x07', // retitles the terminal window
  '\x1b[2J', // clears the screen
  'a.txt\n-rw-r--r--            0 2020-01-01 00:00 forged.txt', // forges a line of `ls -l`
  'visible\rhidden', // the carriage return writes "hidden" over "visible"
  'report\u202etxt.exe', // reads "reportexe.txt"
  'csi\u009b31m', // the C1 form of ESC [
  'tab\there',
  'del\x7f',
  'sep\u2028line',
  'iso\u2066late',
  'back\\x1b', // a real backslash, and the four characters "x1b": not an escape
];
const FOLDER = 'dir\x1b[1m';
const INNER = 'inner\x1b[5m.txt';

for (const server of REAL_SERVERS) {
  describe(`hostile file names from the server (${server.name})`, function () {
    this.timeout(90_000);
    let world: World;
    let remote: string;
    before(async () => {
      world = await startWorldOn(server);
      remote = folder('ferry-hostile-');
      // Readable by everyone: one test logs in as an unprivileged user.
      chmodSync(remote, 0o755);
      for (const name of HOSTILE) writeFileSync(join(remote, name), `content of ${name}`);
      mkdirSync(join(remote, FOLDER), { mode: 0o755 });
      writeFileSync(join(remote, FOLDER, INNER), 'inner');
    });
    after(() => world?.close());

    const allNames = () => [...HOSTILE, FOLDER].sort();

    it('ls and ls -l show each name on one line, escaped; --json gives the exact names', async () => {
      const user = await FerryUser.create(world);
      const short = await user.run(['ls', user.url(remote)]);
      expectExitCode(short, 0, 'ls');
      assertRunClean(short, 'ls');
      const lines = short.stdout.trimEnd().split('\n');
      assert.equal(lines.length, allNames().length, 'one line per entry: no forged line');
      assert.deepEqual(lines.sort(), allNames().map((n) => (n === FOLDER ? `${printable(n)}/` : printable(n))).sort());
      // The escapes read back unambiguously.
      for (const shown of ['\\x1b]0;pwned\\x07', '\\x1b[2J', 'a.txt\\n-rw-r--r--', 'visible\\rhidden', 'report\\u202etxt.exe', 'csi\\x9b31m', 'tab\\there', 'del\\x7f', 'sep\\u2028line', 'iso\\u2066late', 'back\\\\x1b', 'dir\\x1b[1m/']) {
        assert.ok(lines.some((l) => l.includes(shown)), `${shown} in ${JSON.stringify(lines)}`);
      }

      const long = await user.run(['ls', '-l', user.url(remote)]);
      expectExitCode(long, 0, 'ls -l');
      assertRunClean(long, 'ls -l');
      const longLines = long.stdout.trimEnd().split('\n');
      assert.equal(longLines.length, allNames().length, 'ls -l: one line per entry');
      assert.ok(longLines.every((l) => /^[-d]r/.test(l)), 'every line is a real entry');
      assert.equal(longLines.filter((l) => l.includes('forged.txt')).length, 1);

      const recursive = await user.run(['ls', '-r', user.url(remote)]);
      expectExitCode(recursive, 0, 'ls -r');
      assertRunClean(recursive, 'ls -r');
      assert.match(recursive.stdout, /^dir\\x1b\[1m\/inner\\x1b\[5m\.txt$/m);

      const json = await user.run(['ls', '-r', '--json', user.url(remote)]);
      expectExitCode(json, 0, 'ls --json');
      assertRunClean(json, 'ls --json');
      assert.deepEqual(jsonLines(json).map((e) => e.name).sort(), [...allNames(), `${FOLDER}/${INNER}`].sort());
    });

    it('get -r with --progress, on a terminal and with --json shows escaped names (exact in JSON) and keeps the exact names on disk', async () => {
      const user = await FerryUser.create(world);
      const lines = folder();
      const withLines = await user.run(['get', '-r', '--progress', user.url(`${remote}/`), `${lines}/`]);
      expectExitCode(withLines, 0, 'get -r --progress');
      assertRunClean(withLines, 'get -r --progress');
      assert.equal(withLines.stderr.trimEnd().split('\n').length, HOSTILE.length + 2, 'a line per file and the summary');
      assert.match(withLines.stderr, /^ferry: get \\x1b\]0;pwned\\x07 \(/m);
      assert.deepEqual(readdirSync(lines).sort(), allNames(), 'the exact names on disk');
      assert.deepEqual(readdirSync(join(lines, FOLDER)), [INNER]);

      const quiet = await user.run(['get', '-r', user.url(`${remote}/`), `${folder()}/`]);
      expectExitCode(quiet, 0, 'get -r');
      assertRunClean(quiet, 'get -r');

      // The bar names the file in flight; ferry's own drawing uses escapes, a name's must not.
      const onTerminal = await user.runOnTerminal(['get', '-r', user.url(`${remote}/`), `${folder()}/`]);
      assert.equal(onTerminal.code, 0, onTerminal.screen);
      for (const raw of ['\x07', '\x1b]', '\x1b[2J', '\x1b[1m', '\x1b[5m', '\u202e', '\u009b', '\x7f', '\u2028', '\u2066', 'visible\rhidden']) {
        assert.ok(!onTerminal.screen.includes(raw), `no raw ${JSON.stringify(raw)} on the screen: ${JSON.stringify(onTerminal.screen)}`);
      }
      assert.match(onTerminal.screen, /12 files, /);

      const json = await user.run(['get', '-r', '--json', user.url(`${remote}/`), `${folder()}/`]);
      expectExitCode(json, 0, 'get -r --json');
      assertRunClean(json, 'get -r --json');
      const done = jsonLines(json).filter((e) => e.event === 'done').map((e) => e.file as string);
      assert.deepEqual(done.sort(), [...HOSTILE, `${FOLDER}/${INNER}`].sort());

      // The local names, now as hostile as the server's, going back up.
      const back = folder();
      const put = await user.run(['put', '-r', '--progress', `${lines}/`, user.url(`${back}/`)]);
      expectExitCode(put, 0, 'put -r --progress of the downloaded names');
      assertRunClean(put, 'put -r --progress');
      assert.deepEqual(readdirSync(back).sort(), allNames());
    });

    it('sync --dry-run prints an escaped plan, and --json the exact one', async () => {
      const user = await FerryUser.create(world);
      const local = folder();
      const plan = await user.run(['sync', '--dry-run', user.url(remote), local]);
      expectExitCode(plan, 0, 'sync --dry-run');
      assertRunClean(plan, 'sync --dry-run');
      const lines = plan.stdout.trimEnd().split('\n');
      assert.equal(lines.length, HOSTILE.length + 3, 'a copy line per file, the folder, its file, the summary');
      assert.ok(lines.includes(`mkdir  ${printable(FOLDER)}/`), plan.stdout);
      assert.ok(lines.some((l) => l.startsWith('copy   a.txt\\n-rw-r--r--')), plan.stdout);

      const json = await user.run(['sync', '--dry-run', '--json', user.url(remote), local]);
      expectExitCode(json, 0, 'sync --dry-run --json');
      assertRunClean(json, 'sync --dry-run --json');
      const planned = jsonLines(json).filter((e) => e.event === 'plan').map((e) => e.relative as string);
      assert.deepEqual(planned.sort(), [...allNames(), `${FOLDER}/${INNER}`].sort());
      assert.deepEqual(readdirSync(local), [], 'a dry run changes nothing');
    });
  });
}

// Logs in as another user: sshd's settings (one AuthorizedKeysFile for every login) are OpenSSH's.
describe('a hostile name the login may not read (OpenSSH\'s sshd, as another user)', function () {
  this.timeout(90_000);
  let world: World;
  before(async () => {
    world = await startWorld();
  });
  after(() => world?.close());

  it('a file the login may not read fails with its name escaped in every error line', async () => {
    const secret = 'secret\x1b[2J\nferry: forged.txt: all fine\r';
    const locked = folder('ferry-hostile-locked-');
    chmodSync(locked, 0o755);
    writeFileSync(join(locked, 'readable.txt'), 'fine');
    writeFileSync(join(locked, secret), 'root only', { mode: 0o600 });
    const user = await FerryUser.create(world);
    // sshd takes the test key for any login (one AuthorizedKeysFile, which sshd reads as the user:
    // its folder must let "nobody" in; the host keys in it stay 0600). Nobody may not read what root may.
    chmodSync(world.sshd.dir, 0o711);
    const url = `sftp://nobody@${world.sshd.host}:${world.sshd.port}${locked}/`;
    for (const flags of [['--progress'], []]) {
      const run = await user.run(['get', '-r', ...flags, url, `${folder()}/`]);
      expectExitCode(run, 23, `get -r ${flags.join(' ')} with one unreadable file`);
      assertRunClean(run, `get -r ${flags.join(' ')} failing`);
      assert.match(run.stderr, /^ferry: \S+\/secret\\x1b\[2J\\nferry: forged\.txt: all fine\\r: permission denied$/m);
      assert.doesNotMatch(run.stderr, /^ferry: forged/m, 'no forged line');
      assert.match(run.stderr.trimEnd().split('\n').at(-1)!, /^ferry: 1 of 2 files failed$/);
    }
    const json = await user.run(['get', '-r', '--json', url, `${folder()}/`]);
    expectExitCode(json, 23, 'get -r --json failing');
    assertRunClean(json, 'get -r --json failing');
    const failed = jsonLines(json).find((e) => e.event === 'failed')!;
    assert.equal(failed.file, secret, 'the exact name');
    assert.equal(failed.exit, 'PERMISSION');
  });
});

describe('text for the terminal (unit)', () => {
  /** Reads printable's output back: it must give the original text, whatever that was. */
  function unescape(shown: string): string {
    return shown.replace(/\\(x[0-9a-f]{2}|u[0-9a-f]{4}|[nrt\\])/g, (_, code: string) => {
      if (code === 'n') return '\n';
      if (code === 'r') return '\r';
      if (code === 't') return '\t';
      if (code === '\\') return '\\';
      return String.fromCharCode(parseInt(code.slice(1), 16));
    });
  }

  it('escapes C0, DEL, C1, bidi controls, separators, lone surrogates and the backslash, and keeps the rest', () => {
    assert.equal(printable('\x1b]0;pwned\x07'), '\\x1b]0;pwned\\x07');
    assert.equal(printable('a\nb\rc\td\x00e\x7f\u0085\u009b'), 'a\\nb\\rc\\td\\x00e\\x7f\\x85\\x9b');
    assert.equal(printable('x\u202ey\u2066z\u2069\u200f\u061c\u2028\u2029'), 'x\\u202ey\\u2066z\\u2069\\u200f\\u061c\\u2028\\u2029');
    assert.equal(printable('back\\x1b'), 'back\\\\x1b');
    assert.equal(printable('lone\ud800 pair\u{1f600}'), 'lone\\ud800 pair\u{1f600}');
    assert.equal(printable('Grüße, 東京 – ok.txt'), 'Grüße, 東京 – ok.txt');
  });

  it('is unambiguous: the shown text reads back to the original for every code unit', () => {
    const all = Array.from({ length: 0x10000 }, (_, i) => String.fromCharCode(i)).join('');
    for (let at = 0; at < all.length; at += 97) {
      const sample = `${all.slice(at, at + 97)}\\x41\\\\n`;
      const shown = printable(sample);
      assertNothingRaw(shown, 'printable');
      assert.equal(unescape(shown), sample);
    }
  });

  it('writes JSON lines that parse back to the exact text, with no raw C1, bidi or line separator', () => {
    const value = { name: `${HOSTILE.join('|')}\u2029\u0085` };
    const line = jsonLine(value);
    assertNothingRaw(line, 'jsonLine');
    assert.deepEqual(JSON.parse(line), value);
  });

  it('shows an SFTP status message from the server escaped, in the error line and in notices', async () => {
    // As ssh2 makes them from SSH_FXP_STATUS: the server's message text, the status as `code`.
    const status = Object.assign(new Error('\x1b]0;pwned\x07\x1b[2J\nferry: everything went fine\r\u202e'), { code: SFTP_STATUS.FAILURE });
    const error = remoteError(status, '/upload/a.txt');
    assert.ok(error instanceof AgentError);
    assert.equal(error.message, `/upload/a.txt: the server failed (${status.message})`, 'the message keeps the text (JSON carries it exact)');
    const shown = describeFailure(error).message;
    assertNothingRaw(shown, 'describeFailure');
    assert.equal(shown, '/upload/a.txt: the server failed (\\x1b]0;pwned\\x07\\x1b[2J\\nferry: everything went fine\\r\\u202e)');

    // The failure lines of a transfer with several files, and retry notices, are notices.
    const stderr: string[] = [];
    const home = tempDir('ferry-notice-');
    const ctx = await createContext({ env: { HOME: home, FERRY_HOME: join(home, 'ferry') }, serverOption: undefined, agentVersion: 'test', stdout: () => undefined, stderr: (text) => void stderr.push(text) });
    ctx.notice(error.message);
    assert.deepEqual(stderr, [`ferry: ${shown}\n`]);
  });
});
