/**
 * What `ferry sync` must do to make the destination folder mirror the source, from the two
 * listings alone. Pure: no I/O, so every rule is tested without a server.
 */

export interface ListedEntry {
  /** Relative to the synced folder, `/`-separated. */
  relative: string;
  type: 'file' | 'dir' | 'link' | 'other';
  size: number;
  mtime: number;
}

export type SyncAction =
  | { action: 'mkdir'; relative: string }
  | { action: 'copy'; relative: string; size: number; mtime: number; reason: 'new' | 'size' | 'time' | 'content' }
  /** Same size, different time, --checksum: compare contents before deciding. */
  | { action: 'compare'; relative: string; size: number; mtime: number }
  | { action: 'delete'; relative: string; type: 'file' | 'dir' | 'link' | 'other' }
  | { action: 'conflict'; relative: string; reason: string };

export interface SyncOptions {
  /** Remove what the source lacks. */
  delete: boolean;
  /** Compare by content: files of the same size are compared whatever their times say. */
  checksum: boolean;
  /**
   * Folders of the destination that hold entries --exclude/--include left out of the listing: they
   * are never removed as a whole (only what was listed in them is), nor replaced by a file.
   */
  protect?: ReadonlySet<string>;
}

export interface SyncPlan {
  actions: SyncAction[];
  /** Files already the same. */
  unchanged: number;
  /** Their relative paths (for `-vv`). */
  unchangedFiles: string[];
}

const kindName = (type: ListedEntry['type']) => (type === 'dir' ? 'folder' : type === 'link' ? 'symbolic link' : type === 'other' ? 'special file' : 'file');

const byPath = (a: { relative: string }, b: { relative: string }) => (a.relative < b.relative ? -1 : a.relative > b.relative ? 1 : 0);

export function planSync(source: ListedEntry[], destination: ListedEntry[], options: SyncOptions): SyncPlan {
  const dest = new Map(destination.map((e) => [e.relative, e]));
  const src = new Map(source.map((e) => [e.relative, e]));
  const mkdirs: SyncAction[] = [];
  const copies: SyncAction[] = [];
  const deletes: SyncAction[] = [];
  const conflicts: SyncAction[] = [];
  const unchangedFiles: string[] = [];
  // Things under a folder that replaces a file (or goes away) need no look of their own.
  const replaced = new Set<string>();
  // Folders of the source that cannot be made (a file has the name): nothing under them is tried.
  const blocked = new Set<string>();
  const underAny = (set: Set<string>, relative: string) => {
    for (let i = relative.lastIndexOf('/'); i > 0; i = relative.lastIndexOf('/', i - 1)) {
      if (set.has(relative.slice(0, i))) return true;
    }
    return false;
  };
  const under = (relative: string) => underAny(replaced, relative);
  const protect = options.protect ?? new Set<string>();

  for (const entry of [...source].sort(byPath)) {
    if (entry.type !== 'file' && entry.type !== 'dir') continue; // sockets, devices, dangling links
    if (underAny(blocked, entry.relative)) continue;
    const existing = under(entry.relative) ? undefined : dest.get(entry.relative);
    if (existing && existing.type !== entry.type) {
      if (protect.has(entry.relative)) {
        conflicts.push({ action: 'conflict', relative: entry.relative, reason: `is a ${kindName(entry.type)} in the source and a folder in the destination that holds excluded files (left as it is)` });
        continue;
      }
      if (!options.delete) {
        conflicts.push({ action: 'conflict', relative: entry.relative, reason: `is a ${kindName(entry.type)} in the source and a ${kindName(existing.type)} in the destination (use --delete to replace it)` });
        if (entry.type === 'dir') blocked.add(entry.relative);
        continue;
      }
      deletes.push({ action: 'delete', relative: entry.relative, type: existing.type });
      replaced.add(entry.relative);
    }
    const present = existing && existing.type === entry.type ? existing : undefined;
    if (entry.type === 'dir') {
      if (!present) mkdirs.push({ action: 'mkdir', relative: entry.relative });
      continue;
    }
    if (!present) {
      copies.push({ action: 'copy', relative: entry.relative, size: entry.size, mtime: entry.mtime, reason: 'new' });
    } else if (present.size !== entry.size) {
      copies.push({ action: 'copy', relative: entry.relative, size: entry.size, mtime: entry.mtime, reason: 'size' });
    } else if (options.checksum) {
      copies.push({ action: 'compare', relative: entry.relative, size: entry.size, mtime: entry.mtime });
    } else if (present.mtime !== entry.mtime) {
      copies.push({ action: 'copy', relative: entry.relative, size: entry.size, mtime: entry.mtime, reason: 'time' });
    } else {
      unchangedFiles.push(entry.relative);
    }
  }

  if (options.delete) {
    for (const entry of destination) {
      if (src.has(entry.relative) || under(entry.relative) || protect.has(entry.relative)) continue;
      // Inside a folder that goes away as a whole: one delete covers it.
      const parentGone = (() => {
        for (let i = entry.relative.lastIndexOf('/'); i > 0; i = entry.relative.lastIndexOf('/', i - 1)) {
          const parent = entry.relative.slice(0, i);
          if (!src.has(parent) && dest.get(parent)?.type === 'dir' && !protect.has(parent)) return true;
        }
        return false;
      })();
      if (!parentGone) deletes.push({ action: 'delete', relative: entry.relative, type: entry.type });
    }
  }

  // Replacements are deleted first, so that the new folder or file can take the name.
  const replacing = deletes.filter((d) => replaced.has(d.relative));
  const removing = deletes.filter((d) => !replaced.has(d.relative)).sort(byPath).reverse();
  return {
    actions: [...replacing, ...mkdirs.sort(byPath), ...copies.sort(byPath), ...conflicts, ...removing],
    unchanged: unchangedFiles.length,
    unchangedFiles,
  };
}
