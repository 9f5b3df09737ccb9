import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { StatusReport } from '../agent/commands/status.js';
import { generateSigningKey, POLICIES, signTime } from '../licensing/index.js';
import { issueLicense } from './support/admin.js';
import { DAY, HOUR } from './support/agent-fixtures.js';
import { startAnswerRewritingProxy, type AnswerRewritingProxy } from './support/answer-rewriting-proxy.js';
import { Machine, type Run } from './support/ferry-machine.js';
import { freePort, until } from './support/processes.js';
import { startServer, type TestServer } from './support/server.js';
import { assertOneLineError, expectExitCode } from './support/transfer-world.js';

/**
 * Trusted time against a real server, with the agent as built: FERRY_NOW is this machine's clock
 * (set back, or moved on), the server keeps the real time and signs it in every check-in answer.
 * Removing clock.json is what a user who sets the clock back would do too: then only the times the
 * server signed are left to go by.
 */
describe('trusted time: the server\'s signed time, and what a clock set back gains', function () {
  this.timeout(120_000);
  let server: TestServer;
  let proxy: AnswerRewritingProxy;
  before(async () => {
    server = await startServer();
    proxy = await startAnswerRewritingProxy(server.url);
  });
  afterEach(() => {
    proxy.rewrite = null;
  });
  after(async () => {
    await proxy?.close();
    await server?.close();
  });

  const deadServer = async () => `http://127.0.0.1:${await freePort()}`;
  /** A transfer to where no SFTP server listens: exit 20 once the license lets it start, a licensing code otherwise. */
  const transfer = async (machine: Machine, now: number) => machine.run(['ls', `sftp://root@127.0.0.1:${await freePort()}/`], { now });
  const statusJson = (run: Run) => JSON.parse(run.stdout) as StatusReport;
  const forgetClock = (machine: Machine) => rmSync(join(machine.home, 'clock.json'), { force: true });
  const clockMark = (machine: Machine) => JSON.parse(readFileSync(join(machine.home, 'clock.json'), 'utf8')) as { highWater: string; skewMs: number };

  /** Staff move the trial's end (as /admin's extend does), and every server forgets what it cached. */
  async function setTrialEnd(machine: Machine, endsAt: number): Promise<void> {
    const id = Number(machine.license().licenseId);
    await server.app.db.execute('UPDATE licenses SET expires_at = ? WHERE id = ?', [new Date(endsAt), id]);
    await server.app.licenses.licenseChanged(id);
  }

  async function trial(via = server.url): Promise<Machine> {
    const machine = new Machine();
    expectExitCode(await machine.run(['activate', '--trial', '--server', via]), 0, 'activate --trial');
    return machine;
  }

  async function permanent(via = server.url): Promise<Machine> {
    const { key } = await issueLicense(server, 1);
    const machine = new Machine();
    expectExitCode(await machine.run(['activate', '--key', key, '--server', via]), 0, 'activate --key');
    return machine;
  }

  describe('a trial fails closed', () => {
    it('a trial with a day left does not get three when the clock is set back two days', async () => {
      const machine = await trial();
      const now = Date.now();
      await setTrialEnd(machine, now + DAY);
      forgetClock(machine);
      const setBack = now - 2 * DAY;

      // The clock says two days ago: behind the lease's signed issue time, so the trial asks its server the time first.
      const asked = await machine.run(['status', '--json'], { now: setBack });
      expectExitCode(asked, 0, 'status with the clock set back two days');
      const report = statusJson(asked);
      assert.equal(report.clock.setBack, true);
      assert.ok(Date.parse(report.clock.licenseTime) >= now - 60_000, `licenses go by the server's time, not ${report.clock.licenseTime}`);
      assert.ok(Math.abs(Date.parse(report.trialEndsAt!) - (now + DAY)) < 60_000, 'the trial ends in a day, as the server says');
      assert.equal(report.trustedTime!.server, server.url);
      assert.ok(Date.parse(report.trustedTime!.at) >= now - 60_000);
      assert.ok(clockMark(machine).skewMs >= 2 * DAY - 60_000, 'the clock is known to be two days behind');

      // A day and an hour later by the clock that stays two days behind: the trial is over, offline or not.
      const dayLater = setBack + DAY + HOUR;
      const over = await transfer(machine, dayLater);
      expectExitCode(over, 11, 'a transfer a day after the last day, by a clock two days behind');
      assertOneLineError(over, /trial of this machine ended on/);
      const offline = await machine.run(['status', '--server', await deadServer()], { now: dayLater });
      expectExitCode(offline, 11, 'status offline a day later');
      // Set back again, further: the trial that ended stays ended.
      expectExitCode(await transfer(machine, setBack), 11, 'a transfer with the clock set back once more');
    });

    it('a trial that ended on the server stays ended with the clock set back two days, before any work', async () => {
      const machine = await trial();
      await setTrialEnd(machine, Date.now() - 60_000);
      forgetClock(machine);
      // The lease is fresh by this clock; but the clock is behind a signed time, so the trial checks first.
      const run = await transfer(machine, Date.now() - 2 * DAY);
      expectExitCode(run, 11, 'a transfer with the clock set back, after the trial ended on the server');
      assertOneLineError(run, /trial/);
      expectExitCode(await transfer(machine, Date.now() - 3 * DAY), 11, 'set back further, and the server unreachable or not');
    });

    it('a trial whose clock is set back does not work offline, and works again once the server tells the time', async () => {
      const machine = await trial();
      forgetClock(machine);
      const setBack = Date.now() - 2 * DAY;
      const offline = await machine.run(['ls', `sftp://root@127.0.0.1:${await freePort()}/`, '--server', await deadServer()], { now: setBack });
      expectExitCode(offline, 15, 'a transfer of a trial with its clock set back, offline');
      assertOneLineError(offline, /clock is behind .*a trial then goes only by the time .* signs.*cannot reach the license server/);
      expectExitCode(await transfer(machine, setBack), 20, 'the same transfer online: past the license, to the SFTP server that is not there');
    });
  });

  describe('a permanent license fails open', () => {
    it('keeps working offline within its grace with the clock set back two days, clock.json removed or not', async () => {
      const machine = await permanent();
      const start = Date.now();
      const dead = await deadServer();
      const inGrace = start + POLICIES.permanent.leaseMs + DAY;
      const usableUntil = statusJson(await machine.run(['status', '--json'], { now: start })).usableUntil;
      expectExitCode(await machine.run(['status', '--server', dead], { now: inGrace }), 0, 'offline in its grace');

      const setBack = await machine.run(['status', '--json', '--server', dead], { now: inGrace - 2 * DAY });
      expectExitCode(setBack, 0, 'offline, in its grace, the clock set back two days');
      const report = statusJson(setBack);
      assert.equal(report.clock.setBack, true);
      assert.equal(report.offline, true);
      assert.equal(report.usableUntil, usableUntil, 'the grace ends when it did');
      const licenseTime = Date.parse(report.clock.licenseTime);
      // Where it was, plus the seconds since boot between the two commands: not two days back.
      assert.ok(licenseTime >= inGrace && licenseTime < inGrace + 10 * 60_000, `license time ${report.clock.licenseTime}`);
      assert.match((await machine.run(['status', '--server', dead], { now: inGrace - 2 * DAY })).stdout,
        /^Clock: +set back: .*; offline, the license works to its grace counted in license time$/m);

      forgetClock(machine);
      expectExitCode(await machine.run(['ls', `sftp://root@127.0.0.1:${await freePort()}/`, '--server', dead], { now: start - 2 * DAY }), 20,
        'offline, clock.json removed and the clock two days behind the signed time: a transfer gets past the license');
    });
  });

  describe('the time since boot', () => {
    it('a clock held at one time before every command, clock.json removed, does not stop the grace running down', async () => {
      const machine = await permanent();
      const start = Date.now();
      const held = start + 2 * HOUR;
      const uptime = (ms: number) => ({ FERRY_UPTIME: String(ms) });
      // A check-in, an hour after boot: its signed time is kept with the time since boot it came at.
      expectExitCode(await machine.run(['status'], { now: held, env: uptime(HOUR) }), 0, 'status that checks in');
      assert.equal(machine.license().trustedTime!.boot?.uptimeMs, HOUR);

      const dead = await deadServer();
      forgetClock(machine);
      const weekOn = await machine.run(['status', '--json', '--server', dead], { now: held, env: uptime(HOUR + 8 * DAY) });
      expectExitCode(weekOn, 0, 'eight days on by the time since boot, the clock held: in the grace');
      assert.ok(Date.parse(statusJson(weekOn).clock.licenseTime) >= start + 8 * DAY - 60_000, 'license time went on by eight days');
      forgetClock(machine);
      const over = await machine.run(['status', '--server', dead], { now: held, env: uptime(HOUR + 22 * DAY) });
      expectExitCode(over, 15, 'twenty-two days on by the time since boot: lease and grace are over, whatever the clock says');
      assertOneLineError(over, /lease ended on .*cannot reach the license server/);
    });
  });

  describe('only a time the server signed counts, and it only moves forward', () => {
    const forgeries: [string, (time: { payload: string; signature: string }) => unknown][] = [
      ['no time at all', () => undefined],
      ['a time moved on ten days, its signature kept', (time) => {
        const body = JSON.parse(time.payload) as { t: number };
        return { ...time, payload: time.payload.replace(`"t":${body.t}`, `"t":${body.t + 10 * DAY}`) };
      }],
      ['a time signed by a key the root did not certify', (time) => {
        const stranger = generateSigningKey();
        const kid = (JSON.parse(time.payload) as { kid: string }).kid;
        return signTime({ kid, privateKey: stranger.privateKey }, Date.now() + 10 * DAY);
      }],
      ['a time that is not a signed statement', () => ({ t: Date.now() + 10 * DAY })],
    ];

    for (const [what, forge] of forgeries) {
      it(`refuses ${what} in a check-in answer: a trial with its clock set back stops (18), nothing is kept`, async () => {
        const machine = await trial(proxy.url);
        forgetClock(machine);
        proxy.rewrite = (path, body) => (path === '/v1/validate' ? { ...body, time: forge(body.time) } : body);
        const setBack = Date.now() - 2 * DAY;
        const run = await transfer(machine, setBack);
        expectExitCode(run, 18, `a transfer whose check-in answer has ${what}`);
        assertOneLineError(run, /trial then goes only by the time .* signs, and (its answer carried no signed time|the time in its answer was refused)/);
        assert.equal(machine.license().trustedTime ?? null, null, 'no time is stored');
        assert.ok(Date.parse(clockMark(machine).highWater) < Date.now() + DAY, 'the forged time moved nothing on');

        proxy.rewrite = null;
        expectExitCode(await transfer(machine, setBack), 20, 'the same transfer with the server\'s own answer');
      });
    }

    it('ignores a forged time ten days on for a permanent license: its lease does not end early', async () => {
      const machine = await permanent(proxy.url);
      proxy.rewrite = (path, body) => (path === '/v1/validate' ? { ...body, time: forgeries[1]![1](body.time) } : body);
      const run = await machine.run(['status', '--json'], { now: Date.now() + 2 * HOUR });
      expectExitCode(run, 0, 'status whose check-in answer carries a forged time');
      const report = statusJson(run);
      assert.match(report.lastCheck!.result, /^valid; its time was not taken: the time in its answer was refused/);
      assert.ok(Date.parse(report.trustedTime!.at) < Date.now() + HOUR, `trusted time stays the server's, not ${report.trustedTime!.at}`);
      assert.ok(Date.parse(clockMark(machine).highWater) < Date.now() + 3 * HOUR);
    });

    it('keeps the latest signed time: an older one replayed moves nothing back', async () => {
      const machine = await permanent(proxy.url);
      const start = Date.now();
      const checkIn = async (hoursOn: number) => {
        const run = await machine.run(['status', '--json'], { now: start + hoursOn * HOUR });
        expectExitCode(run, 0, `status ${hoursOn} h on`);
        return statusJson(run);
      };
      const first = await checkIn(2);
      const firstTime = proxy.answers.filter((a) => a.path === '/v1/validate').at(-1)!.body.time;
      // The server signs its time once a second: wait for a later one, then take it.
      await until('a later signed time', async () => Date.now() > Date.parse(first.trustedTime!.at) + 1_100, 5_000);
      const second = await checkIn(4);
      assert.ok(Date.parse(second.trustedTime!.at) > Date.parse(first.trustedTime!.at), 'a later signed time is kept');

      proxy.rewrite = (path, body) => (path === '/v1/validate' ? { ...body, time: firstTime } : body);
      const replayed = await checkIn(6);
      assert.equal(replayed.lastCheck!.result, 'valid', 'the replayed time is genuine, only older');
      assert.equal(replayed.trustedTime!.at, second.trustedTime!.at, 'trusted time stays at the later one');
      assert.equal(machine.license().trustedTime!.statement.payload, proxy.answers.filter((a) => a.path === '/v1/validate').at(-2)!.body.time.payload);
      assert.ok(existsSync(join(machine.home, 'clock.json')));
    });
  });
});
