import { AgentError } from '../errors.js';

// `--exclude` / `--include` for put, get and sync, as rclone's filters and lftp's `mirror -x/-i`:
// rules in the order given, the first whose pattern matches decides. Paths are relative to the
// source root (`/`-separated). Pure: no I/O.
//
// Patterns are globs: `*` any characters but `/`, `**` any characters including `/` (`a/**/b` also
// matches `a/b`), `?` one character but `/`, `[abc]`, `[a-z]`, `[!abc]` one of (or none of) those,
// `{a,b}` one of the alternatives (each a pattern; braces nest), `\` takes the next character
// literally. `*` matches a leading dot too.
// - A pattern with a `/` in it (other than at its end) is matched against the whole relative path;
//   a leading `/` only says so (`/build` is `build` at the root, not deeper).
// - Without one, it is matched against the name, at any depth (`*.tmp`, `node_modules`).
// - A trailing `/` matches folders only (`cache/`).
// An excluded folder is not entered: nothing in it is copied (or, for sync --delete, deleted).
// A path no rule matches is copied, unless --include was given: then only what an include rule
// matches (itself, or a folder it is in) is copied, as rclone does. Folders no rule matches are
// entered either way, so that `--include '*.txt'` finds the text files at every depth; such a
// folder is copied only when something in it is (PathFilter.entersOnly).

export interface FilterRule {
  include: boolean;
  pattern: string;
}

interface CompiledRule {
  include: boolean;
  /** Matched against the whole relative path, else against the name. */
  anchored: boolean;
  foldersOnly: boolean;
  regex: RegExp;
}

function escapeRegex(char: string): string {
  return /[\\^$.*+?()[\]{}|/-]/.test(char) ? `\\${char}` : char;
}

/** The regular expression of a glob (see the module comment), anchored at both ends. */
export function globToRegex(glob: string): RegExp {
  return new RegExp(`^${globSource(glob)}$`, 's');
}

/** A glob as the source of a regular expression, not anchored. */
function globSource(glob: string): string {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i]!;
    if (char === '\\' && i + 1 < glob.length) {
      out += escapeRegex(glob[++i]!);
    } else if (char === '*') {
      if (glob[i + 1] === '*') {
        i++;
        // `**/` may also stand for no folder at all: `a/**/b` matches `a/b`.
        if (glob[i + 1] === '/') {
          i++;
          out += '(?:.*/)?';
        } else {
          out += '.*';
        }
      } else {
        out += '[^/]*';
      }
    } else if (char === '?') {
      out += '[^/]';
    } else if (char === '[') {
      const end = classEnd(glob, i);
      if (end === -1) {
        out += '\\[';
        continue;
      }
      let body = glob.slice(i + 1, end);
      const negated = body.startsWith('!') || body.startsWith('^');
      if (negated) body = body.slice(1);
      // Inside a class only `\`, `]` and `^` mean something to a RegExp; a range's `-` is kept.
      const escaped = body.replace(/[\\\]^]/g, (c) => `\\${c}`);
      out += negated ? `(?!/)[^${escaped}]` : `(?!/)[${escaped}]`;
      i = end;
    } else if (char === '{') {
      // `{a,b}`: one of the alternatives, each a glob (braces nest); an unclosed `{` is itself.
      const alternatives = braceAlternatives(glob, i);
      if (!alternatives) {
        out += '\\{';
        continue;
      }
      out += `(?:${alternatives.parts.map(globSource).join('|')})`;
      i = alternatives.end;
    } else {
      out += escapeRegex(char);
    }
  }
  return out;
}

/** The alternatives of the brace group opened at `start` and where it closes, or null when it does not. */
function braceAlternatives(glob: string, start: number): { parts: string[]; end: number } | null {
  const parts: string[] = [];
  let depth = 0;
  let from = start + 1;
  for (let i = start + 1; i < glob.length; i++) {
    const char = glob[i]!;
    if (char === '\\') i++;
    else if (char === '[') i = Math.max(i, classEnd(glob, i));
    else if (char === '{') depth++;
    else if (char === '}' && depth > 0) depth--;
    else if (char === '}' || (char === ',' && depth === 0)) {
      parts.push(glob.slice(from, i));
      from = i + 1;
      if (char === '}') return { parts, end: i };
    }
  }
  return null;
}

/** Where the class opened at `start` closes (a `]` right after `[` or `[!` is a member), or -1. */
function classEnd(glob: string, start: number): number {
  let i = start + 1;
  if (glob[i] === '!' || glob[i] === '^') i++;
  if (glob[i] === ']') i++;
  for (; i < glob.length; i++) if (glob[i] === ']') return i;
  return -1;
}

function compile(rule: FilterRule): CompiledRule {
  let pattern = rule.pattern;
  const option = rule.include ? '--include' : '--exclude';
  if (pattern.trim() === '') throw new AgentError('USAGE', `${option} needs a pattern`);
  const foldersOnly = pattern.endsWith('/');
  pattern = pattern.replace(/\/+$/, '');
  const anchored = pattern.includes('/');
  pattern = pattern.replace(/^\/+/, '');
  if (pattern === '') throw new AgentError('USAGE', `${option} "${rule.pattern}" names no file or folder`);
  return { include: rule.include, anchored, foldersOnly, regex: globToRegex(pattern) };
}

export class PathFilter {
  private readonly rules: CompiledRule[];
  private readonly hasIncludes: boolean;

  constructor(rules: FilterRule[]) {
    this.rules = rules.map(compile);
    this.hasIncludes = rules.some((r) => r.include);
  }

  /** The first rule matching `relative`, or null. */
  private decide(relative: string, isFolder: boolean): boolean | null {
    const name = relative.slice(relative.lastIndexOf('/') + 1);
    for (const rule of this.rules) {
      if (rule.foldersOnly && !isFolder) continue;
      if (rule.regex.test(rule.anchored ? relative : name)) return rule.include;
    }
    return null;
  }

  /** Whether a folder above `relative` was named by an include rule. */
  private insideIncluded(relative: string): boolean {
    for (let i = relative.indexOf('/'); i > 0; i = relative.indexOf('/', i + 1)) {
      if (this.decide(relative.slice(0, i), true) === true) return true;
    }
    return false;
  }

  /** Whether the entry at `relative` (below the source root) takes part; a folder refused is not entered. */
  admits(relative: string, isFolder: boolean): boolean {
    const decided = this.decide(relative, isFolder);
    if (decided !== null) return decided;
    if (isFolder || !this.hasIncludes) return true;
    // With --include, a file no rule names goes only inside a folder an include rule named.
    return this.insideIncluded(relative);
  }

  /**
   * Whether the folder at `relative` is entered only to look for what the include rules name: no
   * rule names it, nor a folder above it. Such a folder is copied only with something in it (as
   * rclone does): `--include '*.txt'` makes no empty folders where there is no text file.
   */
  entersOnly(relative: string): boolean {
    return this.hasIncludes && this.decide(relative, true) === null && !this.insideIncluded(relative);
  }
}

/** The run's filter, or null when no --exclude or --include was given. */
export function pathFilter(rules: FilterRule[] | undefined): PathFilter | null {
  return rules && rules.length > 0 ? new PathFilter(rules) : null;
}
