import { basename as localBasename, normalize as localNormalize } from 'node:path';
import { pathError } from './errors.js';
import type { AgentError } from '../errors.js';

/**
 * Names that come from a server. A folder listing is the server's word, and a hostile server can
 * list `../../etc`, `a/b`, an empty name or one with a NUL byte: joined to the destination, such a
 * name climbs out of it or collapses onto the folder itself. Every name from a listing must be one
 * plain path segment, on both path syntaxes it will be joined with (the server's `/` and this
 * machine's), before it becomes part of a path.
 */

/** Names no path syntax reads as more than one segment: the usual ones, checked without normalising. */
const PLAIN_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** Why `name` is not one plain path segment, or null when it is. */
export function nameProblem(name: string): string | null {
  if (PLAIN_NAME.test(name)) return null;
  if (name === '') return 'an empty name';
  if (name === '.' || name === '..') return 'a name for the folder itself or its parent';
  if (name.includes('/')) return 'a name with "/" in it';
  if (name.includes('\0')) return 'a name with a NUL byte in it';
  // This machine's path syntax (Windows: `\`, `C:`): the name must stay itself once normalised.
  if (localBasename(name) !== name || localNormalize(name) !== name) return 'a name that is not a single path segment here';
  return null;
}

/**
 * A name as messages show it: in quotes, so that an empty name or one with spaces stands out. Its
 * control characters are escaped where the message is printed (printable, in terminal-text.ts),
 * as for every text from a server; `--json` keeps the name exact.
 */
export function quoteName(name: string): string {
  return `"${name}"`;
}

/** A name a server listed in `folder` that ferry refuses to use: never joined to any path. */
export interface RefusedName {
  name: string;
  reason: string;
}

export function refusedNameError(folder: string, refused: RefusedName): AgentError {
  return pathError('PARTIAL', folder, `the server listed ${quoteName(refused.name)}, which is not a plain file name (${refused.reason}): refused, nothing was written for it`);
}

/**
 * `root` joined with a `/`-separated relative path, refusing any part that is not a plain
 * segment: whatever the listing said, the result stays below root. Defence in depth behind the
 * listing's own check, for every path a plan builds.
 */
export function joinBelow(join: (...parts: string[]) => string, root: string, relative: string): string {
  for (const part of relative.split('/')) {
    const problem = nameProblem(part);
    if (problem) throw pathError('PARTIAL', root, `refused ${quoteName(relative)}: ${problem} would lead out of the folder`);
  }
  return join(root, relative);
}
