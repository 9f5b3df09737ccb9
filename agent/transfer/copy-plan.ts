import picomatch from 'picomatch';
import { AgentError } from '../errors.js';
import { PART_SUFFIX } from './constants.js';
import type { Job } from './engine.js';
import { pathError } from './errors.js';
import type { PathFilter } from './filters.js';
import { listLocalInSlices, localSide, walk, type Entry, type FileSide, type WalkKeep } from './file-sides.js';
import { joinBelow, quoteName, refusedNameError } from './names.js';
import { hasGlob } from './url.js';

/**
 * Which files go where for put and get: sources (globs expanded) against a destination, with
 * cp's and OpenSSH's rules. A destination that is a folder, or ends in `/`, receives the sources
 * by name; `dir/` (trailing slash) copies the contents of dir; a single source to a name that is
 * not a folder becomes that name.
 */

export interface Source extends Entry {
  /** The source was written with a trailing `/`: its contents, not the folder itself. */
  contentsOnly: boolean;
}

/** A part file of ours, left by an interrupted transfer: never copied as data. */
export function isPartFile(name: string): boolean {
  return name.startsWith('.') && name.endsWith(PART_SUFFIX);
}

/** Expands a path with `*`, `?` or `[...]` in any of its parts; without, the path itself. */
export async function expandGlob(side: FileSide, path: string): Promise<string[]> {
  if (!hasGlob(path)) return [path];
  const absolute = path.startsWith('/');
  const parts = path.split('/').filter((p) => p !== '');
  let bases = [absolute ? '/' : '.'];
  for (const [index, part] of parts.entries()) {
    const next: string[] = [];
    if (!hasGlob(part)) {
      for (const base of bases) next.push(side.join(base, part));
    } else {
      const isMatch = picomatch(part, { dot: part.startsWith('.') });
      const last = index === parts.length - 1;
      for (const base of bases) {
        const entry = await side.stat(base);
        if (entry?.type !== 'dir') continue;
        for (const child of await side.list(base)) {
          // A name the server should not have listed matches nothing: it never becomes a path.
          if (child.refused) continue;
          const name = side.basename(child.path);
          if (isPartFile(name) || !isMatch(name)) continue;
          if (last || child.type === 'dir') next.push(child.path);
        }
      }
    }
    bases = next;
  }
  if (bases.length === 0) throw pathError('NOT_FOUND', path, 'no match');
  return bases.map((p) => (!absolute && p.startsWith('./') ? p.slice(2) : p));
}

/**
 * The sources as entries; folders without -r are refused before anything moves. A missing source
 * is refused too, or, given `onMissing` (several sources: the others still go), handed to it.
 */
export async function resolveSources(
  side: FileSide, paths: { path: string; trailingSlash: boolean }[], recursive: boolean, onMissing?: (error: AgentError, path: string) => void,
): Promise<Source[]> {
  const sources: Source[] = [];
  const missing = (error: AgentError, path: string) => {
    if (!onMissing) throw error;
    onMissing(error, path);
  };
  for (const { path, trailingSlash } of paths) {
    let expandedPaths: string[];
    try {
      expandedPaths = await expandGlob(side, path);
    } catch (err) {
      if (err instanceof AgentError && err.exit === 'NOT_FOUND') {
        missing(err, path);
        continue;
      }
      throw err;
    }
    for (const expanded of expandedPaths) {
      const entry = await side.stat(expanded);
      if (!entry) {
        missing(pathError('NOT_FOUND', expanded, 'no such file or folder'), expanded);
        continue;
      }
      if (entry.type === 'dir' && !recursive) throw new AgentError('USAGE', `${expanded} is a folder: use -r to copy folders`);
      if (entry.type !== 'dir' && entry.type !== 'file') throw new AgentError('USAGE', `${expanded} is not a regular file or folder`);
      sources.push({ ...entry, contentsOnly: trailingSlash && entry.type === 'dir' });
    }
  }
  return sources;
}

export interface CopyTarget {
  path: string;
  trailingSlash: boolean;
}

/**
 * Makes a folder of the destination tree, unless a symbolic link is in its place: on this machine
 * a link there (to /etc, say) would take every file below it out of the destination, and a
 * download must never write through one (returns false). The folder the user named is theirs to
 * point anywhere; links are looked for below it. On the server, links are the server's business.
 */
async function makeFolder(to: FileSide, path: string): Promise<boolean> {
  if (to.kind === 'local' && (await to.lstat(path))?.type === 'link') return false;
  await to.mkdir(path);
  return true;
}

export function linkInDestinationError(target: string, link: string): AgentError {
  return new AgentError('PARTIAL', `${target}: not written: ${link} is a symbolic link in the destination, and ferry never writes through one (remove the link, or name the folder it points to as the destination)`);
}

/**
 * What a walk of the sources leaves out (--exclude, --include); a folder entered only to look for
 * included files is copied only with something in it.
 */
export function keepOf(filter: PathFilter | null): WalkKeep | undefined {
  if (!filter) return undefined;
  return (entry) => {
    const isFolder = entry.type === 'dir';
    if (!filter.admits(entry.relative, isFolder)) return false;
    return isFolder && filter.entersOnly(entry.relative) ? 'if-not-empty' : true;
  };
}

/**
 * Lists the local folders among `sources` ahead of planCopy, as planCopy's walk will, and returns
 * the local side with those listings kept: planCopy then finds each at once. The listing goes in
 * slices, so that it runs while `put` makes its connection, whose handshake and login leave ferry
 * waiting on the server (2,000 files took 30-50 ms to list on the development machine: about
 * half the time the connection takes).
 */
export async function listAhead(sources: Source[], filter: PathFilter | null): Promise<FileSide> {
  const listed = new Map<string, Entry[]>();
  const listing: FileSide = {
    ...localSide,
    async list(dir, links = 'follow') {
      const entries = await listLocalInSlices(dir, links);
      if (links === 'follow') listed.set(dir, entries);
      return entries;
    },
  };
  for (const source of sources) {
    if (source.type !== 'dir') continue;
    for await (const _entry of walk(listing, source.path, 'follow', keepOf(filter))) {
      // Listing only: the walk asks for each folder it goes into.
    }
  }
  return {
    ...localSide,
    async list(dir, links = 'follow') {
      const kept = links === 'follow' ? listed.get(dir) : undefined;
      if (!kept) return localSide.list(dir, links);
      listed.delete(dir);
      return kept;
    },
  };
}

/**
 * Creates the destination folders and returns the file jobs. Folders are made as they are met
 * (parents first), so a tree of any depth needs no list of its own.
 */
export async function planCopy(
  from: FileSide, sources: Source[], to: FileSide, dest: CopyTarget, direction: Job['direction'], filter: PathFilter | null = null,
): Promise<Job[]> {
  const destEntry = await to.stat(dest.path);
  let destIsDir = destEntry?.type === 'dir';
  const many = sources.length > 1;
  if (destEntry && !destIsDir && (dest.trailingSlash || many || sources[0]?.type === 'dir')) {
    throw new AgentError('USAGE', `${dest.path} is not a folder`);
  }
  if (!destEntry && (dest.trailingSlash || many)) {
    await to.mkdir(dest.path);
    destIsDir = true;
  }
  const jobs: Job[] = [];
  const job = (source: Entry, target: string, display: string): Job => ({
    direction, source: source.path, target, size: source.size, mtime: source.mtime, mode: source.mode, display,
  });
  const refusal = (display: string, error: AgentError): Job => ({ direction, source: '', target: '', size: 0, mtime: 0, mode: 0, display, refused: error });
  for (const source of sources) {
    const name = from.basename(source.path);
    if (source.type === 'file') {
      // A file named as a source is filtered by its name.
      if (filter && !filter.admits(name, false)) continue;
      jobs.push(job(source, destIsDir ? to.join(dest.path, name) : dest.path, name));
      continue;
    }
    const intoName = !source.contentsOnly && destIsDir;
    const root = intoName ? to.join(dest.path, name) : dest.path;
    const prefix = intoName ? `${name}/` : '';
    /** Folders of the destination that are links, by relative path ('' for root): nothing goes below them. */
    const links = new Map<string, string>();
    if (intoName ? !(await makeFolder(to, root)) : (await to.mkdir(root), false)) links.set('', root);
    const linkAbove = (relative: string): string | undefined => {
      if (links.size === 0) return undefined;
      if (links.has('')) return links.get('');
      for (let i = relative.lastIndexOf('/'); i > 0; i = relative.lastIndexOf('/', i - 1)) {
        const link = links.get(relative.slice(0, i));
        if (link !== undefined) return link;
      }
      return undefined;
    };
    for await (const entry of walk(from, source.path, 'follow', keepOf(filter))) {
      if (entry.refused) {
        const display = `${prefix}${entry.relative === '' ? '' : `${entry.relative}/`}${quoteName(entry.refused.name)}`;
        jobs.push(refusal(display, refusedNameError(entry.path, entry.refused)));
        continue;
      }
      const isFile = entry.type === 'file' && !isPartFile(from.basename(entry.path));
      if (entry.type !== 'dir' && !isFile) continue;
      const target = joinBelow(to.join, root, entry.relative);
      const link = linkAbove(entry.relative);
      if (link !== undefined) {
        if (isFile) jobs.push(refusal(`${prefix}${entry.relative}`, linkInDestinationError(target, link)));
      } else if (entry.type === 'dir') {
        if (!(await makeFolder(to, target))) links.set(entry.relative, target);
      } else {
        jobs.push(job(entry, target, `${prefix}${entry.relative}`));
      }
    }
  }
  return jobs;
}
