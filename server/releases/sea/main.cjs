'use strict';
/*
 * The single executable's main script (server/releases/package.ts). The agent's bundle is an
 * asset beside it, with a V8 code cache made when the executable was packaged that holds the
 * bytecode of every function in the bundle (code-cache.cjs). Node's own `useCodeCache` holds only
 * what V8 compiles before the script runs, the top level: every function was then compiled on its
 * first call, on every run (about 50 ms of a 2,000-file upload's main thread, and 15 ms of each
 * start). V8 checks the cache against its version, its flags and the source, and compiles as usual
 * when the cache does not fit (a NODE_OPTIONS that changes V8's flags, say): slower, never wrong.
 *
 * Outside the single executable this file only lends code-cache.cjs the wrapper, so that the
 * source the cache was made from is the source compiled here, byte for byte.
 */
const sea = require('node:sea');

/** The bundle as a CommonJS function, as Node wraps a module. */
function wrap(source) {
  return `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
}

if (sea.isSea()) {
  const { Script } = require('node:vm');
  // The raw assets are the executable's own mapped bytes, read in place (getAsset would copy
  // 3 MB first); nothing writes to them.
  const script = new Script(wrap(new TextDecoder().decode(sea.getRawAsset('ferry.cjs'))), {
    filename: 'ferry.cjs',
    cachedData: Buffer.from(sea.getRawAsset('ferry.cache')),
  });
  // For `-vv` (agent/runtime.ts).
  globalThis[Symbol.for('ferry.codeCache')] = script.cachedDataRejected ? 'rejected' : 'accepted';
  script.runInThisContext()(exports, require, module, __filename, __dirname);
} else {
  module.exports = { wrap };
}
