import { lstatSync, readdirSync, statSync } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import type { Attributes, FileEntryWithStats, SFTPWrapper, Stats } from 'ssh2';
import { ConnectionLost, localError, OpenRefused, remoteError, SFTP_STATUS } from './errors.js';
import { nameProblem, refusedNameError, type RefusedName } from './names.js';
import { ownersFromLongname } from './owners.js';
import { asOverload } from './overload.js';
import { PIPELINE } from './constants.js';

/**
 * The two sides of a transfer seen the same way: a local folder tree and a remote one (over an
 * SFTP channel) both list, stat, create folders and remove. put, get and sync plan on this
 * interface, so one planner serves both directions.
 */

export type EntryType = 'file' | 'dir' | 'link' | 'other';

export interface Entry {
  path: string;
  type: EntryType;
  size: number;
  /** Whole seconds: SFTP v3 carries no finer modification time. */
  mtime: number;
  /** Permission bits (0o7777). */
  mode: number;
  /**
   * A name the server listed that is not a plain file name (names.ts): the entry stands for that
   * refusal only. Its `path` is the folder that listed it, and it is never joined to a path.
   */
  refused?: RefusedName;
  /** Remote entries: the owner's and group's numbers, when the server gives them. */
  uid?: number;
  gid?: number;
  /** Remote entries of a folder listing: the names, when the server's longname gives them (owners.ts). */
  owner?: string;
  group?: string;
}

/**
 * How a listing treats symbolic links: `follow` shows what they point at (sources: a link to a
 * file is sent as that file); `keep` shows the links themselves (destinations: ferry must never
 * write or delete through a link into a place outside the destination).
 */
export type LinkMode = 'follow' | 'keep';

export interface FileSide {
  kind: 'local' | 'remote';
  join(...parts: string[]): string;
  basename(path: string): string;
  dirname(path: string): string;
  /** The entry at `path` (symbolic links followed), or null when there is none. */
  stat(path: string): Promise<Entry | null>;
  /** The entry at `path` itself (a link is a link), or null when there is none. */
  lstat(path: string): Promise<Entry | null>;
  /** The entries of a folder, links followed to what they point at unless `links` is `keep`. */
  list(dir: string, links?: LinkMode): Promise<Entry[]>;
  /** Creates a folder; one already there is fine. */
  mkdir(path: string): Promise<void>;
  /** Removes a file, or a folder with everything in it. */
  remove(entry: Entry): Promise<void>;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

function typeOfMode(mode: number): EntryType {
  switch (mode & S_IFMT) {
    case S_IFDIR: return 'dir';
    case S_IFREG: return 'file';
    case S_IFLNK: return 'link';
    default: return 'other';
  }
}

// ---------------------------------------------------------------- local

function localEntry(path: string, st: { mode: number; size: number; mtimeMs: number }): Entry {
  return { path, type: typeOfMode(st.mode), size: st.size, mtime: Math.floor(st.mtimeMs / 1000), mode: st.mode & 0o7777 };
}

export const localSide: FileSide = {
  kind: 'local',
  join: (...parts) => join(...parts),
  basename: (path) => basename(path),
  dirname: (path) => dirname(path),
  async stat(path) {
    try {
      return localEntry(path, await stat(path));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw localError(err, path);
    }
  },
  async lstat(path) {
    try {
      return localEntry(path, lstatSync(path));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw localError(err, path);
    }
  },
  // Synchronous on purpose: a local stat costs microseconds, its thread-pool round trip ten times
  // more (2,000 files took 140 ms to list before the first byte could move, now a few). Nothing
  // else runs while a tree is being planned (listLocalInSlices, for when something does).
  async list(dir, links = 'follow') {
    const names = readLocalDir(dir);
    const prefix = childPrefix(dir);
    return names.map((name) => localChild(prefix, name, links));
  },
  async mkdir(path) {
    try {
      await mkdir(path, { recursive: true });
    } catch (err) {
      throw localError(err, path);
    }
  },
  async remove(entry) {
    try {
      await rm(entry.path, { recursive: entry.type === 'dir', force: true });
    } catch (err) {
      throw localError(err, entry.path);
    }
  },
};

/** A local folder's names, sorted. */
function readLocalDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch (err) {
    throw localError(err, dir);
  }
}

/**
 * What a folder's names are joined to: `join(dir, name)` for a name read from the folder (never
 * `.`, `..` or with a `/`), without normalising the folder again for each of its entries.
 */
function childPrefix(dir: string): string {
  const base = join(dir);
  return base === '.' ? '' : base.endsWith('/') ? base : `${base}/`;
}

function localChild(prefix: string, name: string, links: LinkMode): Entry {
  const path = prefix + name;
  try {
    return localEntry(path, links === 'keep' ? lstatSync(path) : statSync(path));
  } catch (err) {
    // A dangling link: show it as what it is.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return localEntry(path, lstatSync(path));
    throw localError(err, path);
  }
}

/** Entries a listing in slices looks at between two turns of the event loop. */
const LIST_SLICE = 128;

/**
 * The same as localSide.list, in slices with a turn of the event loop between them (about a
 * millisecond each): for listing while a connection is being made (copy-plan.ts, listAhead).
 */
export async function listLocalInSlices(dir: string, links: LinkMode = 'follow'): Promise<Entry[]> {
  const names = readLocalDir(dir);
  const prefix = childPrefix(dir);
  const entries: Entry[] = [];
  for (let i = 0; i < names.length; i++) {
    if (i > 0 && i % LIST_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
    entries.push(localChild(prefix, names[i]!, links));
  }
  return entries;
}

// ---------------------------------------------------------------- remote

function remoteEntry(path: string, attrs: Stats | Attributes): Entry {
  const entry: Entry = { path, type: typeOfMode(attrs.mode), size: Number(attrs.size), mtime: attrs.mtime, mode: attrs.mode & 0o7777 };
  if (typeof attrs.uid === 'number') entry.uid = attrs.uid;
  if (typeof attrs.gid === 'number') entry.gid = attrs.gid;
  return entry;
}

/**
 * Whether requests can still be sent on the channel. ssh2 accepts a request on a closed channel
 * and never calls it back, so every request checks first.
 */
export function channelOpen(sftp: SFTPWrapper): boolean {
  return !closedChannels.has(sftp) && (sftp as unknown as { outgoing?: { state?: string } }).outgoing?.state === 'open';
}

const closedChannels = new WeakSet<SFTPWrapper>();

/** From now on, requests on the channel fail at once (its connection is being closed). */
export function markChannelClosed(sftp: SFTPWrapper): void {
  closedChannels.add(sftp);
}

/**
 * Follows a new channel's end. A connection that drops leaves ssh2's channel state "open", but
 * the channel emits 'close': from then on, requests fail at once instead of waiting forever.
 */
export function watchChannel(sftp: SFTPWrapper, connection: { once(event: 'close', listener: () => void): unknown }): void {
  const closed = () => closedChannels.add(sftp);
  sftp.once('close', closed);
  sftp.once('end', closed);
  connection.once('close', closed);
}

/** The old file's name while a new one takes its place on a server without an atomic rename. */
const OLD_SUFFIX = '.ferry-old';

export const CHANNEL_CLOSED = 'the SFTP channel is closed (connection lost)';

/** Promise forms of the SFTP requests ferry makes, each failing with the path's AgentError. */
/**
 * Whether the SFTP server behind `sftp` is OpenSSH's own sftp-server (or internal-sftp), which
 * carries out one handle's requests in order. ssh2 knows only the SSH server's identification, and
 * sshd runs other SFTP servers as its subsystem too: gesftpserver, multi-threaded, which carries
 * requests out in any order. OpenSSH's sftp-server sends no `vendor-id`; gesftpserver does.
 */
export function carriesOutInOrder(sftp: SFTPWrapper): boolean {
  const start = sftp as unknown as { _isOpenSSH?: unknown; _extensions?: Record<string, string> };
  return start._isOpenSSH === true && start._extensions?.['vendor-id'] === undefined;
}

export class RemoteFs {
  /**
   * Whether the server carries out one handle's requests in the order they were sent, so that a
   * close may go right behind the last write or read still in flight. OpenSSH's sftp-server does
   * (one request at a time, in order). The SFTP drafts let a server answer, and carry out, requests
   * in any order: ProFTPD's mod_sftp and gesftpserver do, and a close they take before a write
   * still in flight makes that write fail ("Invalid handle"). Elsewhere, then, attributes and close
   * wait until every write or read is answered (a round trip more per file).
   */
  readonly inOrder: boolean;

  /**
   * `budget`: the engine's requests in flight per file, read live (it steps down when the server
   * fails under load, concurrency.ts); without it, PIPELINE.requestsInFlight.
   */
  constructor(readonly sftp: SFTPWrapper, private readonly posixRename: boolean, private readonly budget?: { readonly requests: number }) {
    this.inOrder = carriesOutInOrder(sftp);
  }

  /**
   * Requests of `chunkBytes` to keep in flight for one file: PIPELINE.requestsInFlight, or more
   * where the server's `limits@openssh.com` asks for smaller requests than usual (so that as many
   * bytes are in flight: the pipe stays full), never more than the engine's budget allows.
   */
  requestsInFlight(chunkBytes: number): number {
    const { requestsInFlight, chunkBytes: usual, maxRequestsInFlight } = PIPELINE;
    const sized = chunkBytes >= usual / 2 ? requestsInFlight : Math.min(maxRequestsInFlight, Math.ceil((requestsInFlight * usual) / chunkBytes));
    return Math.max(1, Math.min(sized, this.budget?.requests ?? sized));
  }

  get usable(): boolean {
    return channelOpen(this.sftp);
  }

  /**
   * The most file data (up to `limit`) that one write request carries without spilling over into
   * a second SSH packet: the channel's packet size less the request's own header (length, type,
   * id, handle, offset, data length). 32 KiB of data would need 32 KiB + 29 bytes, i.e. a full
   * packet and a 29-byte one, each encrypted and sent on its own.
   */
  writeChunkBytes(handle: Buffer, limit: number): number {
    const packetSize = (this.sftp as unknown as { outgoing?: { packetSize?: unknown } }).outgoing?.packetSize;
    if (typeof packetSize !== 'number') return this.unsplit('_maxWriteLen', limit);
    const fits = packetSize - (4 + 1 + 4 + 4 + handle.length + 8 + 4);
    return this.unsplit('_maxWriteLen', fits >= 4096 ? Math.min(limit, fits) : limit);
  }

  /**
   * `length` or less, so that ssh2 sends it as one request. ssh2 splits a read or write longer than
   * its limit for the server (256 KiB less 2 KiB for OpenSSH, 31,952 bytes for others) and sends
   * the rest only when the first part is answered: after the close that ferry sends right behind
   * the last request, so the rest would fail on a closed handle.
   */
  private unsplit(limitName: '_maxReadLen' | '_maxWriteLen', length: number): number {
    const max = (this.sftp as unknown as Record<string, unknown>)[limitName];
    return typeof max === 'number' && max >= 4096 ? Math.min(length, max) : length;
  }

  /**
   * The most file data (up to `limit`) that one read's answer carries in a single SSH packet: the
   * packet size this side announced for the channel, less the answer's header (length, type, id,
   * data length). With 32 KiB reads each answer (32 KiB + 13 bytes) spans two packets, and ssh2
   * must copy every one into a new buffer to join it: with reads that fit, a 512 MiB download
   * measured 8 % faster and, with the reused receive buffers of a direct connection (connect.ts),
   * 20 % faster (median of 8 paired runs, tmpfs, 2026-11-30).
   */
  readChunkBytes(limit: number): number {
    const packetSize = (this.sftp as unknown as { incoming?: { packetSize?: unknown } }).incoming?.packetSize;
    if (typeof packetSize !== 'number') return this.unsplit('_maxReadLen', limit);
    const fits = packetSize - (4 + 1 + 4 + 4);
    return this.unsplit('_maxReadLen', fits >= 4096 ? Math.min(limit, fits) : limit);
  }

  /**
   * Whether a write of `length` bytes goes out as one request whose data ssh2 copies at once, so
   * that the caller may reuse its buffer as soon as `write` returns. A longer write is split by
   * ssh2, which then holds on to the buffer until the next part is sent.
   */
  copiesWrite(length: number): boolean {
    const max = (this.sftp as unknown as { _maxWriteLen?: unknown })._maxWriteLen;
    return typeof max === 'number' && length <= max;
  }

  private call<T>(path: string, start: (done: (err: Error | null | undefined, value?: T) => void) => void): Promise<T> {
    return new Promise((resolve, reject) => {
      if (!this.usable) return reject(new ConnectionLost(CHANNEL_CLOSED));
      start((err, value) => (err ? reject(asOverload(err, remoteError(err, path), 1, false)) : resolve(value as T)));
    });
  }

  stat(path: string): Promise<Stats> {
    return this.call(path, (done) => this.sftp.stat(path, done));
  }

  /** The entry (with `lstat`: a link itself), or null when there is none (any other failure throws). */
  async statOrNull(path: string, request: 'stat' | 'lstat' = 'stat'): Promise<Stats | null> {
    return new Promise((resolve, reject) => {
      if (!this.usable) return reject(new ConnectionLost(CHANNEL_CLOSED));
      this.sftp[request](path, (err, stats) => {
        if (!err) return resolve(stats);
        if ((err as { code?: unknown }).code === SFTP_STATUS.NO_SUCH_FILE) return resolve(null);
        reject(remoteError(err, path));
      });
    });
  }

  lstat(path: string): Promise<Stats> {
    return this.call(path, (done) => this.sftp.lstat(path, done));
  }

  /**
   * A folder's entries (without `.` and `..`). The listing loop is ours rather than ssh2's, so that
   * the folder's handle is a copy we own (see `open`).
   */
  async readdir(path: string): Promise<FileEntryWithStats[]> {
    const handle = await this.call<Buffer>(path, (done) => this.sftp.opendir(path, (err, h) => done(err, h ? Buffer.from(h) : h)));
    const entries: FileEntryWithStats[] = [];
    try {
      for (;;) {
        const batch = await new Promise<FileEntryWithStats[] | null>((resolve, reject) => {
          if (!this.usable) return reject(new ConnectionLost(CHANNEL_CLOSED));
          this.sftp.readdir(handle, (err, list) => {
            if ((err as { code?: unknown } | undefined)?.code === SFTP_STATUS.EOF) return resolve(null);
            if (err) return reject(remoteError(err, path));
            resolve(list);
          });
        });
        if (batch === null) break;
        for (const entry of batch) if (entry.filename !== '.' && entry.filename !== '..') entries.push(entry);
      }
    } finally {
      await this.close(handle, path).catch(() => undefined);
    }
    return entries;
  }

  mkdir(path: string): Promise<void> {
    return this.call(path, (done) => this.sftp.mkdir(path, done));
  }

  rmdir(path: string): Promise<void> {
    return this.call(path, (done) => this.sftp.rmdir(path, done));
  }

  unlink(path: string): Promise<void> {
    return this.call(path, (done) => this.sftp.unlink(path, done));
  }

  /**
   * A file's handle. ssh2 hands it over as a view into the bytes it received; on a direct
   * connection those are read into reused buffers, so the handle is copied before anything else
   * is received.
   */
  open(path: string, flags: 'r' | 'w' | 'wx' | 'r+'): Promise<Buffer> {
    return this.call(path, (done) => this.sftp.open(path, flags, (err, handle) => {
      if ((err as { code?: unknown } | undefined)?.code === SFTP_STATUS.FAILURE) return done(new OpenRefused(path, err!.message));
      done(err, handle ? Buffer.from(handle) : handle);
    }));
  }

  close(handle: Buffer, path: string): Promise<void> {
    return this.call(path, (done) => this.sftp.close(handle, done));
  }

  fsetstat(handle: Buffer, attrs: { mtime?: number; atime?: number; mode?: number }, path: string): Promise<void> {
    return this.call(path, (done) => this.sftp.fsetstat(handle, attrs, done));
  }

  setstat(path: string, attrs: { mtime?: number; atime?: number; mode?: number }): Promise<void> {
    return this.call(path, (done) => this.sftp.setstat(path, attrs, done));
  }

  read(handle: Buffer, buffer: Buffer, length: number, position: number, path: string): Promise<number> {
    return this.call(path, (done) => this.sftp.read(handle, buffer, 0, length, position, (err, bytesRead) => done(err, bytesRead)));
  }

  realpath(path: string): Promise<string> {
    return this.call(path, (done) => this.sftp.realpath(path, done));
  }

  /** Free bytes for unprivileged users where `path` is, when the server can tell (OpenSSH can). */
  async freeBytes(path: string): Promise<number | null> {
    return new Promise((resolve) => {
      if (!this.usable) return resolve(null);
      try {
        this.sftp.ext_openssh_statvfs(path, (err, info: { f_bavail?: number | bigint; f_frsize?: number | bigint } | undefined) => {
          if (err || !info || info.f_bavail === undefined || info.f_frsize === undefined) return resolve(null);
          resolve(Number(info.f_bavail) * Number(info.f_frsize));
        });
      } catch {
        resolve(null);
      }
    });
  }

  /**
   * Renames over an existing target: atomically with OpenSSH's `posix-rename@openssh.com` where the
   * server has it. The plain SFTP v3 rename refuses an existing target (ProFTPD without the
   * extension, most servers that are not OpenSSH): the old file is then renamed aside first
   * (`.<name>.ferry-old`), and back again when the new one cannot take its place, so a failure
   * never loses it. A folder in the way is not moved: that rename fails as it is.
   */
  async replace(from: string, to: string): Promise<void> {
    if (this.posixRename) {
      return this.call(to, (done) => this.sftp.ext_openssh_rename(from, to, done));
    }
    try {
      return await this.rename(from, to);
    } catch (err) {
      const existing = await this.statOrNull(to, 'lstat').catch(() => null);
      if (!existing || (existing.mode & 0o170000) === 0o040000) throw err;
    }
    const aside = posix.join(posix.dirname(to), `.${posix.basename(to)}${OLD_SUFFIX}`);
    // One left by a run that was stopped between the two renames is an old copy only.
    await this.unlink(aside).catch(() => undefined);
    await this.rename(to, aside);
    try {
      await this.rename(from, to);
    } catch (err) {
      await this.rename(aside, to).catch(() => undefined);
      throw err;
    }
    await this.unlink(aside).catch(() => undefined);
  }

  /** Plain rename: fails when the target exists (ferry mv must not overwrite silently). */
  rename(from: string, to: string): Promise<void> {
    return this.call(to, (done) => this.sftp.rename(from, to, done));
  }
}

export function remoteSide(fs: RemoteFs): FileSide & { fs: RemoteFs } {
  const side: FileSide & { fs: RemoteFs } = {
    kind: 'remote',
    fs,
    join: (...parts) => posix.join(...parts),
    basename: (path) => posix.basename(path),
    dirname: (path) => posix.dirname(path),
    async stat(path) {
      const attrs = await fs.statOrNull(path);
      return attrs ? remoteEntry(path, attrs) : null;
    },
    async lstat(path) {
      const attrs = await fs.statOrNull(path, 'lstat');
      return attrs ? remoteEntry(path, attrs) : null;
    },
    async list(dir, links = 'follow') {
      const listing = await fs.readdir(dir);
      const entries: Entry[] = [];
      const refusals: Entry[] = [];
      for (const item of listing) {
        // Every server lists the folder itself and its parent: those are never entries.
        if (item.filename === '.' || item.filename === '..') continue;
        const problem = nameProblem(item.filename);
        if (problem) {
          refusals.push({ path: dir, type: 'other', size: 0, mtime: 0, mode: 0, refused: { name: item.filename, reason: problem } });
          continue;
        }
        const path = posix.join(dir, item.filename);
        let entry = remoteEntry(path, item.attrs);
        const owners = ownersFromLongname(item.longname, item.attrs);
        if (entry.type === 'link' && links === 'follow') {
          const target = await fs.statOrNull(path);
          if (target) entry = remoteEntry(path, target);
        }
        // The longname is the link's own: its names are the target's only when the numbers agree.
        if (owners && entry.uid === item.attrs.uid && entry.gid === item.attrs.gid) Object.assign(entry, owners);
        entries.push(entry);
      }
      return [...entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)), ...refusals];
    },
    async mkdir(path) {
      try {
        await fs.mkdir(path);
      } catch (err) {
        // OpenSSH answers FAILURE for an existing folder: look before deciding it failed.
        const existing = await fs.statOrNull(path).catch(() => null);
        if (existing && typeOfMode(existing.mode) === 'dir') return;
        if (!existing && posix.dirname(path) !== path) {
          const parent = posix.dirname(path);
          const parentEntry = await fs.statOrNull(parent);
          if (!parentEntry) {
            await side.mkdir(parent);
            return fs.mkdir(path);
          }
        }
        throw err;
      }
    },
    async remove(entry) {
      if (entry.type !== 'dir') return fs.unlink(entry.path);
      for (const child of await fs.readdir(entry.path)) {
        if (child.filename === '.' || child.filename === '..') continue;
        // A crafted name joined to the folder could point anywhere: the folder is left as it is.
        const problem = nameProblem(child.filename);
        if (problem) throw refusedNameError(entry.path, { name: child.filename, reason: problem });
        await side.remove(remoteEntry(posix.join(entry.path, child.filename), child.attrs));
      }
      await fs.rmdir(entry.path);
    },
  };
  return side;
}

/**
 * What a walk does with an entry: `true` yields it (and goes into a folder), `false` leaves it out
 * (a folder is not listed at all), `if-not-empty` goes into a folder and yields it only ahead of
 * the first entry found below it.
 */
export type WalkKeep = (entry: Entry & { relative: string }) => boolean | 'if-not-empty';

/**
 * Every entry under `root` (not `root` itself), parents before children, with paths relative to
 * root. A refused name comes with the relative path of the folder that listed it. `keep`
 * (--exclude/--include) leaves entries out (WalkKeep).
 */
export async function* walk(
  side: FileSide, root: string, links: LinkMode = 'follow', keep?: WalkKeep, relative = '',
): AsyncGenerator<Entry & { relative: string }> {
  for (const entry of await side.list(relative === '' ? root : side.join(root, relative), links)) {
    if (entry.refused) {
      yield { ...entry, relative };
      continue;
    }
    const rel = relative === '' ? side.basename(entry.path) : `${relative}/${side.basename(entry.path)}`;
    const found = { ...entry, relative: rel };
    const kept = keep ? keep(found) : true;
    if (kept === false) continue;
    if (kept === true || entry.type !== 'dir') {
      yield found;
      if (entry.type === 'dir') yield* walk(side, root, links, keep, rel);
      continue;
    }
    let shown = false;
    for await (const below of walk(side, root, links, keep, rel)) {
      if (!shown) yield found;
      shown = true;
      yield below;
    }
  }
}
