import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';

const RUNTIME = pathToFileURL(fileURLToPath(new URL('../agent/runtime.js', import.meta.url))).href;

/**
 * In a Node of its own (the choice sets V8's flags for the whole process): whether a function made
 * hot gets V8's optimizing compiler after the import and after each of `choices` (a CPU count, or
 * null for this machine's), in order.
 */
function tiersInChild(choices: (number | null)[]): { onImport: boolean; chosen: [string, boolean][] } {
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
    const chosen = ${JSON.stringify(choices)}.map((cpus) => [cpus === null ? chooseCompilerTiers() : chooseCompilerTiers(cpus), optimized()]);
    console.log(JSON.stringify({ onImport, chosen }));
  `;
  return JSON.parse(execFileSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], { encoding: 'utf8' }));
}

describe('V8\'s compiler tiers follow the CPUs', () => {
  it('keeps the optimizing compiler with four CPUs or more, and turns it off below', () => {
    const got = tiersInChild([8, 2]);
    assert.equal(got.onImport, true, 'loading the module changes nothing: the switch comes when the files start moving');
    assert.deepEqual(got.chosen, [['optimizing', true], ['baseline', false]]);
  });

  it('chooses by this machine\'s CPUs', () => {
    const many = availableParallelism() >= 4;
    assert.deepEqual(tiersInChild([null]).chosen, [[many ? 'optimizing' : 'baseline', many]], `with ${availableParallelism()} CPUs`);
  });
});
