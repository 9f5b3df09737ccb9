import assert from 'node:assert/strict';
import { AgentError, describeFailure } from '../agent/errors.js';
import { EXIT_CODES } from '../agent/exit-codes.js';
import { runCli } from '../agent/program.js';
import { refusalToAgentError, ServerError } from '../agent/server-client.js';
import { tempDir } from './support/agent-fixtures.js';

async function ferry(args: string[], env: Record<string, string> = {}) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(['node', 'ferry', ...args], {
    env: { FERRY_HOME: tempDir(), FERRY_MACHINE_ID: 'exit-code-tests', ...env },
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
  });
  return { code, stdout, stderr };
}

describe('exit codes', () => {
  it('keeps the numbers scripts rely on', () => {
    const numbers = Object.fromEntries(Object.entries(EXIT_CODES).map(([name, { code }]) => [name, code]));
    assert.deepEqual(numbers, {
      OK: 0, INTERNAL: 1, USAGE: 2, BAD_KEY_FORMAT: 3,
      NO_LICENSE: 10, TRIAL_EXPIRED: 11, LICENSE_REVOKED: 12, SEATS_EXHAUSTED: 13, LICENSE_NOT_FOUND: 14,
      SERVER_UNREACHABLE: 15, SERVER_ERROR: 16, ACTIVATION_INACTIVE: 17, LICENSE_UNTRUSTED: 18, TRIAL_EXISTS: 19,
      CONNECTION: 20, AUTH: 21, HOST_KEY: 22, PARTIAL: 23, NOT_FOUND: 24, PERMISSION: 25, DISK_FULL: 26,
      UPDATE_UNSUPPORTED: 30, UPDATE_REFUSED: 31, UPDATE_FAILED: 32, REBIND_REFUSED: 40, INTERRUPTED: 130,
    });
    assert.equal(new Set(Object.values(numbers)).size, Object.keys(numbers).length, 'no number has two meanings');
  });

  it('lists every exit code with its meaning in --help', async () => {
    const { code, stdout } = await ferry(['--help']);
    assert.equal(code, 0);
    for (const [name, { code: number, meaning }] of Object.entries(EXIT_CODES)) {
      assert.match(stdout, new RegExp(`^ +${number} +${name} +${meaning.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    }
    assert.match(stdout, /FERRY_MACHINE_ID .*for tests; development builds only/);
    assert.match(stdout, /FERRY_NOW .*for tests; development builds only/);
  });

  it('prints the version from package.json', async () => {
    const { code, stdout } = await ferry(['--version']);
    assert.equal(code, 0);
    assert.match(stdout.trim(), /^\d+\.\d+\.\d+/);
  });

  it('ends wrong usage with 2 and one "ferry:" line on stderr', async () => {
    for (const args of [['bogus'], ['status', '--bogus'], ['activate'], ['activate', '--trial', '--key', 'X'], ['activate', '--trial', '--marketing'], []]) {
      const { code, stderr } = await ferry(args);
      assert.equal(code, 2, `ferry ${args.join(' ')}`);
      if (args.length > 0) assert.match(stderr, /^ferry: [^\n]+\n$/, `ferry ${args.join(' ')}: ${stderr}`);
    }
  });

  it('says how to set the license server when none is set', async () => {
    const { code, stderr } = await ferry(['activate', '--trial']);
    assert.equal(code, 2);
    assert.equal(stderr, 'ferry: no license server set: pass --server URL or set FERRY_SERVER\n');
  });

  it('refuses a mistyped key with 3 before looking for a server', async () => {
    const { code, stderr } = await ferry(['activate', '--key', '7K3QD-M0ZP4-AAAAA-BBBBB-CCCCC']);
    assert.equal(code, 3);
    assert.match(stderr, /^ferry: bad license key: the key is mistyped/);
  });

  it('ends with 10 and says what to do when this machine has no license', async () => {
    const { code, stderr } = await ferry(['status']);
    assert.equal(code, 10);
    assert.match(stderr, /ferry activate --trial/);
  });

  it('reports an unexpected error as an internal error on one line, exit 1, without a stack', () => {
    const err = new TypeError('boom\n    at somewhere (file.js:1:1)');
    assert.deepEqual(describeFailure(err), { exitCode: 1, message: 'internal error: boom at somewhere (file.js:1:1)' });
    assert.deepEqual(describeFailure(new AgentError('SEATS_EXHAUSTED', 'no seat')), { exitCode: 13, message: 'no seat' });
  });

  it('maps each refusal of the license server to its exit code', () => {
    const cases: [number, string, string][] = [
      [409, 'SEATS_EXHAUSTED', 'SEATS_EXHAUSTED'],
      [404, 'LICENSE_NOT_FOUND', 'LICENSE_NOT_FOUND'],
      [403, 'LICENSE_REVOKED', 'LICENSE_REVOKED'],
      [403, 'LICENSE_CANCELLED', 'LICENSE_REVOKED'],
      [403, 'TRIAL_EXPIRED', 'TRIAL_EXPIRED'],
      [403, 'ACTIVATION_INACTIVE', 'ACTIVATION_INACTIVE'],
      [409, 'TRIAL_EXISTS', 'TRIAL_EXISTS'],
      [400, 'KEY_FORMAT', 'BAD_KEY_FORMAT'],
      [403, 'TOKEN_WRONG_MACHINE', 'NO_LICENSE'],
      [429, 'RATE_LIMITED', 'SERVER_ERROR'],
      [500, 'INTERNAL', 'SERVER_ERROR'],
    ];
    for (const [status, code, exit] of cases) {
      assert.equal(refusalToAgentError(new ServerError(status, code, 'm', null)).exit, exit, code);
    }
    const other = refusalToAgentError(new ServerError(429, 'RATE_LIMITED', 'slow down', 30));
    assert.equal(other.message, 'the license server refused: RATE_LIMITED: slow down (try again in 30 s)');
  });
});
