import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';

const RUNTIME = pathToFileURL(fileURLToPath(new URL('../agent/runtime.js', import.meta.url))).href;

/**
 * In a Node of its own (the choice sets V8's flags for the whole process): whether a function
 * made hot gets V8's optimizing compiler, after the import and after each choice.
 */
function tiersInChild(): { onImport: boolean; here: [string, boolean]; at2: [string, boolean]; at8: [string, boolean] } {
  const script = `
    import { chooseCompilerTiers } from ${JSON.stringify(RUNTIME)};
    const optimized = () => {
      const f = new Function('x', 'return x + 1');
      %PrepareFunctionForOptimization(f);
      f(1); f(2);
      %OptimizeFunctionOnNextCall(f);
      f(3);
      return (%GetOptimizationStatus(f) & 64) !== 0;
    };
    const onImport = optimized();
    const here = [chooseCompilerTiers(), optimized()];
    const at2 = [chooseCompilerTiers(2), optimized()];
    const at8 = [chooseCompilerTiers(8), optimized()];
    console.log(JSON.stringify({ onImport, here, at2, at8 }));
  `;
  return JSON.parse(execFileSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], { encoding: 'utf8' }));
}

describe('V8\'s compiler tiers follow the CPUs', () => {
  it('keeps the optimizing compiler with four CPUs or more, and turns it off below (and on again)', () => {
    const got = tiersInChild();
    assert.equal(got.onImport, true, 'loading the module changes nothing: the switch comes when the files start moving');
    const many = availableParallelism() >= 4;
    assert.deepEqual(got.here, [many ? 'optimizing' : 'baseline', many], `with this machine's ${availableParallelism()} CPUs`);
    assert.deepEqual(got.at2, ['baseline', false]);
    assert.deepEqual(got.at8, ['optimizing', true]);
  });
});
