import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { unknownConfigKeys } from '../agent/config-keys.js';
import { closestName, editDistance } from '../agent/suggest.js';
import { assertOneLineError, expectExitCode, FerryUser, folder, startWorld, type World } from './support/transfer-world.js';

/**
 * Slips of the fingers: a mistyped site or ~/.ssh/config host is answered with the closest
 * configured name, and a key of config.json that ferry does not know is named in a warning
 * (once, not failing the command) instead of being ignored in silence.
 */

describe('mistyped names: sites, hosts and config keys', function () {
  this.timeout(90_000);
  let world: World;
  let user: FerryUser;
  before(async () => {
    world = await startWorld();
    user = await FerryUser.create(world);
  });
  after(() => world?.close());

  const writeConfig = (config: unknown) => {
    mkdirSync(user.ferryHome, { recursive: true });
    writeFileSync(join(user.ferryHome, 'config.json'), JSON.stringify(config));
  };
  const site = () => ({ host: world.sshd.host, port: world.sshd.port, user: world.sshd.user });

  it('a mistyped site name: CONNECTION (20), "did you mean" the closest site', async () => {
    writeConfig({ sites: { 'prod-eu': site(), 'prod-us': site(), staging: site() } });
    const remote = folder();
    expectExitCode(await user.run(['ls', `prod-eu:${remote}`]), 0, 'the site itself');
    const run = await user.run(['ls', `prdo-eu:${remote}`]);
    expectExitCode(run, 20, 'a mistyped site');
    assertOneLineError(run, /^ferry: cannot connect to \S+@prdo-eu: unknown host name: did you mean prod-eu\?$/);
    const far = await user.run(['ls', `elsewhere-entirely:${remote}`]);
    expectExitCode(far, 20, 'a name close to none');
    assertOneLineError(far, /^ferry: cannot connect to \S+@elsewhere-entirely: unknown host name$/);
  });

  it('a mistyped Host of ~/.ssh/config, also as a jump host', async () => {
    writeConfig({});
    writeFileSync(join(user.home, '.ssh', 'config'), ['Host staging-box', '  HostName 127.0.0.1', `  Port ${world.sshd.port}`, 'Host *', '  ServerAliveInterval 30', ''].join('\n'));
    const remote = folder();
    expectExitCode(await user.run(['ls', `staging-box:${remote}`]), 0, 'the alias itself');
    const run = await user.run(['ls', `stagign-box:${remote}`]);
    expectExitCode(run, 20, 'a mistyped alias');
    assertOneLineError(run, /unknown host name: did you mean staging-box\?$/);
    const jump = await user.run(['ls', '-J', 'stagingbox', user.url(remote)]);
    expectExitCode(jump, 20, 'a mistyped jump host');
    assertOneLineError(jump, /^ferry: cannot connect to jump host \S+@stagingbox: unknown host name: did you mean staging-box\?$/);
  });

  it('unknown keys of config.json: one warning naming each (with the near key), and the command works', async () => {
    writeConfig({
      colour: 'blue',
      sites: { 'prod-eu': { ...site(), fodler: '/srv' } },
      transfers: { paralel: 4, retries: 2 },
    });
    const remote = folder();
    const run = await user.run(['ls', `prod-eu:${remote}`]);
    expectExitCode(run, 0, 'ls with unknown keys');
    const warning = `ferry: ${join(user.ferryHome, 'config.json')}: ignoring unknown keys: "colour", "sites.prod-eu.fodler" (did you mean "folder"?), "transfers.paralel" (did you mean "parallel"?)`;
    assert.deepEqual(run.stderr.split('\n').filter((l) => l !== ''), [warning]);
    const status = await user.run(['status']);
    assert.equal(status.stderr.split('\n').filter((l) => l === warning).length, 1, `once in other commands too: ${status.stderr}`);
    writeConfig({ sites: { 'prod-eu': site() }, transfers: { parallel: 4 } });
    const clean = await user.run(['ls', `prod-eu:${remote}`]);
    expectExitCode(clean, 0, 'ls');
    assert.equal(clean.stderr, '', 'no warning for known keys');
  });

  describe('unit', () => {
    it('counts insertions, deletions, substitutions and neighbour swaps as one edit each, case ignored', () => {
      assert.equal(editDistance('prdo-eu', 'prod-eu'), 1);
      assert.equal(editDistance('kitten', 'sitting'), 3);
      assert.equal(editDistance('Prod', 'prod'), 0);
      assert.equal(editDistance('', 'abc'), 3);
      assert.equal(editDistance('stagingbox', 'staging-box'), 1);
    });

    it('suggests only names a slip away, the closest first', () => {
      assert.equal(closestName('prdo-eu', ['prod-us', 'prod-eu']), 'prod-eu');
      assert.equal(closestName('prod', ['production']), undefined);
      assert.equal(closestName('db', ['web']), undefined);
      assert.equal(closestName('db', ['dv']), 'dv');
    });

    it('finds unknown keys at the top, in sites and in transfers', () => {
      assert.deepEqual(unknownConfigKeys({ sever: 'x', sites: { a: { host: 'h', hots: 'x' } }, transfers: { timeout: 3 } }), ['"sever" (did you mean "server"?)', '"sites.a.hots" (did you mean "host"?)']);
      assert.deepEqual(unknownConfigKeys({ server: 'x', sites: {}, transfers: {} }), []);
      assert.deepEqual(unknownConfigKeys('not an object'), []);
    });
  });
});
