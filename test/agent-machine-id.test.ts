import assert from 'node:assert/strict';
import { execSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import machineIdPackage from 'node-machine-id';
import { linuxMachineId, readOsMachineId } from '../agent/machine.js';
import { tempDir } from './support/temp.js';

/** node-machine-id's Linux command over other files, and its `expose`: the reference linuxMachineId must equal. */
function packageCommand(files: string[]): string {
  const out = execSync(`( cat ${files.map((f) => `'${f}'`).join(' ')} 2> /dev/null || hostname ) | head -n 1 || :`).toString();
  return out.replace(/\r+|\n+|\s+/gi, '').toLowerCase();
}

describe('the machine id is read as node-machine-id reads it, without its shell', () => {
  it('is the id node-machine-id gives on this machine', async () => {
    const expected = machineIdPackage.machineIdSync(true);
    assert.equal(linuxMachineId(), expected);
    assert.equal(await readOsMachineId(), expected);
    assert.match(expected, /^[0-9a-f]{32}$/, 'this machine has an OS machine id (the other cases below use files of their own)');
  });

  it('makes what the package\'s command makes of every case of the two files', () => {
    const dir = tempDir('ferry-machine-id-');
    const file = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    const missing = join(dir, 'missing');
    const cases: [string, string[]][] = [
      ['both files', [file('a1', 'AAAA1111bbbb2222cccc3333dddd4444\n'), file('b1', 'eeee5555ffff6666aaaa7777bbbb8888\n')]],
      ['the first missing', [missing, file('b2', '0123456789abcdef0123456789abcdef\n')]],
      ['the second missing', [file('a3', '11112222333344445555666677778888\n'), missing]],
      ['neither: the host name', [missing, join(dir, 'missing-too')]],
      ['the first empty', [file('a5', ''), file('b5', '99998888777766665555444433332222\n')]],
      ['no newline at the end of the first', [file('a6', 'abc'), file('b6', 'def\nsecond line\n')]],
      ['white space inside', [file('a7', '  12 34\t56  \n'), file('b7', 'x\n')]],
    ];
    for (const [what, files] of cases) assert.equal(linuxMachineId(files), packageCommand(files), what);
    assert.equal(linuxMachineId([missing, missing], () => 'Some-Host'), 'some-host');
  });
});
