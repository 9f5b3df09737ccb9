import { dirname, basename, join, posix } from 'node:path';
import { carriesOutInOrder } from './file-sides.js';
import type { SFTPWrapper } from 'ssh2';
import type { TransferEngine } from './engine.js';
import { formatBytes } from './progress.js';
import { partNameFor } from './sftp-ops.js';
import type { SyncAction } from './sync-plan.js';

/**
 * `-v` and `-vv`: what ferry is doing, on stderr, as `ferry: debug1: …` lines (ssh's words, so
 * that an ssh user reads them at once). `-v` tells the connection: where to, through which jump
 * hosts, the host key and the known_hosts line it matched, the login methods the server accepts
 * and each one tried, the SFTP extensions and limits the server announced, the concurrency
 * chosen. `-vv` adds each file's decisions (part file, resume, skip, retry).
 *
 * Nothing secret is ever traced: no password, passphrase or key material, only key files and
 * their public fingerprints. What the server sent (its software version, extension names, a
 * login banner) is its text: the lines go out through the context's notice, which escapes them.
 */
export type Trace = (level: 1 | 2, message: string) => void;

/** No tracing (a plain run). */
export const noTrace: Trace = () => undefined;

/** Lines at or below `verbosity` (the number of `-v`s) go to `notice`. */
export function traceTo(notice: (message: string) => void, verbosity: number | undefined): Trace {
  if (!verbosity || verbosity <= 0) return noTrace;
  return (level, message) => {
    if (level <= verbosity) notice(`debug${level}: ${message}`);
  };
}

/** What ssh2 keeps of the server's SFTP start (VERSION and the `limits@openssh.com` answer). */
interface Ssh2SftpStart {
  _version?: number;
  _extensions?: Record<string, string>;
  _maxReadLen?: number;
  _maxWriteLen?: number;
  maxOpenHandles?: number;
  _isOpenSSH?: boolean;
}

/** The extensions ferry uses, and what it does where a server lacks one. */
const USED_EXTENSIONS: [name: string, without: string][] = [
  ['posix-rename@openssh.com', 'a file is replaced by renaming the old one aside first'],
  ['statvfs@openssh.com', 'free space is not checked before an upload'],
  ['limits@openssh.com', 'reads and writes are sized for any server (about 32 KiB)'],
  ['check-file', '--resume verifies a part file by reading it back (unless the server answers check-file unannounced)'],
];

/** `-v`: the SFTP side of a new connection, as the server announced it. */
export function traceSftpStart(trace: Trace, sftp: SFTPWrapper, label: string): void {
  const start = sftp as unknown as Ssh2SftpStart;
  const extensions = start._extensions ?? {};
  const names = Object.keys(extensions);
  trace(1, `${label}: SFTP version ${start._version ?? '?'}; extensions: ${names.length > 0 ? names.map((n) => describeExtension(n, extensions[n]!)).join(', ') : 'none'}`);
  for (const [name, without] of USED_EXTENSIONS) {
    const offered = name === 'check-file' ? names.some((n) => n.startsWith('check-file')) : name in extensions;
    if (!offered) trace(1, `${label}: no ${name}: ${without}`);
  }
  if (extensions['limits@openssh.com'] !== undefined) {
    const handles = start.maxOpenHandles;
    trace(1, `${label}: limits: reads up to ${start._maxReadLen ?? '?'} bytes, writes up to ${start._maxWriteLen ?? '?'} bytes, ${handles === undefined || handles === Infinity ? 'open files not limited' : `at most ${handles} open files`}`);
  }
  // What RemoteFs.inOrder decides.
  trace(1, `${label}: ${carriesOutInOrder(sftp) ? "OpenSSH's sftp-server: a close goes right behind the last write or read (its requests are carried out in order)" : "not OpenSSH's sftp-server: a close waits until every write and read is answered (requests may be carried out out of order)"}`);
}

/**
 * `name=data` where the data is a short plain version (`posix-rename@openssh.com=1`); the name
 * alone otherwise; `vendor-id` (draft-ietf-secsh-filexfer-extensions) read as the product it names.
 */
function describeExtension(name: string, data: string): string {
  if (name === 'vendor-id') {
    const fields = sshStrings(Buffer.from(data, 'latin1'), 3);
    if (fields) return `vendor-id (${fields[1]} ${fields[2]}, by ${fields[0]})`;
  }
  return /^[\x21-\x7e]{1,32}$/.test(data) ? `${name}=${data}` : name;
}

/** The first `count` SSH strings (uint32 length, bytes) of `data`, or null when it holds fewer. */
function sshStrings(data: Buffer, count: number): string[] | null {
  const out: string[] = [];
  let at = 0;
  while (out.length < count) {
    if (at + 4 > data.length) return null;
    const length = data.readUInt32BE(at);
    if (at + 4 + length > data.length) return null;
    out.push(data.subarray(at + 4, at + 4 + length).toString('utf8'));
    at += 4 + length;
  }
  return out;
}

/**
 * `-v`: how many files move at once, and why. A server that tells its open-file limit holds each
 * connection to that many (the engine applies it); `--parallel` and `--connections` say the rest.
 */
function traceConcurrency(trace: Trace, info: RunInfo): void {
  const handles = (info.sftp as unknown as Ssh2SftpStart | undefined)?.maxOpenHandles;
  const limited = typeof handles === 'number' && Number.isFinite(handles) && handles * info.connections < info.parallel;
  const parallel = limited ? handles * info.connections : info.parallel;
  trace(1, `${info.files} file${info.files === 1 ? '' : 's'} (${formatBytes(info.bytes)}): up to ${parallel} at once over ${info.connections} connection${info.connections === 1 ? '' : 's'}${limited ? ` (the server allows ${handles} open files per connection; --parallel ${info.parallel})` : ''}`);
}

export interface RunInfo {
  files: number;
  bytes: number;
  parallel: number;
  connections: number;
  /** The first connection's channel: its announced limits. */
  sftp?: SFTPWrapper;
}

/** `-v`: the concurrency of a run; `-vv`: each file's part file, resume, retry and end. */
export function traceRun(trace: Trace, engine: TransferEngine, info: RunInfo): void {
  if (trace === noTrace) return;
  traceConcurrency(trace, info);
  engine.on('fewer', ({ parallel, reason }) => trace(1, `the server refused an open (${reason}): ${parallel} at once from now on`));
  engine.on('start', (job) => {
    const part = job.direction === 'upload' ? partNameFor(job.target, posix) : partNameFor(job.target, { dirname, basename, join });
    trace(2, `${job.display}: ${job.direction} of ${formatBytes(job.size)} into the part file ${part}, renamed to ${job.target} when whole`);
  });
  engine.on('resumed', (job, resume) => {
    const how = resume.verified === 'this-run' ? 'as this run left it' : resume.verified === 'size' ? 'trusted by its size (--resume=size)' : `verified by SHA-256 (${resume.via === 'check-file' ? 'the server hashed its side: check-file' : 'read back'})`;
    trace(2, `${job.display}: part file of ${formatBytes(resume.partBytes)} ${how}: ${resume.matched ? 'kept whole' : 'differs'}, continuing from byte ${resume.from}`);
  });
  engine.on('leftover', (job, bytes) => trace(2, `${job.display}: a part file of ${formatBytes(bytes)} from an earlier run is replaced (no --resume)`));
  engine.on('retry', (job, { attempt, delayMs, resumeFrom, reason }) => trace(2, `${job.display}: retry ${attempt} in ${delayMs} ms, from byte ${resumeFrom} (${reason})`));
  engine.on('done', (job) => trace(2, `${job.display}: done`));
  engine.on('failed', (job, error) => trace(2, `${job.display}: failed (${error.exit}): ${error.message}`));
}

/** `-v`: what sync decided, in numbers; `-vv`: each file, skipped ones too. */
export function traceSyncPlan(trace: Trace, actions: SyncAction[], sameSizeAndTime: string[], sameContent: string[]): void {
  if (trace === noTrace) return;
  const count = (kind: SyncAction['action']) => actions.filter((a) => a.action === kind).length;
  trace(1, `sync: ${count('copy')} to copy, ${count('mkdir')} folders to make, ${count('delete')} to delete, ${sameSizeAndTime.length + sameContent.length} unchanged`);
  for (const relative of sameSizeAndTime) trace(2, `${relative}: skipped, same size and time`);
  for (const relative of sameContent) trace(2, `${relative}: skipped, same content (--checksum)`);
  for (const action of actions) {
    if (action.action === 'copy') trace(2, `${action.relative}: copy, ${action.reason === 'new' ? 'not in the destination' : `${action.reason} differs`}`);
    else if (action.action === 'delete') trace(2, `${action.relative}: delete (--delete: not in the source)`);
    else if (action.action === 'conflict') trace(2, `${action.relative}: skipped, ${action.reason}`);
  }
}
