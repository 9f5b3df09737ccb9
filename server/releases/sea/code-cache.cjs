'use strict';
/*
 * `node code-cache.cjs BUNDLE OUT`: writes the V8 code cache of BUNDLE (wrapped as main.cjs wraps
 * it) with the bytecode of every function, not only of the top level. V8 compiles a function when
 * it is first called ("lazily"); with lazy compilation off while the script is compiled, every
 * function is compiled at once, and the cache holds them all. The flag is set back before the
 * cache is written, because V8 stamps a cache with its flags and refuses one made under others:
 * this cache then fits a single executable that runs with V8's defaults. Run by package.ts in a
 * Node of its own with no options, so that nothing else differs.
 */
const { readFileSync, writeFileSync } = require('node:fs');
const { setFlagsFromString } = require('node:v8');
const { Script } = require('node:vm');
const { wrap } = require('./main.cjs');

const [bundle, out] = process.argv.slice(2);
const source = readFileSync(bundle, 'utf8');
setFlagsFromString('--no-lazy');
const script = new Script(wrap(source), { filename: 'ferry.cjs' });
setFlagsFromString('--lazy');
writeFileSync(out, script.createCachedData());
