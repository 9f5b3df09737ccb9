import { createHash } from 'node:crypto';
import { closeSync, constants as fsConstants, createReadStream, fchmodSync, futimesSync, lstatSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { lstat, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import type { Throttle } from './bwlimit.js';
import { checkFileBlocks } from './check-file.js';
import { writeDirect } from './direct-write.js';
import { PART_SUFFIX, PIPELINE } from './constants.js';
import { ConnectionLost, localError, pathError, remoteError, SFTP_STATUS } from './errors.js';
import { CHANNEL_CLOSED, type RemoteFs } from './file-sides.js';
import { asOverload } from './overload.js';

/**
 * One file over SFTP, pipelined: up to PIPELINE.requestsInFlight reads or writes in flight, and
 * always through a part file (`.<name>.ferry-part` next to the final name) that is renamed into
 * place only when complete, with its modification time already set. Nobody ever sees a
 * half-written file under the final name.
 */

export interface FileTransfer {
  direction: 'upload' | 'download';
  source: string;
  target: string;
  size: number;
  /** Seconds; set on the target. */
  mtime: number;
  mode: number;
}

/**
 * Where to start. `fresh`: from zero (a part file already there is reported, then replaced).
 * `verify` (--resume): continue a part file left by an earlier run from the end of its longest
 * prefix whose blocks hash the same as the source's. `size` (--resume=size): trust the part file
 * by its size alone. `continue` (a retry in this run): continue from what this run knows it
 * delivered, never beyond the part file's size.
 */
export type ResumeMode = 'fresh' | 'verify' | 'size' | 'continue';

/** What an attempt found in a part file, and where it starts. */
export interface ResumeStart {
  /** Where the attempt starts. */
  from: number;
  /** The part file's size (what was there). */
  partBytes: number;
  /**
   * How it was trusted: `sha256` (every block compared, `--resume`), `size` (`--resume=size`), or
   * `this-run` (a retry continuing what this same run wrote and saw confirmed).
   */
  verified: 'sha256' | 'size' | 'this-run';
  /** Whether all of the part file was kept (false: it differed, or was longer than the source). */
  matched: boolean;
  /** For `sha256`: who hashed the remote side. */
  via?: 'check-file' | 'read-back';
}

export interface TransferProgress {
  /** Bytes delivered in order (a prefix of the file): a retry may continue from here. */
  confirmed: number;
  /** Where the latest attempt started. */
  startedAt: number;
}

export interface TransferHooks {
  /** Bytes newly confirmed (negative when an attempt starts below what was counted before). */
  onBytes(delta: number): void;
  /** An attempt starts at `offset`; `resume` says what it found when it looked at a part file. */
  onStart(offset: number, resume?: ResumeStart): void;
  /** A fresh transfer found a part file of `bytes` from an earlier run (it is replaced). */
  onLeftover(bytes: number): void;
  /** `--bwlimit`: asked before each read or write of file data goes out. */
  throttle?: Throttle | undefined;
}

export function partNameFor(path: string, pathApi: { dirname(p: string): string; basename(p: string): string; join(...p: string[]): string }): string {
  return pathApi.join(pathApi.dirname(path), `.${pathApi.basename(path)}${PART_SUFFIX}`);
}

/** Tracks which in-order prefix of the issued requests has completed. */
class PrefixTracker {
  private readonly pending: { end: number; done: boolean }[] = [];
  constructor(public confirmed: number) {}
  issue(end: number) {
    const item = { end, done: false };
    this.pending.push(item);
    return item;
  }
  complete(item: { done: boolean }): number {
    item.done = true;
    const before = this.confirmed;
    while (this.pending.length > 0 && this.pending[0]!.done) this.confirmed = this.pending.shift()!.end;
    return this.confirmed - before;
  }
}

async function diskFullOrFailure(fs: RemoteFs, err: unknown, target: string, needed: number): Promise<Error> {
  if ((err as { code?: unknown }).code === SFTP_STATUS.FAILURE) {
    const free = await fs.freeBytes(posix.dirname(target));
    if (free !== null && free < needed) return pathError('DISK_FULL', target, 'no space left on the server');
  }
  return remoteError(err, target);
}

/** Fills `buffer` from `position` of the file. */
async function readExactly(handle: FileHandle, buffer: Buffer, position: number, path: string): Promise<Buffer> {
  const { length } = buffer;
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) throw pathError('PARTIAL', path, 'the file got shorter while it was being sent');
    filled += bytesRead;
  }
  return buffer;
}

/** The file being uploaded, read by position. A block read is valid until the next read. */
interface LocalSource {
  read(length: number, position: number): Promise<Buffer> | Buffer;
  close(): Promise<void>;
}

/**
 * Buffers for small files read whole: taken when the file is opened, given back when it is closed
 * (every write has been answered by then, and ssh2 has copied or sent the data). 2,000 files of
 * 16 KiB no longer allocate 2,000 fresh buffers, fault their pages in and collect them.
 */
const wholeReadBuffers: Buffer[] = [];
const KEPT_WHOLE_READ_BUFFERS = 64;

function takeWholeReadBuffer(size: number): Buffer {
  const kept = wholeReadBuffers.pop();
  if (kept && kept.length >= size) return kept;
  // Sizes in powers of two from 32 KiB: a buffer given back serves the next file of its class.
  let length = PIPELINE.chunkBytes;
  while (length < size) length *= 2;
  return Buffer.allocUnsafeSlow(length);
}

function giveBackWholeReadBuffer(buffer: Buffer): void {
  if (wholeReadBuffers.length < KEPT_WHOLE_READ_BUFFERS) wholeReadBuffers.push(buffer);
}

/** Up to `size` bytes of the file from its start, synchronously (open, read, close). */
function readWholeSync(path: string, buffer: Buffer, size: number): number {
  const fd = openSync(path, 'r');
  try {
    let filled = 0;
    while (filled < size) {
      const got = readSync(fd, buffer, filled, size - filled, filled);
      if (got === 0) break;
      filled += got;
    }
    return filled;
  } finally {
    closeSync(fd);
  }
}

/**
 * Opens the file to upload. A small one is read whole, synchronously: for a 16 KiB file the three
 * thread-pool round trips of open, read and close cost more than the system calls themselves
 * (2,000 small files spent a third of their time on them), and the event loop is blocked for
 * microseconds. Its size is the one listed: a file that grew since is sent as it was then, one
 * that got shorter fails. A larger file is read block by block as the pipeline needs it.
 */
async function openLocalSource(path: string, size: number, reuseBlocks: boolean): Promise<LocalSource> {
  if (size <= PIPELINE.wholeReadBytes) {
    const buffer = takeWholeReadBuffer(size);
    let filled: number;
    try {
      filled = readWholeSync(path, buffer, size);
    } catch (err) {
      giveBackWholeReadBuffer(buffer);
      throw localError(err, path);
    }
    let open = true;
    return {
      read(length, position) {
        if (position + length > filled) throw pathError('PARTIAL', path, 'the file got shorter while it was being sent');
        return buffer.subarray(position, position + length);
      },
      close: async () => {
        if (open) giveBackWholeReadBuffer(buffer);
        open = false;
      },
    };
  }
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw localError(err, path);
  }
  // One block buffer for the whole file when the writes copy it at once: a 512 MiB upload no
  // longer allocates 512 MiB of short-lived buffers (a 256 MiB upload measured 20 % faster).
  let block: Buffer | null = null;
  return {
    read(length, position) {
      if (!reuseBlocks) return readExactly(handle, Buffer.allocUnsafe(length), position, path);
      if (block === null || block.length < length) block = Buffer.allocUnsafe(length);
      return readExactly(handle, block.subarray(0, length), position, path);
    },
    close: () => handle.close(),
  };
}

// ---------------------------------------------------------------- verifying a part file (--resume)

/** SHA-256 of each PIPELINE.resumeBlockBytes block of [0, length), read in order by `read`. */
async function localBlockDigests(length: number, read: (len: number, pos: number) => Promise<Buffer> | Buffer): Promise<Buffer[]> {
  const digests: Buffer[] = [];
  for (let position = 0; position < length; position += PIPELINE.resumeBlockBytes) {
    const block = await read(Math.min(PIPELINE.resumeBlockBytes, length - position), position);
    digests.push(createHash('sha256').update(block).digest());
  }
  return digests;
}

/** The same for a remote file, read back with the download's pipelined reads. */
async function remoteBlockDigests(fs: RemoteFs, handle: Buffer, path: string, length: number, throttle?: Throttle): Promise<Buffer[]> {
  const digests: Buffer[] = [];
  const block = PIPELINE.resumeBlockBytes;
  let hash = createHash('sha256');
  let filled = 0;
  await pipelinedRead(fs, handle, path, 0, length, (run) => {
    for (let data of run) {
      while (data.length > 0) {
        const take = Math.min(block - filled, data.length);
        hash.update(data.subarray(0, take));
        data = data.subarray(take);
        filled += take;
        if (filled === block) {
          digests.push(hash.digest());
          hash = createHash('sha256');
          filled = 0;
        }
      }
    }
  }, undefined, throttle);
  if (filled > 0) digests.push(hash.digest());
  return digests;
}

/** The end of the longest prefix of [0, length) whose blocks have the same digests on both sides. */
function verifiedPrefix(a: Buffer[], b: Buffer[], length: number): number {
  for (let i = 0; i < Math.ceil(length / PIPELINE.resumeBlockBytes); i++) {
    if (!a[i] || !b[i] || !a[i]!.equals(b[i]!)) return i * PIPELINE.resumeBlockBytes;
  }
  return length;
}

/**
 * Compares a part file of `partBytes` with the source, block by block: the remote side is hashed
 * by the server where it offers check-file, otherwise read back; the local side is read here.
 * Both run at once. Nothing is trusted that was not compared.
 */
async function verifyPart(
  fs: RemoteFs, remote: { handle: Buffer; path: string; endsWithPart: boolean }, partBytes: number, readLocal: (len: number, pos: number) => Promise<Buffer> | Buffer,
  throttle?: Throttle,
): Promise<ResumeStart> {
  const local = localBlockDigests(partBytes, readLocal);
  // A local failure surfaces when awaited below; this keeps it from going unhandled meanwhile.
  local.catch(() => undefined);
  // A server may hash its last block to the end of the file (ProFTPD does): where the remote file
  // goes on beyond the part (a download's source), only whole blocks are asked for, and a partial
  // last block is transferred again rather than trusted.
  const block = PIPELINE.resumeBlockBytes;
  const asked = remote.endsWithPart ? partBytes : Math.floor(partBytes / block) * block;
  let via: ResumeStart['via'] = 'check-file';
  let checked = asked;
  let remoteDigests = await checkFileBlocks(fs.sftp, { handle: remote.handle }, asked, block);
  if (remoteDigests === null) {
    via = 'read-back';
    checked = partBytes;
    remoteDigests = await remoteBlockDigests(fs, remote.handle, remote.path, partBytes, throttle);
  }
  const from = verifiedPrefix(await local, remoteDigests, checked);
  return { from, partBytes, verified: 'sha256', matched: from === partBytes, via };
}

/**
 * Where an attempt starts on a part file of `partBytes` (-1: none). `verify` compares it whole
 * (`verify` is called only then); `size` trusts it; `continue` trusts what this same run wrote and
 * saw confirmed, no further than the part file reaches: that is this run's own data, not an
 * earlier run's, so it needs no second look.
 */
async function resumeStart(mode: ResumeMode, partBytes: number, size: number, progress: TransferProgress, verify: () => Promise<ResumeStart>): Promise<ResumeStart | null> {
  if (mode === 'fresh' || partBytes < 0) return null;
  if (mode === 'continue') {
    return { from: Math.min(Math.max(partBytes, 0), progress.confirmed), partBytes, verified: 'this-run', matched: true };
  }
  if (partBytes > size) return { from: 0, partBytes, verified: mode === 'size' ? 'size' : 'sha256', matched: false };
  if (mode === 'size') return { from: partBytes, partBytes, verified: 'size', matched: true };
  if (partBytes === 0) return { from: 0, partBytes, verified: 'sha256', matched: true };
  return verify();
}

// ---------------------------------------------------------------- upload

export async function uploadFile(fs: RemoteFs, job: FileTransfer, mode: ResumeMode, preserve: boolean, progress: TransferProgress, hooks: TransferHooks): Promise<void> {
  const part = partNameFor(job.target, posix);
  const local = await openLocalSource(job.source, job.size, fs.copiesWrite(PIPELINE.chunkBytes));
  let remote: Buffer | null = null;
  try {
    let resumed: ResumeStart | null = null;
    if (mode !== 'fresh') {
      const existing = await fs.statOrNull(part);
      resumed = await resumeStart(mode, existing ? Number(existing.size) : -1, job.size, progress, async () => {
        const reader = await fs.open(part, 'r');
        remote = reader;
        const result = await verifyPart(fs, { handle: reader, path: part, endsWithPart: true }, Number(existing!.size), (len, pos) => local.read(len, pos), hooks.throttle);
        remote = null;
        await fs.close(reader, part);
        return result;
      });
    }
    const start = resumed?.from ?? 0;
    hooks.onBytes(start - progress.confirmed);
    progress.confirmed = start;
    progress.startedAt = start;
    hooks.onStart(start, resumed ?? undefined);
    remote = start > 0 ? await fs.open(part, 'r+') : mode === 'fresh' ? await openFreshPart(fs, part, hooks) : await fs.open(part, 'w');
    const handle = remote;
    // Times (and mode) on the part file first: the file appears under its name complete and dated.
    // Where the server handles one handle's requests in order (fs.inOrder), both go out right
    // behind the last write, so a small file costs one round trip for its data, attributes and
    // close together. Elsewhere they follow once every write is answered, the close after the
    // attributes: a server that reorders could otherwise close the handle under them.
    const attrs = preserve ? { atime: job.mtime, mtime: job.mtime, mode: job.mode } : { atime: job.mtime, mtime: job.mtime };
    let finishing: Promise<void> | null = null;
    await pipelinedWrite(fs, handle, local, job, start, progress, hooks, () => {
      if (!fs.inOrder) return;
      remote = null;
      finishing = Promise.all([fs.fsetstat(handle, attrs, part), fs.close(handle, part)]).then(() => undefined);
      // Failures are taken when awaited below; this keeps an early one from going unhandled.
      finishing.catch(() => undefined);
    });
    if (finishing === null) {
      await fs.fsetstat(handle, attrs, part);
      remote = null;
      finishing = fs.close(handle, part);
    }
    await finishing;
    await fs.replace(part, job.target);
  } finally {
    await local.close().catch(() => undefined);
    if (remote) await fs.close(remote, part).catch(() => undefined);
  }
}

/**
 * A fresh upload's part file, created exclusively: the usual case costs the one open it always
 * did. When that fails, a part file from an earlier run may be in the way: it is said (when it
 * has data), then replaced; any other reason for the failure comes from the plain open. A server
 * that ignores the exclusive flag still truncates (the open asks for that too), only the notice
 * is missing then.
 */
async function openFreshPart(fs: RemoteFs, part: string, hooks: TransferHooks): Promise<Buffer> {
  try {
    return await fs.open(part, 'wx');
  } catch (err) {
    if (err instanceof ConnectionLost) throw err;
  }
  const earlier = await fs.statOrNull(part, 'lstat').catch((err: unknown) => {
    if (err instanceof ConnectionLost) throw err;
    return null;
  });
  if (earlier && (earlier.mode & 0o170000) === 0o100000 && Number(earlier.size) > 0) hooks.onLeftover(Number(earlier.size));
  return fs.open(part, 'w');
}

async function pipelinedWrite(
  fs: RemoteFs, handle: Buffer, local: LocalSource, job: FileTransfer, start: number, progress: TransferProgress, hooks: TransferHooks,
  afterLastWrite: () => void,
): Promise<void> {
  const { readBlockChunks } = PIPELINE;
  const chunkBytes = fs.writeChunkBytes(handle, PIPELINE.chunkBytes);
  const tracker = new PrefixTracker(start);
  const part = partNameFor(job.target, posix);
  let inFlight = 0;
  let failure: unknown = null;
  /** Requests in flight when the first failure came, itself included. */
  let failedAmong = 0;
  let wake: (() => void) | null = null;
  const signal = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const waitForSlot = () => new Promise<void>((resolve) => (wake = resolve));

  let next = start;
  while (next < job.size && failure === null) {
    // Read each time: the engine lowers it when the server fails under load.
    while (inFlight >= fs.requestsInFlight(chunkBytes) && failure === null) await waitForSlot();
    if (failure !== null) break;
    const blockLength = Math.min(chunkBytes * readBlockChunks, job.size - next);
    const block = await local.read(blockLength, next);
    for (let offset = 0; offset < blockLength; offset += chunkBytes) {
      const length = Math.min(chunkBytes, blockLength - offset);
      const position = next + offset;
      // A block's writes go out together, a few over the number in flight (as measured for the
      // benchmark); once the engine has lowered that number for a server failing under load, they
      // wait for their turn (the block stays valid until the next one is read).
      const limit = fs.requestsInFlight(chunkBytes);
      if (limit < PIPELINE.requestsInFlight) {
        while (inFlight >= limit && failure === null) await waitForSlot();
        if (failure !== null) break;
      }
      if (hooks.throttle) await hooks.throttle.take(length);
      if (!fs.usable) {
        failure ??= new ConnectionLost(CHANNEL_CLOSED);
        break;
      }
      const item = tracker.issue(position + length);
      inFlight++;
      const written = (err?: Error | null) => {
        inFlight--;
        if (err && failure === null) {
          failure = err;
          failedAmong = inFlight + 1;
        }
        else {
          const delta = tracker.complete(item);
          if (delta > 0) {
            progress.confirmed = tracker.confirmed;
            hooks.onBytes(delta);
          }
        }
        signal();
      };
      if (!writeDirect(fs.sftp, handle, block, offset, length, position, written)) fs.sftp.write(handle, block, offset, length, position, written);
    }
    next += blockLength;
  }
  if (failure === null) afterLastWrite();
  while (inFlight > 0) await waitForSlot();
  if (failure !== null) throw asOverload(failure, await diskFullOrFailure(fs, failure, part, chunkBytes * PIPELINE.requestsInFlight), failedAmong, true);
}

// ---------------------------------------------------------------- download

/**
 * Local part files are opened so that nothing planted under their name is written into: a fresh
 * one is created exclusively (O_EXCL fails on an existing name, a symbolic link included, so a
 * `.x.ferry-part` link to ~/.bashrc or a hard link to another file is never written through; a
 * leftover is removed, the name itself, and created again), and one continued is opened with
 * O_NOFOLLOW after lstat found a regular file with no other names. The rename into place then
 * replaces whatever has the final name, a link included, never what a link points to. In the
 * usual case (no leftover) this costs no system call more than a plain open.
 */
const NOFOLLOW = fsConstants.O_NOFOLLOW ?? 0;
const CREATE_PART = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | NOFOLLOW;
const CONTINUE_PART = fsConstants.O_RDWR | NOFOLLOW;
const READ_PART = fsConstants.O_RDONLY | NOFOLLOW;

/** Something was there under the part file's name (reported when it is a file with data). */
function leftoverFound(part: string, onLeftover: (bytes: number) => void): void {
  const found = lstatSync(part, { throwIfNoEntry: false });
  if (found?.isFile() && found.size > 0) onLeftover(found.size);
}

function createPartSync(part: string, onLeftover: (bytes: number) => void): number {
  try {
    return openSync(part, CREATE_PART, 0o666);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  leftoverFound(part, onLeftover);
  unlinkSync(part);
  return openSync(part, CREATE_PART, 0o666);
}

async function createPart(part: string, onLeftover: (bytes: number) => void): Promise<FileHandle> {
  try {
    return await open(part, CREATE_PART, 0o666);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  leftoverFound(part, onLeftover);
  await unlink(part);
  return open(part, CREATE_PART, 0o666);
}

/** The size of a part file that may be continued, or -1: only a regular file with one name. */
async function continuablePartSize(part: string): Promise<number> {
  const existing = await lstat(part).catch(() => null);
  return existing?.isFile() && existing.nlink === 1 ? existing.size : -1;
}

/**
 * Read buffers the sinks are done with (PIPELINE.chunkBytes each), read into again by every
 * download: a large download allocates a few MiB, not its own size, and 2,000 small ones do not
 * allocate a buffer each, so the garbage collector stays out of the way. At most 256 are kept
 * (8 MiB): the reads in flight of four large files; more would only hold memory after a burst.
 */
const spareChunks: Buffer[] = [];
const MAX_SPARE_CHUNKS = 4 * PIPELINE.requestsInFlight;

function releaseChunks(chunks: Buffer[]): void {
  for (const chunk of chunks) if (spareChunks.length < MAX_SPARE_CHUNKS) spareChunks.push(chunk);
}

/**
 * Reads [start, size) of a remote file with many reads in flight and hands the bytes to `sink` in
 * order, as runs of consecutive chunks: everything that arrived while the sink was busy goes in
 * one call (one `writev` instead of dozens of writes: a local write per 32 KiB chunk made
 * downloads four times slower than the network). Resolves once the sink has taken everything.
 */
export async function pipelinedRead(
  fs: RemoteFs, handle: Buffer, path: string, start: number, size: number,
  sink: (run: Buffer[]) => Promise<void> | void,
  afterLastRead?: () => void,
  throttle?: Throttle,
): Promise<void> {
  const chunkBytes = fs.readChunkBytes(PIPELINE.chunkBytes);
  /** Read data by file position, waiting for its turn; `chunk` is the whole buffer it was read into. */
  const arrived = new Map<number, { chunk: Buffer; data: Buffer }>();
  let next = start;
  let delivered = start;
  let inFlight = 0;
  let failure: unknown = null;
  /** Requests in flight when the first failure came, itself included. */
  let failedAmong = 0;
  let sinking = false;
  let finish: (() => void) | null = null;
  const done = new Promise<void>((resolve) => (finish = resolve));

  const drain = async () => {
    if (sinking) return;
    sinking = true;
    try {
      while (failure === null) {
        const run: Buffer[] = [];
        const chunks: Buffer[] = [];
        for (let entry = arrived.get(delivered); entry !== undefined; entry = arrived.get(delivered)) {
          arrived.delete(delivered);
          delivered += entry.data.length;
          run.push(entry.data);
          chunks.push(entry.chunk);
        }
        if (run.length === 0) break;
        // Reads for the freed slots go out before the sink starts: the network and the disk overlap.
        pump();
        await sink(run);
        releaseChunks(chunks);
      }
    } catch (err) {
      failure ??= err;
    } finally {
      sinking = false;
    }
    pump();
  };

  const issue = (position: number, length: number) => {
    if (!fs.usable) {
      failure ??= new ConnectionLost(CHANNEL_CLOSED);
      return;
    }
    inFlight++;
    const chunk = spareChunks.pop() ?? Buffer.allocUnsafe(PIPELINE.chunkBytes);
    fs.sftp.read(handle, chunk, 0, length, position, (err, bytesRead) => {
      inFlight--;
      if (err && failure === null) {
        failure = err;
        failedAmong = inFlight + 1;
      }
      else if (bytesRead === 0) failure ??= pathError('PARTIAL', path, 'the file got shorter while it was being read');
      else {
        arrived.set(position, { chunk, data: chunk.subarray(0, bytesRead) });
        // A short read that is not the end: ask for the rest.
        if (bytesRead < length) issue(position + bytesRead, length - bytesRead);
      }
      void drain();
    });
  };

  // `--bwlimit`: a read the bucket has no room for waits; one timer pumps again when there is.
  let throttled: NodeJS.Timeout | null = null;
  const pump = () => {
    // Bounded by requests in flight plus what waits for the sink: memory stays flat.
    // Read each time: the engine lowers it when the server fails under load.
    while (failure === null && next < size && inFlight + arrived.size < fs.requestsInFlight(chunkBytes) && throttled === null) {
      const length = Math.min(chunkBytes, size - next);
      const wait = throttle ? throttle.tryTake(length) : 0;
      if (wait > 0) {
        throttled = setTimeout(() => {
          throttled = null;
          pump();
        }, wait);
        break;
      }
      issue(next, length);
      next += length;
      if (next >= size && failure === null && fs.inOrder) afterLastRead?.();
    }
    if (inFlight === 0 && !sinking && (failure !== null || delivered >= size)) finish?.();
  };

  pump();
  await done;
  // A server that may reorder requests is told only now, with every read answered.
  if (!fs.inOrder) afterLastRead?.();
  if (failure !== null) throw asOverload(failure, remoteError(failure, path), failedAmong, true);
}

async function writeRest(file: FileHandle, data: Buffer, position: number): Promise<void> {
  for (let done = 0; done < data.length;) {
    const { bytesWritten } = await file.write(data, done, data.length - done, position + done);
    if (bytesWritten === 0) throw Object.assign(new Error('the disk took no more data'), { code: 'EIO' });
    done += bytesWritten;
  }
}

/**
 * Writes a small downloaded file in one go, synchronously: part file, times, mode, rename. Five
 * thread-pool round trips per file cost more than the system calls themselves.
 */
function writeWholeFile(part: string, target: string, data: Buffer, mtime: number, mode: number | null, onLeftover: (bytes: number) => void): void {
  try {
    const fd = createPartSync(part, onLeftover);
    try {
      for (let written = 0; written < data.length;) written += writeSync(fd, data, written);
      futimesSync(fd, mtime, mtime);
      if (mode !== null) fchmodSync(fd, mode);
    } finally {
      closeSync(fd);
    }
    renameSync(part, target);
  } catch (err) {
    throw localError(err, target);
  }
}

export async function downloadFile(fs: RemoteFs, job: FileTransfer, mode: ResumeMode, preserve: boolean, progress: TransferProgress, hooks: TransferHooks): Promise<void> {
  const part = partNameFor(job.target, { dirname, basename, join });
  const remote = await fs.open(job.source, 'r');
  let remoteClosing: Promise<void> | null = null;
  const closeRemote = () => {
    remoteClosing ??= fs.close(remote, job.source).catch(() => undefined);
    return remoteClosing;
  };
  let local: FileHandle | null = null;
  try {
    let resumed: ResumeStart | null = null;
    if (mode !== 'fresh') {
      const partSize = await continuablePartSize(part);
      resumed = await resumeStart(mode, partSize, job.size, progress, async () => {
        const reader = await open(part, READ_PART);
        try {
          const block = Buffer.allocUnsafe(Math.min(PIPELINE.resumeBlockBytes, partSize));
          return await verifyPart(fs, { handle: remote, path: job.source, endsWithPart: false }, partSize, (len, pos) => readExactly(reader, block.subarray(0, len), pos, part), hooks.throttle);
        } finally {
          await reader.close();
        }
      });
    }
    const start = resumed?.from ?? 0;
    hooks.onBytes(start - progress.confirmed);
    progress.confirmed = start;
    progress.startedAt = start;
    hooks.onStart(start, resumed ?? undefined);
    const onLeftover = mode === 'fresh' ? hooks.onLeftover : () => undefined;
    if (start === 0 && job.size <= PIPELINE.wholeReadBytes) {
      const runs: Buffer[] = [];
      await pipelinedRead(fs, remote, job.source, 0, job.size, (run) => void runs.push(Buffer.concat(run)), () => void closeRemote(), hooks.throttle);
      writeWholeFile(part, job.target, runs.length === 1 ? runs[0]! : Buffer.concat(runs), job.mtime, preserve ? job.mode : null, onLeftover);
      progress.confirmed = job.size;
      hooks.onBytes(job.size);
      return;
    }
    try {
      local = start > 0 ? await open(part, CONTINUE_PART) : await createPart(part, onLeftover);
      if (start > 0) await local.truncate(start);
    } catch (err) {
      throw localError(err, part);
    }
    const file = local;
    let position = start;
    await pipelinedRead(fs, remote, job.source, start, job.size, async (run) => {
      const length = run.reduce((sum, data) => sum + data.length, 0);
      try {
        const { bytesWritten } = await file.writev(run, position);
        // A short write (rare: a signal, a nearly full disk) leaves the rest to write, not to skip.
        if (bytesWritten < length) await writeRest(file, Buffer.concat(run).subarray(bytesWritten), position + bytesWritten);
      } catch (err) {
        throw localError(err, job.target);
      }
      position += length;
      progress.confirmed = position;
      hooks.onBytes(length);
    }, () => void closeRemote(), hooks.throttle); // right behind the last read: no round trip of its own
    try {
      await local.utimes(job.mtime, job.mtime);
      if (preserve) await local.chmod(job.mode);
      local = null;
      await file.close();
      await rename(part, job.target);
    } catch (err) {
      throw localError(err, job.target);
    }
  } finally {
    await closeRemote();
    if (local) await local.close().catch(() => undefined);
  }
}

// ---------------------------------------------------------------- content digests (sync --checksum)

export async function localDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 256 * 1024 })) hash.update(chunk as Buffer);
  } catch (err) {
    throw localError(err, path);
  }
  return hash.digest('hex');
}

export async function remoteDigest(fs: RemoteFs, path: string, size: number, throttle?: Throttle): Promise<string> {
  const hash = createHash('sha256');
  const handle = await fs.open(path, 'r');
  try {
    await pipelinedRead(fs, handle, path, 0, size, (run) => {
      for (const data of run) hash.update(data);
    }, undefined, throttle);
  } finally {
    await fs.close(handle, path).catch(() => undefined);
  }
  return hash.digest('hex');
}
