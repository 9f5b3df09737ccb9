import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { homePaths } from '../agent/home.js';
import { keepQuiet, noteAnswered, noteUnreachable, QUIET_MS } from '../agent/server-quiet.js';
import { tempDir } from './support/temp.js';

const SERVER = 'https://license.example';
const OTHER = 'https://other.example';

describe('the quiet time of a license server that did not answer', () => {
  it('holds background calls to that server for QUIET_MS, and to no other', async () => {
    const paths = homePaths(tempDir('ferry-quiet-'));
    const at = Date.UTC(2026, 11, 4, 12);
    assert.equal(await keepQuiet(paths, SERVER, at), false, 'nothing recorded: calls go');
    await noteUnreachable(paths, SERVER, at);
    assert.equal(await keepQuiet(paths, SERVER, at + 1), true);
    assert.equal(await keepQuiet(paths, SERVER, at + QUIET_MS - 1), true);
    assert.equal(await keepQuiet(paths, SERVER, at + QUIET_MS), false, 'the quiet time is over');
    assert.equal(await keepQuiet(paths, OTHER, at + 1), false, 'another server is not held back');
    assert.equal(await keepQuiet(paths, SERVER, at - 60_000), false, 'a clock set back ends the wait');
  });

  it('ends when that server answers; an answer from another server leaves it', async () => {
    const paths = homePaths(tempDir('ferry-quiet-'));
    const at = Date.UTC(2026, 11, 4, 12);
    await noteUnreachable(paths, SERVER, at);
    await noteAnswered(paths, OTHER);
    assert.equal(await keepQuiet(paths, SERVER, at + 1), true, 'still quiet after another server answered');
    assert.ok(existsSync(paths.serverQuiet));
    await noteAnswered(paths, SERVER);
    assert.equal(await keepQuiet(paths, SERVER, at + 1), false, 'the answer ended the quiet time');
    assert.equal(existsSync(paths.serverQuiet), false, 'its file is gone');
    await noteAnswered(paths, SERVER);
  });
});
