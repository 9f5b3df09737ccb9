import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';

const RUNTIME = pathToFileURL(fileURLToPath(new URL('../agent/runtime.js', import.meta.url))).href;

/**
 * In a Node of its own (the choice sets V8's flags for the whole process): whether a function
 * made hot gets V8's optimizing compiler, on import and after each choice.
 */
function tiersInChild(): { onImport: boolean; at8: [string, boolean]; at2: [string, boolean] } {
  const script = `
    import { chooseCompilerTiers } from ${JSON.stringify(RUNTIME)};
    import { setFlagsFromString } from 'node:v8';
    const optimized = () => {
      const f = new Function('x', 'return x + 1');
      %PrepareFunctionForOptimization(f);
      f(1); f(2);
      %OptimizeFunctionOnNextCall(f);
      f(3);
      return (%GetOptimizationStatus(f) & 64) !== 0;
    };
    const onImport = optimized();
    setFlagsFromString('--turbofan');
    const at8 = [chooseCompilerTiers(8), optimized()];
    const at2 = [chooseCompilerTiers(2), optimized()];
    console.log(JSON.stringify({ onImport, at8, at2 }));
  `;
  return JSON.parse(execFileSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], { encoding: 'utf8' }));
}

describe('V8\'s compiler tiers follow the CPUs', () => {
  it('keeps the optimizing compiler with four CPUs or more, and turns it off below', () => {
    const got = tiersInChild();
    assert.equal(got.onImport, availableParallelism() >= 4, `with this machine's ${availableParallelism()} CPUs`);
    assert.deepEqual(got.at8, ['optimizing', true]);
    assert.deepEqual(got.at2, ['baseline', false]);
  });
});
