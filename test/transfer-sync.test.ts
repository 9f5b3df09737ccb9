import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { planSync, type ListedEntry } from '../agent/transfer/sync-plan.js';
import { REAL_SERVERS } from './support/sftp-servers.js';
import { expectExitCode, FerryUser, folder, jsonLines, startWorldOn, tree, type World } from './support/transfer-world.js';

const T = 1_700_000_000;

function makeSource(root: string): void {
  mkdirSync(join(root, 'docs', 'old'), { recursive: true });
  writeFileSync(join(root, 'a.txt'), 'alpha');
  writeFileSync(join(root, 'docs', 'b.txt'), 'bravo');
  writeFileSync(join(root, 'docs', 'old', 'c.txt'), 'charlie');
  for (const f of ['a.txt', 'docs/b.txt', 'docs/old/c.txt']) utimesSync(join(root, f), T, T);
}

function copied(run: { stdout: string }): string[] {
  return jsonLines({ code: 0, stderr: '', ...run }).filter((e) => e.event === 'done').map((e) => e.file as string).sort();
}

for (const server of REAL_SERVERS) {
  describe(`ferry sync (${server.name})`, function () {
    this.timeout(60_000);
    let world: World;
    let user: FerryUser;
    before(async () => {
      world = await startWorldOn(server);
      user = await FerryUser.create(world);
    });
    after(() => world?.close());

    it('mirrors a local folder to the server, then copies only what changed by size or time', async () => {
      const local = folder();
      const remote = folder();
      makeSource(local);
      const first = await user.run(['sync', '--json', local, user.url(`${remote}/mirror`)]);
      expectExitCode(first, 0, 'first sync');
      assert.deepEqual(copied(first), ['a.txt', 'docs/b.txt', 'docs/old/c.txt']);
      assert.deepEqual(tree(join(remote, 'mirror')), tree(local));
      assert.equal(statSync(join(remote, 'mirror', 'a.txt')).mtimeMs, T * 1000);

      const again = await user.run(['sync', '--json', local, user.url(`${remote}/mirror`)]);
      assert.deepEqual(copied(again), [], 'nothing changed, nothing copied');

      writeFileSync(join(local, 'a.txt'), 'alpha, longer');
      utimesSync(join(local, 'docs', 'b.txt'), T + 60, T + 60);
      writeFileSync(join(local, 'new.txt'), 'new');
      const changed = await user.run(['sync', '--json', local, user.url(`${remote}/mirror`)]);
      assert.deepEqual(copied(changed), ['a.txt', 'docs/b.txt', 'new.txt']);
      assert.deepEqual(tree(join(remote, 'mirror')), tree(local));
    });

    it('removes what the source lacks only with --delete', async () => {
      const local = folder();
      const remote = folder();
      makeSource(local);
      expectExitCode(await user.run(['sync', local, user.url(remote)]), 0, 'sync');
      writeFileSync(join(remote, 'extra.txt'), 'extra');
      mkdirSync(join(remote, 'extra-dir', 'deep'), { recursive: true });
      writeFileSync(join(remote, 'extra-dir', 'deep', 'x'), 'x');
      expectExitCode(await user.run(['sync', local, user.url(remote)]), 0, 'sync without --delete');
      assert.equal(readFileSync(join(remote, 'extra.txt'), 'utf8'), 'extra');
      expectExitCode(await user.run(['sync', '--delete', local, user.url(remote)]), 0, 'sync --delete');
      assert.deepEqual(tree(remote), tree(local));
    });

    it('finds changed contents of the same size and time only with --checksum', async () => {
      const local = folder();
      const remote = folder();
      makeSource(local);
      expectExitCode(await user.run(['sync', local, user.url(remote)]), 0, 'sync');
      writeFileSync(join(remote, 'a.txt'), 'ALPHA'); // same size
      utimesSync(join(remote, 'a.txt'), T, T); // same time
      const byTime = await user.run(['sync', '--json', local, user.url(remote)]);
      assert.deepEqual(copied(byTime), []);
      assert.equal(readFileSync(join(remote, 'a.txt'), 'utf8'), 'ALPHA');
      const byContent = await user.run(['sync', '--json', '--checksum', local, user.url(remote)]);
      assert.deepEqual(copied(byContent), ['a.txt']);
      assert.equal(readFileSync(join(remote, 'a.txt'), 'utf8'), 'alpha');
    });

    it('--dry-run prints the plan and changes nothing', async () => {
      const local = folder();
      const remote = folder();
      makeSource(local);
      writeFileSync(join(remote, 'stale.txt'), 'stale');
      const before = tree(remote);
      const run = await user.run(['sync', '--dry-run', '--delete', local, user.url(remote)]);
      expectExitCode(run, 0, 'dry run');
      assert.match(run.stdout, /^mkdir +docs\/$/m);
      assert.match(run.stdout, /^copy +a\.txt \(new, 5 B\)$/m);
      assert.match(run.stdout, /^delete stale\.txt$/m);
      assert.match(run.stdout, /nothing was changed/);
      assert.deepEqual(tree(remote), before);
      const json = jsonLines(await user.run(['sync', '--dry-run', '--json', '--checksum', local, user.url(remote)]));
      assert.equal(json.at(-1)!.event, 'plan-summary');
      assert.equal(json.at(-1)!.copy, 3);
      assert.deepEqual(tree(remote), before);
    });

    it('mirrors a remote folder to a local one', async () => {
      const remote = folder();
      const local = folder();
      makeSource(remote);
      writeFileSync(join(local, 'mine.txt'), 'local only');
      expectExitCode(await user.run(['sync', user.url(remote), local]), 0, 'sync down');
      assert.equal(readFileSync(join(local, 'docs', 'old', 'c.txt'), 'utf8'), 'charlie');
      assert.equal(statSync(join(local, 'docs', 'b.txt')).mtimeMs, T * 1000);
      expectExitCode(await user.run(['sync', '--delete', user.url(`${remote}/`), `${local}/`]), 0, 'sync down --delete');
      assert.deepEqual(tree(local), tree(remote));
    });
  });
}

describe('sync plan', () => {
  const f = (relative: string, size = 1, mtime = 1): ListedEntry => ({ relative, type: 'file', size, mtime });
  const d = (relative: string): ListedEntry => ({ relative, type: 'dir', size: 0, mtime: 0 });

  it('copies new, resized and retimed files, makes folders, and keeps the rest', () => {
    const plan = planSync([d('x'), f('x/a'), f('b', 2), f('c', 1, 5), f('same')], [f('b', 1), f('c', 1, 4), f('same')], { delete: false, checksum: false });
    assert.deepEqual(plan.actions.map((a) => `${a.action} ${a.relative}`), ['mkdir x', 'copy b', 'copy c', 'copy x/a']);
    assert.equal(plan.unchanged, 1);
  });

  it('deletes extras deepest first, a whole folder in one step, with --delete', () => {
    const plan = planSync([f('keep')], [f('keep'), f('gone'), d('dir'), d('dir/sub'), f('dir/sub/x')], { delete: true, checksum: false });
    assert.deepEqual(plan.actions.map((a) => `${a.action} ${a.relative}`), ['delete gone', 'delete dir']);
  });

  it('replaces a file by a folder only with --delete, and says why otherwise', () => {
    const without = planSync([d('n'), f('n/a')], [f('n')], { delete: false, checksum: false });
    assert.deepEqual(without.actions.map((a) => a.action), ['conflict']);
    const withDelete = planSync([d('n'), f('n/a')], [f('n')], { delete: true, checksum: false });
    assert.deepEqual(withDelete.actions.map((a) => `${a.action} ${a.relative}`), ['delete n', 'mkdir n', 'copy n/a']);
  });

  it('compares same-size files by content with --checksum', () => {
    const plan = planSync([f('a', 3, 1), f('b', 3, 1)], [f('a', 3, 9), f('b', 4, 1)], { delete: false, checksum: true });
    assert.deepEqual(plan.actions.map((a) => `${a.action} ${a.relative}`), ['compare a', 'copy b']);
  });
});
