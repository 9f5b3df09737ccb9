import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pooledRandomFillSync } from '../agent/transfer/pooled-random.js';

const POOLED = fileURLToPath(new URL('../agent/transfer/pooled-random.js', import.meta.url));

describe('pooled random bytes for ssh2\'s packet padding', () => {
  it('fills exactly the bytes asked for, and nothing around them', () => {
    const buffer = Buffer.alloc(64, 0xaa);
    pooledRandomFillSync(buffer, 10, 16);
    assert.ok(buffer.subarray(0, 10).every((b) => b === 0xaa), 'before the range');
    assert.ok(buffer.subarray(26).every((b) => b === 0xaa), 'after the range');
    assert.ok(!buffer.subarray(10, 26).every((b) => b === 0xaa), 'the range is filled');
    // A view into a larger buffer, as ssh2's packets are.
    const backing = Buffer.alloc(100, 0x55);
    const view = backing.subarray(40, 60);
    pooledRandomFillSync(view, 4, 8);
    assert.ok(backing.subarray(0, 44).every((b) => b === 0x55) && backing.subarray(52).every((b) => b === 0x55));
  });

  it('never hands out the same bytes twice, across refills of the pool', () => {
    const seen = new Set<string>();
    // 10,000 paddings of 16 bytes: 160 KB, more than two pools.
    for (let i = 0; i < 10_000; i++) {
      const padding = pooledRandomFillSync(Buffer.alloc(16));
      const hex = padding.toString('hex');
      assert.ok(!seen.has(hex), `padding ${i} repeats an earlier one`);
      seen.add(hex);
    }
    // Roughly uniform: each byte value about 160,000 / 256 = 625 times.
    const counts = new Array<number>(256).fill(0);
    for (const hex of seen) for (const byte of Buffer.from(hex, 'hex')) counts[byte]!++;
    assert.ok(Math.min(...counts) > 450 && Math.max(...counts) < 800, `byte counts ${Math.min(...counts)}..${Math.max(...counts)}`);
  });

  it('takes large requests and bad arguments as node:crypto does', () => {
    const large = pooledRandomFillSync(Buffer.alloc(4096));
    assert.ok(large.some((b) => b !== 0));
    assert.throws(() => pooledRandomFillSync(Buffer.alloc(8), 4, 8), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => pooledRandomFillSync(Buffer.alloc(8), -1, 2), { code: 'ERR_OUT_OF_RANGE' });
  });

  it('is what ssh2 gets from node:crypto once the module is loaded first, as agent/cli.ts loads it', () => {
    const script = `import(${JSON.stringify(POOLED)}).then((m) => { const c = require('node:crypto'); process.stdout.write(String(c.randomFillSync === m.pooledRandomFillSync)); })`;
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    assert.equal(child.stdout, 'true', child.stderr);
  });
});
