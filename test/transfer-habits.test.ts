import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseRate, parseRates } from '../agent/transfer/bwlimit.js';
import { globToRegex, PathFilter } from '../agent/transfer/filters.js';
import { barLine } from '../agent/transfer/progress-bar.js';
import { freePort } from './support/processes.js';
import {
  assertOneLineError, expectExitCode, FerryUser, folder, jsonLines, randomFile, sha256, startWorld, tree, type Run, type World,
} from './support/transfer-world.js';

/**
 * What sftp, rclone and lftp users expect of a daily tool: --bwlimit, --exclude/--include, `-` as
 * standard input or output, --json output that stays whole on failure, and progress off a terminal.
 */

function write(root: string, files: Record<string, string>): void {
  for (const [relative, content] of Object.entries(files)) {
    mkdirSync(join(root, relative, '..'), { recursive: true });
    writeFileSync(join(root, relative), content);
  }
}

/** The files under `root`, relative, sorted (folders left out). */
function files(root: string): string[] {
  return Object.keys(tree(root)).filter((k) => !k.endsWith('/')).sort();
}

/** Every stdout line is a JSON object, and the last one is the summary. */
function wholeJson(run: Run): Record<string, any>[] {
  const lines = run.stdout.split('\n').filter((l) => l !== '');
  for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `not JSON on stdout: ${line}\nstderr: ${run.stderr}`);
  const events = jsonLines(run);
  assert.equal(events.at(-1)?.event, 'summary', run.stdout);
  assert.equal(events.filter((e) => e.event === 'summary').length, 1, 'one summary');
  return events;
}

describe('daily habits: rates, filters, patterns', () => {
  it('reads rates as rclone does: binary K/M/G, a bare number in KiB, off', () => {
    assert.equal(parseRate('500K'), 500 * 1024);
    assert.equal(parseRate('10M'), 10 * 1024 * 1024);
    assert.equal(parseRate('1.5MiB'), 1.5 * 1024 * 1024);
    assert.equal(parseRate('1G'), 1024 ** 3);
    assert.equal(parseRate('2048B'), 2048);
    assert.equal(parseRate('100'), 100 * 1024);
    assert.equal(parseRate('off'), null);
    for (const bad of ['fast', '10X', '-1M', '', 'M']) assert.throws(() => parseRate(bad), /not a rate/);
    // UP:DOWN, as rclone: each way its own, `off` on one side.
    assert.deepEqual(parseRates('10M:100M'), { up: 10 * 1024 ** 2, down: 100 * 1024 ** 2 });
    assert.deepEqual(parseRates('off:1M'), { up: null, down: 1024 ** 2 });
    assert.deepEqual(parseRates('500K'), { up: 500 * 1024, down: 500 * 1024 });
    for (const bad of ['1M:2M:3M', '1M:', ':1M', '1M:fast']) assert.throws(() => parseRates(bad), /not a rate/);
  });

  it('matches globs: * within a name, ** across folders, ?, classes, {a,b}', () => {
    const m = (glob: string, path: string) => globToRegex(glob).test(path);
    assert.ok(m('*.log', 'a.log') && m('*.log', '.hidden.log') && !m('*.log', 'a/b.log'));
    assert.ok(m('a/**/b', 'a/b') && m('a/**/b', 'a/x/y/b') && !m('a/**/b', 'ab'));
    assert.ok(m('docs/**', 'docs/x/y.md') && !m('docs/**', 'other/docs/x'));
    assert.ok(m('file?.txt', 'file1.txt') && !m('file?.txt', 'file10.txt') && !m('a?b', 'a/b'));
    assert.ok(m('[ab]*.c', 'a1.c') && !m('[ab]*.c', 'c1.c') && m('[!ab]*.c', 'c1.c') && m('[a-c]x', 'bx'));
    assert.ok(m('x[', 'x[') && m('a\\*b', 'a*b') && !m('a\\*b', 'axb') && m('a.b', 'a.b') && !m('a.b', 'axb'));
    // Braces, as rclone's: alternatives, nested, empty, with globs inside; an unclosed one is itself.
    assert.ok(m('*.{jpg,png}', 'a.jpg') && m('*.{jpg,png}', 'b.png') && !m('*.{jpg,png}', 'c.gif') && !m('*.{jpg,png}', 'a.jpgpng'));
    assert.ok(m('{src,lib/**}/*.ts', 'src/a.ts') && m('{src,lib/**}/*.ts', 'lib/x/y/a.ts') && !m('{src,lib/**}/*.ts', 'test/a.ts'));
    assert.ok(m('a{,.bak}', 'a') && m('a{,.bak}', 'a.bak') && m('{x,{y,z}1}', 'z1') && !m('{x,{y,z}1}', 'z'));
    assert.ok(m('{[ab],c}d', 'bd') && m('{a\\,b,c}', 'a,b') && !m('{a\\,b,c}', 'b'));
    assert.ok(m('a{b', 'a{b') && m('a}b', 'a}b') && m('\\{x\\}', '{x}'));
  });

  it('decides by the first rule that matches; names match at any depth, paths with a / from the root', () => {
    const f = (rules: [boolean, string][]) => new PathFilter(rules.map(([include, pattern]) => ({ include, pattern })));
    const excl = f([[false, '*.tmp'], [false, '/build'], [false, 'cache/']]);
    assert.equal(excl.admits('a.tmp', false), false);
    assert.equal(excl.admits('deep/er/a.tmp', false), false);
    assert.equal(excl.admits('build', true), false);
    assert.equal(excl.admits('sub/build', true), true, '/build is the root one only');
    assert.equal(excl.admits('cache', true), false);
    assert.equal(excl.admits('cache', false), true, 'cache/ matches folders only');
    assert.equal(excl.admits('keep.txt', false), true, 'no rule: copied');
    // With an include rule, what no rule names is left out, except inside an included folder.
    const incl = f([[false, 'src/skip.txt'], [true, '*.txt'], [true, 'src']]);
    assert.equal(incl.admits('src/skip.txt', false), false, 'the exclude came first');
    assert.equal(incl.admits('notes.txt', false), true);
    assert.equal(incl.admits('a/b/notes.txt', false), true);
    assert.equal(incl.admits('a/b/notes.md', false), false);
    assert.equal(incl.admits('src/main.c', false), true, 'inside an included folder');
    assert.equal(incl.admits('a', true), true, 'folders no rule names are entered');
    assert.throws(() => f([[false, '']]), /needs a pattern/);
  });

  it('lays the bar out for the terminal: never wider, the bar shrinks, the name goes first', () => {
    const figures = '42% 1.00 MiB/3.00 MiB 1.20 MiB/s 0:02 left 0/1';
    const short = '42% 1.20 MiB/s 0:02';
    for (const columns of [12, 20, 40, 50, 60, 80, 120, 200]) {
      const line = barLine({ progress: 0.42, figures, short, name: 'some/long/folder/name/file.bin' }, columns);
      assert.ok([...line].length <= columns, `${columns}: ${line} (${[...line].length})`);
      assert.ok(line.includes('42%'), line);
    }
    const line = (columns: number) => barLine({ progress: 0.5, figures, short, name: 'f.bin' }, columns);
    assert.match(line(120), /^█{20}░{20} 42% 1\.00 MiB\/3\.00 MiB .* f\.bin$/);
    assert.match(line(60), /^█+░+ 42% 1\.00 MiB\/3\.00 MiB/, 'the bar shrinks first');
    assert.doesNotMatch(line(60), /f\.bin/, 'no room for the name');
    assert.match(line(40), /^█+░+ 42% 1\.20 MiB\/s 0:02$/, 'then the figures are shortened');
    assert.equal(line(20), '42% 1.20 MiB/s 0:02', 'then the bar goes');
  });
});

describe('daily habits against a real sshd', function () {
  this.timeout(120_000);
  let world: World;
  let user: FerryUser;
  before(async () => {
    world = await startWorld();
    user = await FerryUser.create(world);
  });
  after(() => world?.close());

  // ------------------------------------------------------------ --bwlimit

  it('--bwlimit holds a 2 MiB upload and download to about 512 KiB/s (3 s at least), and refuses a bad rate', async () => {
    const local = folder();
    const remote = folder();
    randomFile(join(local, 'big.bin'), 2 * 1024 * 1024);
    let started = Date.now();
    expectExitCode(await user.run(['put', '--bwlimit', '512K', join(local, 'big.bin'), user.url(`${remote}/`)]), 0, 'put --bwlimit');
    const up = Date.now() - started;
    assert.equal(sha256(join(remote, 'big.bin')), sha256(join(local, 'big.bin')));
    assert.ok(up >= 3_000, `put of 2 MiB at 512K took ${up} ms`);

    const back = folder();
    started = Date.now();
    expectExitCode(await user.run(['get', '--bwlimit', '512K', user.url(`${remote}/big.bin`), `${back}/`]), 0, 'get --bwlimit');
    const down = Date.now() - started;
    assert.equal(sha256(join(back, 'big.bin')), sha256(join(local, 'big.bin')));
    assert.ok(down >= 3_000, `get of 2 MiB at 512K took ${down} ms`);

    const bad = await user.run(['put', '--bwlimit', 'fast', join(local, 'big.bin'), user.url(`${remote}/`)]);
    expectExitCode(bad, 2, 'a bad rate');
    assertOneLineError(bad, /--bwlimit "fast" is not a rate/);
  });

  it('--bwlimit UP:DOWN limits each way by its own rate: off:512K leaves an upload alone and holds a download', async () => {
    const local = folder();
    const remote = folder();
    randomFile(join(local, 'two.bin'), 2 * 1024 * 1024);
    let started = Date.now();
    expectExitCode(await user.run(['put', '--bwlimit', 'off:512K', join(local, 'two.bin'), user.url(`${remote}/`)]), 0, 'put --bwlimit off:512K');
    const up = Date.now() - started;
    // Unlimited, 2 MiB up takes a fraction of a second here; at 512K it would take 3.5 s at least.
    assert.ok(up < 3_000, `put of 2 MiB with no upload limit took ${up} ms`);
    const back = folder();
    started = Date.now();
    expectExitCode(await user.run(['get', '--bwlimit', 'off:512K', user.url(`${remote}/two.bin`), `${back}/`]), 0, 'get --bwlimit off:512K');
    const down = Date.now() - started;
    assert.equal(sha256(join(back, 'two.bin')), sha256(join(local, 'two.bin')));
    assert.ok(down >= 3_000, `get of 2 MiB at 512K took ${down} ms`);
  });

  it('--bwlimit is for the whole run, not each file: 4 files of 512 KiB at 512K take 3 s at least', async () => {
    const local = folder();
    const remote = folder();
    for (const name of ['a', 'b', 'c', 'd']) randomFile(join(local, `${name}.bin`), 512 * 1024);
    const started = Date.now();
    expectExitCode(await user.run(['put', '--bwlimit', '512K', ...['a', 'b', 'c', 'd'].map((n) => join(local, `${n}.bin`)), user.url(`${remote}/`)]), 0, 'put 4 files');
    const took = Date.now() - started;
    assert.deepEqual(files(remote), ['a.bin', 'b.bin', 'c.bin', 'd.bin']);
    assert.ok(took >= 3_000, `4 × 512 KiB at 512K took ${took} ms (a limit per file would take about 1 s)`);
  });

  // ------------------------------------------------------------ --exclude / --include

  const sample = {
    'keep.txt': 'k', 'a.tmp': 't', 'sub/keep.txt': 'k2', 'sub/b.tmp': 't2', 'node_modules/x.js': 'x', 'sub/node_modules/y.js': 'y',
    'build/out.o': 'o', 'sub/build/out.o': 'o2', 'notes.md': 'n',
  };

  it('put -r --exclude: a name at any depth, a /path from the root only, an excluded folder not entered', async () => {
    const local = folder();
    const remote = folder();
    write(join(local, 'proj'), sample);
    const run = await user.run(['put', '-r', '--exclude', '*.tmp', '--exclude', 'node_modules', '--exclude', '/build', join(local, 'proj'), user.url(`${remote}/`)]);
    expectExitCode(run, 0, 'put -r --exclude');
    assert.deepEqual(files(join(remote, 'proj')), ['keep.txt', 'notes.md', 'sub/build/out.o', 'sub/keep.txt']);
  });

  it('get -r --include/--exclude: the first rule that matches decides, and with --include nothing else goes', async () => {
    const remote = folder();
    write(join(remote, 'proj'), sample);
    const first = folder();
    expectExitCode(await user.run(['get', '-r', '--exclude', 'sub/keep.txt', '--include', '*.txt', user.url(`${remote}/proj`), `${first}/`]), 0, 'exclude then include');
    assert.deepEqual(files(join(first, 'proj')), ['keep.txt']);
    const second = folder();
    expectExitCode(await user.run(['get', '-r', '--include', '*.txt', '--exclude', 'sub/keep.txt', user.url(`${remote}/proj`), `${second}/`]), 0, 'include then exclude');
    assert.deepEqual(files(join(second, 'proj')), ['keep.txt', 'sub/keep.txt']);
    const bad = await user.run(['get', '-r', '--exclude', '', user.url(`${remote}/proj`), `${second}/`]);
    expectExitCode(bad, 2, 'an empty pattern');
  });

  it('--include makes no empty folders where nothing is included (put, get, sync), but a folder it names comes even empty', async () => {
    const withEmpty = (root: string) => {
      write(root, sample);
      mkdirSync(join(root, 'empty'));
      mkdirSync(join(root, 'sub', 'deep', 'deeper'), { recursive: true });
      writeFileSync(join(root, 'sub', 'deep', 'deeper', 'x.txt'), 'x');
    };
    const expected = { 'keep.txt': '1:', 'sub/': 'dir', 'sub/deep/': 'dir', 'sub/deep/deeper/': 'dir', 'sub/deep/deeper/x.txt': '1:', 'sub/keep.txt': '2:' };
    const shape = (root: string) => Object.fromEntries(Object.entries(tree(root)).map(([k, v]) => [k, v === 'dir' ? v : v.replace(/:.*/, ':')]));
    const local = folder();
    const remote = folder();
    withEmpty(join(local, 'proj'));
    withEmpty(join(remote, 'proj'));

    expectExitCode(await user.run(['put', '-r', '--include', '*.txt', join(local, 'proj'), user.url(`${remote}/up/`)]), 0, 'put -r --include');
    assert.deepEqual(shape(join(remote, 'up', 'proj')), expected);
    const down = folder();
    expectExitCode(await user.run(['get', '-r', '--include', '*.txt', user.url(`${remote}/proj`), `${down}/`]), 0, 'get -r --include');
    assert.deepEqual(shape(join(down, 'proj')), expected);
    const synced = folder();
    expectExitCode(await user.run(['sync', '--include', '*.txt', join(local, 'proj'), user.url(synced)]), 0, 'sync --include');
    assert.deepEqual(shape(synced), expected);

    // A folder an include rule names comes whole, even empty; an --exclude alone keeps every other folder.
    const named = folder();
    expectExitCode(await user.run(['put', '-r', '--include', '*.txt', '--include', 'empty/', join(local, 'proj'), user.url(`${named}/`)]), 0, 'put -r --include empty/');
    assert.deepEqual(shape(join(named, 'proj')), { ...expected, 'empty/': 'dir' });
    const excluded = folder();
    expectExitCode(await user.run(['put', '-r', '--exclude', '*.md', join(local, 'proj'), user.url(`${excluded}/`)]), 0, 'put -r --exclude');
    assert.equal(shape(join(excluded, 'proj'))['empty/'], 'dir');
  });

  it('sync --delete never deletes what is excluded on the destination, nor the folders holding it', async () => {
    const src = folder();
    const dst = folder();
    write(src, { 'a.txt': 'new a', 'skip.log': 'source log' });
    write(dst, { 'a.txt': 'old', 'old.txt': 'gone', 'extra.log': 'keep me', 'gone/kept.log': 'keep me too', 'gone/x.txt': 'gone', 'whole/y.txt': 'gone' });
    const run = await user.run(['sync', '--json', '--delete', '--exclude', '*.log', src, user.url(dst)]);
    expectExitCode(run, 0, 'sync --delete --exclude');
    assert.deepEqual(files(dst), ['a.txt', 'extra.log', 'gone/kept.log']);
    const events = wholeJson(run);
    assert.deepEqual(events.filter((e) => e.event === 'deleted').map((e) => e.file).sort(), ['gone/x.txt', 'old.txt', 'whole']);
    assert.deepEqual([events.at(-1)!.files, events.at(-1)!.failed], [1, 0]);
    assert.equal(readFileSync(join(dst, 'a.txt'), 'utf8'), 'new a');
    assert.equal(existsSync(join(dst, 'whole')), false, 'a folder with nothing excluded goes as a whole');
  });

  // ------------------------------------------------------------ - as stdin / stdout

  it('get host:f - writes the file\'s bytes to stdout and nothing else (| tar x works)', async () => {
    const remote = folder();
    const content = folder();
    write(content, { 'x/one.txt': 'one', 'x/two.txt': 'two' });
    randomFile(join(content, 'x', 'blob.bin'), 300_000);
    const made = spawnSync('tar', ['cf', join(remote, 'pack.tar'), '-C', content, 'x']);
    assert.equal(made.status, 0, String(made.stderr));
    const run = await user.run(['get', '--progress', user.url(`${remote}/pack.tar`), '-']);
    expectExitCode(run, 0, 'get -');
    assert.ok(run.stdoutBytes!.equals(readFileSync(join(remote, 'pack.tar'))), 'stdout is the file, byte for byte');
    const out = folder();
    const unpacked = spawnSync('tar', ['x', '-C', out], { input: run.stdoutBytes });
    assert.equal(unpacked.status, 0, String(unpacked.stderr));
    assert.deepEqual(tree(join(out, 'x')), tree(join(content, 'x')));
  });

  it('put - host:f stores stdin in the remote file through its part file', async () => {
    const remote = folder();
    const data = randomFile(join(folder(), 'src.bin'), 1_500_000);
    const run = await user.run(['put', '-', user.url(`${remote}/from-stdin.bin`)], { input: data });
    expectExitCode(run, 0, 'put -');
    assert.ok(readFileSync(join(remote, 'from-stdin.bin')).equals(data));
    assert.deepEqual(readdirSync(remote), ['from-stdin.bin'], 'no part file left');
    const empty = await user.run(['put', '-', user.url(`${remote}/empty.bin`)], { input: Buffer.alloc(0) });
    expectExitCode(empty, 0, 'put - of nothing');
    assert.equal(readFileSync(join(remote, 'empty.bin')).length, 0);
  });

  it('put - interrupted by Ctrl-C ends with 130 and one line, and leaves no part file (standard input cannot be resumed)', async () => {
    const remote = folder();
    const part = join(remote, '.piped.bin.ferry-part');
    let signalled = false;
    const run = await user.run(['put', '-', user.url(`${remote}/piped.bin`)], {
      killAfterMs: 30_000,
      // Standard input stays open: the upload is under way, its part file there, when Ctrl-C comes.
      feed: (child) => {
        child.stdin.write(randomBytes(256 * 1024));
        const poll = setInterval(() => {
          if (!existsSync(part)) return;
          clearInterval(poll);
          signalled = true;
          child.kill('SIGINT');
        }, 20);
        child.once('close', () => clearInterval(poll));
      },
    });
    assert.ok(signalled, 'the part file appeared while the upload was under way');
    expectExitCode(run, 130, 'put - interrupted');
    assert.equal(run.stderr, 'ferry: put -: interrupted; nothing was stored (standard input cannot be read again, so there is nothing to resume)\n');
    assert.deepEqual(readdirSync(remote), [], 'no part file, nothing under the name');
  });

  it('says USAGE (2) for - with several sources, -r, --json on stdout, or a folder as its name', async () => {
    const remote = folder();
    write(remote, { 'a.txt': 'a', 'b.txt': 'b', 'dir/c.txt': 'c' });
    const cases: [string[], RegExp][] = [
      [['get', user.url(`${remote}/a.txt`), user.url(`${remote}/b.txt`), '-'], /standard output takes one file/],
      [['get', user.url(`${remote}/*.txt`), '-'], /matches 2 files/],
      [['get', '-r', user.url(`${remote}/dir`), '-'], /standard output takes one file/],
      [['get', user.url(`${remote}/dir`), '-'], /is not a file/],
      [['get', '--json', user.url(`${remote}/a.txt`), '-'], /--json cannot share standard output/],
      [['put', '-', join(remote, 'a.txt'), user.url(`${remote}/x/`)], /give - as the only source/],
      [['put', '-r', '-', user.url(`${remote}/x`)], /give - as the only source/],
      [['put', '-', user.url(`${remote}/dir`)], /standard input has no name/],
    ];
    for (const [args, message] of cases) {
      const run = await user.run(args, { input: Buffer.from('data') });
      expectExitCode(run, 2, args.join(' '));
      assertOneLineError(run, message);
      if (args.includes('--json')) assert.deepEqual(wholeJson(run).map((e) => [e.event, e.exit]), [['failed', 'USAGE'], ['summary', undefined]]);
      else assert.equal(run.stdout, '', args.join(' '));
    }
  });

  // ------------------------------------------------------------ --json on failure

  it('--json prints a failed event per source and a summary whatever went wrong: connection, host key, login, missing file', async () => {
    const local = folder();
    write(local, { 'a.txt': 'a', 'b.txt': 'b' });
    const sources = [join(local, 'a.txt'), join(local, 'b.txt')];
    const port = await freePort();
    const refused = await user.run(['put', '--json', ...sources, `sftp://${world.sshd.user}@127.0.0.1:${port}/tmp/`]);
    expectExitCode(refused, 20, 'connection refused');
    let events = wholeJson(refused);
    assert.deepEqual(events.filter((e) => e.event === 'failed').map((e) => [e.file, e.exit]), sources.map((s) => [s, 'CONNECTION']));
    assert.equal(events.at(-1)!.failed, 2);

    const stranger = await FerryUser.create(world, { knownHosts: false });
    const hostKey = await stranger.run(['get', '--json', user.url(`${local}/a.txt`), `${folder()}/`]);
    expectExitCode(hostKey, 22, 'unknown host key');
    events = wholeJson(hostKey);
    assert.deepEqual(events.filter((e) => e.event === 'failed').map((e) => e.exit), ['HOST_KEY']);

    const keyless = await FerryUser.create(world, { defaultKey: false });
    const auth = await keyless.run(['sync', '--json', local, keyless.url(folder())]);
    expectExitCode(auth, 21, 'no key');
    events = wholeJson(auth);
    assert.deepEqual(events.filter((e) => e.event === 'failed').map((e) => [e.file, e.exit]), [[local, 'AUTH']]);

    const missing = await user.run(['put', '--json', join(local, 'nope.txt'), user.url(`${folder()}/`)]);
    expectExitCode(missing, 24, 'missing source');
    events = wholeJson(missing);
    assert.deepEqual(events.filter((e) => e.event === 'failed').map((e) => e.exit), ['NOT_FOUND']);
  });

  it('several sources with some missing: the others are copied, each missing one is named, PARTIAL (23)', async () => {
    const local = folder();
    write(local, { 'a.txt': 'a', 'b.txt': 'b' });
    const remote = folder();
    const args = ['put', '--json', join(local, 'a.txt'), join(local, 'gone1.txt'), join(local, 'b.txt'), join(local, 'gone*.bin'), user.url(`${remote}/new/`)];
    const run = await user.run(args);
    expectExitCode(run, 23, 'put with missing sources');
    assert.deepEqual(files(join(remote, 'new')), ['a.txt', 'b.txt']);
    const events = wholeJson(run);
    assert.deepEqual(events.filter((e) => e.event === 'failed').map((e) => [e.file, e.exit]), [[join(local, 'gone1.txt'), 'NOT_FOUND'], [join(local, 'gone*.bin'), 'NOT_FOUND']]);
    assert.deepEqual(events.filter((e) => e.event === 'done').map((e) => e.file).sort(), ['a.txt', 'b.txt']);
    assert.equal(events.at(-1)!.files, 2);
    assert.equal(events.at(-1)!.failed, 2);

    // The same for get, and for people: a line per missing source on stderr.
    const back = folder();
    const get = await user.run(['get', user.url(`${remote}/new/a.txt`), user.url(`${remote}/new/nothing.txt`), `${back}/`]);
    expectExitCode(get, 23, 'get with a missing source');
    assert.deepEqual(files(back), ['a.txt']);
    assert.match(get.stderr, /nothing\.txt: no such file or folder/);
    assert.equal(get.stdout, '');
  });

  // ------------------------------------------------------------ progress off a terminal

  it('--progress off a terminal prints running totals on stderr while a large file moves', async () => {
    const local = folder();
    const remote = folder();
    randomFile(join(local, 'big.bin'), 4 * 1024 * 1024);
    const run = await user.run(['put', '--progress', '--bwlimit', '1M', join(local, 'big.bin'), user.url(`${remote}/`)]);
    expectExitCode(run, 0, 'put --progress');
    assert.equal(run.stdout, '');
    const totals = run.stderr.split('\n').filter((l) => /^ferry: put: [\d.]+ (B|KiB|MiB) of 4\.00 MiB \(\d+%\), [\d.]+ (B|KiB|MiB)\/s, 0\/1 files done$/.test(l));
    assert.ok(totals.length >= 1, `running totals during the 4 s upload:\n${run.stderr}`);
    assert.match(run.stderr, /put big\.bin \(4\.00 MiB\)\nferry: 1 file, 4\.00 MiB in/);
  });
});
