import { posix } from 'node:path';
import type { AgentContext } from '../context.js';
import { AgentError } from '../errors.js';
import type { UsageKind } from '../../licensing/index.js';
import { requireLicense } from '../license.js';
import { humanSize } from '../format.js';
import { jsonLine, printable } from '../terminal-text.js';
import { TokenBucket, type Throttle } from '../transfer/bwlimit.js';
import { ConnectionPool, Connector, resolveEndpoint, type ConnectOptions } from '../transfer/connect.js';
import { expandGlob, isPartFile, keepOf, listAhead, planCopy, resolveSources, type Source } from '../transfer/copy-plan.js';
import { TransferEngine, type EngineSummary, type Job } from '../transfer/engine.js';
import { asAgentError } from '../transfer/errors.js';
import type { PathFilter } from '../transfer/filters.js';
import { localSide, RemoteFs, remoteSide, walk, type Entry, type FileSide, type LinkMode, type WalkKeep } from '../transfer/file-sides.js';
import { joinBelow, refusedNameError } from '../transfer/names.js';
import { formatBytes, summaryLine, watchTransfer, type ProgressMode } from '../transfer/progress.js';
import { RunReport } from '../transfer/run-report.js';
import { connectOptions, loadTransferConfig, type TransferConfig, type TransferFlags } from '../transfer/settings.js';
import { localDigest, remoteDigest } from '../transfer/sftp-ops.js';
import { downloadToStream, STDIO_ARG, uploadFromStream } from '../transfer/stdio.js';
import { planSync, type ListedEntry, type SyncAction } from '../transfer/sync-plan.js';
import { traceRun, traceSyncPlan, traceTo, type Trace } from '../transfer/verbose.js';
import { chooseCompilerTiers, compilerTiersNote } from '../runtime.js';
import { describeLocation, parseLocation, sameServer, type Location, type RemoteLocation } from '../transfer/url.js';

/**
 * put, get, ls, mkdir, rm, mv and sync: each parses its arguments, checks the license, opens the
 * connections and hands the files to the transfer engine, then turns the outcome into output and
 * an exit code. The work itself is in agent/transfer/.
 */

export interface SyncFlags extends TransferFlags {
  delete?: boolean;
  checksum?: boolean;
  dryRun?: boolean;
}

export interface ListFlags extends TransferFlags {
  long?: boolean;
  /** `-h`: sizes as 1.5K, 12M under `-l` (as GNU ls, nothing changes without -l). */
  humanReadable?: boolean;
}

export interface MkdirFlags extends TransferFlags {
  parents?: boolean;
}

interface Remote {
  pool: ConnectionPool;
  fs: RemoteFs;
  side: FileSide & { fs: RemoteFs };
  label: string;
}

function progressMode(ctx: AgentContext, flags: TransferFlags): ProgressMode {
  if (flags.json) return 'json';
  if (flags.quiet) return 'quiet';
  if (ctx.terminal?.output.isTTY) return 'bars';
  return flags.progress ? 'lines' : 'quiet';
}

async function openRemote(
  ctx: AgentContext, flags: TransferFlags, config: TransferConfig, location: RemoteLocation, connections: number, gate?: ConnectOptions['gate'],
): Promise<Remote> {
  const options = connectOptions(ctx, flags, config);
  if (gate) options.gate = gate;
  const endpoint = await resolveEndpoint(location.target, options);
  const connector = new Connector(endpoint, options);
  const first = await connector.connect();
  const pool = new ConnectionPool(connector, connections, first);
  const fs = new RemoteFs(first.sftp, first.posixRename);
  return { pool, fs, side: remoteSide(fs), label: endpoint.label };
}

/** A connection being made while the license is checked: `drop` ends it (the command failed first). */
interface Opening {
  remote: Promise<Remote>;
  drop(): void;
}

/**
 * Checks the license and makes the connection at once. The connection's TCP and key exchange go
 * ahead during the check, which would otherwise keep ferry from the server for its length; the
 * host key is judged, and any prompt or credential comes, only once the license is in force
 * (ConnectOptions.gate). Without a license the connection is ended and the license's error is the
 * command's, whatever the connection did meanwhile.
 */
async function licensedOpening(
  ctx: AgentContext, usage: UsageKind, flags: TransferFlags, config: TransferConfig, location: RemoteLocation, connections: number,
): Promise<Opening> {
  const license = requireLicense(ctx, usage);
  const stop = new AbortController();
  const passed = license.then(() => undefined);
  passed.catch(() => undefined);
  const remote = openRemote(ctx, flags, config, location, connections, { passed, signal: stop.signal });
  // Its failure is taken when awaited; a dropped one is not awaited at all.
  remote.catch(() => undefined);
  const drop = () => {
    stop.abort();
    remote.then((opened) => opened.pool.end(), () => undefined);
  };
  try {
    await license;
  } catch (err) {
    drop();
    throw err;
  }
  return { remote, drop };
}

/** The connection, once the license is in force (licensedOpening). */
async function licensedRemote(
  ctx: AgentContext, usage: UsageKind, flags: TransferFlags, config: TransferConfig, location: RemoteLocation, connections: number,
): Promise<Remote> {
  return (await licensedOpening(ctx, usage, flags, config, location, connections)).remote;
}

function parseAll(args: string[], config: TransferConfig): Location[] {
  return args.map((arg) => parseLocation(arg, config.sites));
}

function remoteOnly(locations: Location[], what: string): RemoteLocation[] {
  const remote = locations.filter((l): l is RemoteLocation => l.kind === 'remote');
  if (remote.length !== locations.length) throw new AgentError('USAGE', `${what} takes sftp:// URLs or site:path, not local paths`);
  for (const l of remote) {
    if (!sameServer(l.target, remote[0]!.target)) throw new AgentError('USAGE', `${what}: all paths must be on the same server`);
  }
  return remote;
}

/**
 * OK, or the error that says what failed: the failure's own code when all failed alike, else
 * PARTIAL. Sources found missing before the engine ran (report.errors) count as failures.
 */
function outcome(ctx: AgentContext, summary: EngineSummary, flags: TransferFlags, report: RunReport): void {
  const failures = [...report.errors, ...summary.failures.map((f) => f.error)];
  if (failures.length === 0) return;
  report.accounted = true;
  if (failures.length === 1 && summary.files === 0) throw failures[0]!;
  if (!flags.json) for (const { error } of summary.failures) ctx.notice(error.message);
  const exits = new Set(failures.map((error) => error.exit));
  const exit = summary.files === 0 && exits.size === 1 ? failures[0]!.exit : 'PARTIAL';
  throw new AgentError(exit, `${failures.length} of ${summary.files + failures.length} files failed`);
}

/**
 * Runs a put, get or sync so that `--json` output stays whole whatever goes wrong: every failure
 * has its `failed` event (the sources `names`, when the run failed as a whole) and a `summary`
 * comes last.
 */
async function reporting(ctx: AgentContext, flags: TransferFlags, names: string[], work: (report: RunReport) => Promise<void>): Promise<void> {
  const report = new RunReport(ctx.out, flags.json === true);
  try {
    await work(report);
  } catch (err) {
    const error = asAgentError(err);
    report.failedWhole(names, error);
    report.finish();
    throw error;
  }
  report.finish();
}

/** With several sources, a missing one is said and counted, and the others still go. */
function missingSources(ctx: AgentContext, flags: TransferFlags, report: RunReport, named: number): ((error: AgentError, path: string) => void) | undefined {
  if (named < 2) return undefined;
  return (error, path) => {
    report.failed(path, error);
    if (!flags.json) ctx.notice(error.message);
  };
}

/** Nothing to copy because every source named is missing (each has had its event). */
function noSourceLeft(report: RunReport, named: number): AgentError {
  report.accounted = true;
  return report.errors.length === 1 ? report.errors[0]! : new AgentError('NOT_FOUND', `none of the ${named} sources exist`);
}

/** The run's bucket for data going `way` (`--bwlimit`, or its UP or DOWN). */
function throttleOf(config: TransferConfig, way: 'up' | 'down'): Throttle | undefined {
  const rate = config.bwlimit[way];
  return rate === null ? undefined : new TokenBucket(rate);
}

async function runJobs(
  ctx: AgentContext, remote: Remote, jobs: Job[], flags: TransferFlags, config: TransferConfig, verb: string, report: RunReport, throttle: Throttle | undefined,
): Promise<EngineSummary> {
  const engine = new TransferEngine(remote.pool, {
    parallel: config.parallel,
    retries: config.retries,
    resume: config.resume,
    preserve: flags.preserve === true,
    throttle,
  });
  const trace = traceTo(ctx.notice, flags.verbose);
  filesStartMoving(trace);
  traceRun(trace, engine, { files: jobs.length, bytes: jobs.reduce((sum, j) => sum + j.size, 0), parallel: config.parallel, connections: remote.pool.size, sftp: remote.fs.sftp });
  const mode = progressMode(ctx, flags);
  const watcher = watchTransfer(engine, { files: jobs.length, bytes: jobs.reduce((sum, j) => sum + j.size, 0), verb }, {
    mode,
    out: ctx.out,
    notice: ctx.notice,
    notices: flags.quiet !== true && flags.json !== true,
    ...(ctx.terminal ? { terminal: ctx.terminal.output } : {}),
  });
  // Ctrl-C ends the run cleanly: no file starts, the connections close (which ends the transfers
  // under way, their part files left), and one line says how to continue. A second Ctrl-C is the
  // default one again: it ends ferry at once.
  let interrupted = false;
  const interrupt = () => {
    interrupted = true;
    engine.interrupt();
    remote.pool.end();
  };
  process.once('SIGINT', interrupt);
  let summary: EngineSummary;
  try {
    summary = await engine.run(jobs);
  } finally {
    process.off('SIGINT', interrupt);
  }
  watcher.finish(summary);
  report.engine(summary);
  if (interrupted) {
    report.accounted = true;
    const parts = summary.failures.filter((f) => f.error.exit === 'INTERRUPTED').length;
    throw new AgentError('INTERRUPTED', `interrupted; run the same command with --resume to continue ${parts} part file${parts === 1 ? '' : 's'}`);
  }
  return summary;
}

/** The files start moving: V8's compiler tiers for the rest of the run (runtime.ts), said under -vv. */
function filesStartMoving(trace: Trace): void {
  chooseCompilerTiers();
  trace(2, compilerTiersNote());
}

/** Runs `work` with the remote open, and always closes it. */
async function withRemote<T>(remote: Remote, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw asAgentError(err);
  } finally {
    remote.pool.end();
  }
}

function connectionsFor(config: TransferConfig, jobsHint: 'many' | 'one'): number {
  return jobsHint === 'one' ? 1 : Math.min(config.connections, config.parallel);
}

// ---------------------------------------------------------------- put, get

export async function put(ctx: AgentContext, args: string[], flags: TransferFlags): Promise<void> {
  await reporting(ctx, flags, args.length > 1 ? args.slice(0, -1) : args, async (report) => {
    if (args.length < 2) throw new AgentError('USAGE', 'put needs LOCAL... and a destination sftp://user@host/path');
    const config = await loadTransferConfig(ctx, flags);
    const locations = parseAll(args, config);
    const dest = locations.pop()!;
    if (dest.kind !== 'remote') throw new AgentError('USAGE', `put: the destination ${dest.path} must be remote (sftp://user@host/path or site:path)`);
    if (locations.some((l) => l.kind !== 'local')) throw new AgentError('USAGE', 'put: the sources must be local paths (use get to download)');
    if (args.slice(0, -1).includes(STDIO_ARG)) return putStdin(ctx, args, flags, config, dest, report);
    const opening = await licensedOpening(ctx, 'put', flags, config, dest, connectionsFor(config, 'many'));
    let sources: Source[];
    try {
      sources = await resolveSources(localSide, locations, flags.recursive === true, missingSources(ctx, flags, report, locations.length));
      if (sources.length === 0) throw noSourceLeft(report, locations.length);
    } catch (err) {
      opening.drop();
      throw err;
    }
    // Several sources named go into a folder, also when some of them turned out missing.
    const target = { ...dest, trailingSlash: dest.trailingSlash || locations.length > 1 };
    // The local trees are listed while the connection is made (copy-plan.ts, listAhead); a folder
    // that cannot be read fails the run as before, once connected.
    const listing = listAhead(sources, config.filter);
    listing.catch(() => undefined);
    const remote = await opening.remote;
    await withRemote(remote, async () => {
      const jobs = await planCopy(await listing, sources, remote.side, target, 'upload', config.filter);
      outcome(ctx, await runJobs(ctx, remote, jobs, flags, config, 'put', report, throttleOf(config, 'up')), flags, report);
    });
  });
}

export async function get(ctx: AgentContext, args: string[], flags: TransferFlags): Promise<void> {
  await reporting(ctx, flags, args.length > 1 ? args.slice(0, -1) : args, async (report) => {
    if (args.length < 2) throw new AgentError('USAGE', 'get needs sftp://user@host/path... and a local destination');
    const config = await loadTransferConfig(ctx, flags);
    const locations = parseAll(args, config);
    const dest = locations.pop()!;
    if (dest.kind !== 'local') throw new AgentError('USAGE', 'get: the destination must be a local path (use put to upload)');
    const sources = remoteOnly(locations, 'get');
    if (args.at(-1) === STDIO_ARG) return getStdout(ctx, flags, config, sources, report);
    const target = { ...dest, trailingSlash: dest.trailingSlash || sources.length > 1 };
    const remote = await licensedRemote(ctx, 'get', flags, config, sources[0]!, connectionsFor(config, 'many'));
    await withRemote(remote, async () => {
      const resolved = await resolveSources(remote.side, sources, flags.recursive === true, missingSources(ctx, flags, report, sources.length));
      if (resolved.length === 0) throw noSourceLeft(report, sources.length);
      const jobs = await planCopy(remote.side, resolved, localSide, target, 'download', config.filter);
      outcome(ctx, await runJobs(ctx, remote, jobs, flags, config, 'get', report, throttleOf(config, 'down')), flags, report);
    });
  });
}

/** `ferry put - DEST`: standard input into one remote file. */
async function putStdin(ctx: AgentContext, args: string[], flags: TransferFlags, config: TransferConfig, dest: RemoteLocation, report: RunReport): Promise<void> {
  if (args.length !== 2 || flags.recursive) throw new AgentError('USAGE', 'put -: standard input is one file: give - as the only source, without -r');
  if (!ctx.data) throw new AgentError('USAGE', 'put -: there is no standard input here');
  const input = ctx.data.input;
  const remote = await licensedRemote(ctx, 'put', flags, config, dest, 1);
  await withRemote(remote, async () => {
    const existing = await remote.side.stat(dest.path);
    if (dest.trailingSlash || existing?.type === 'dir') {
      throw new AgentError('USAGE', `put -: standard input has no name: give the remote file's name (${describeLocation(dest)}/NAME)`);
    }
    // Ctrl-C ends the upload and removes its part file (uploadFromStream); a second one ends ferry at once.
    const stop = new AbortController();
    const interrupt = () => stop.abort();
    process.once('SIGINT', interrupt);
    filesStartMoving(traceTo(ctx.notice, flags.verbose));
    try {
      report.moved(await uploadFromStream(remote.fs, dest.path, input, throttleOf(config, 'up'), stop.signal));
    } finally {
      process.off('SIGINT', interrupt);
    }
  });
}

/** `ferry get SOURCE -`: one remote file to standard output, and nothing else there. */
async function getStdout(ctx: AgentContext, flags: TransferFlags, config: TransferConfig, sources: RemoteLocation[], report: RunReport): Promise<void> {
  if (sources.length !== 1 || flags.recursive) throw new AgentError('USAGE', 'get SOURCE -: standard output takes one file: name one remote file, without -r');
  if (flags.json) throw new AgentError('USAGE', 'get SOURCE -: --json cannot share standard output with the file');
  if (!ctx.data) throw new AgentError('USAGE', 'get SOURCE -: there is no standard output here');
  const output = ctx.data.output;
  const remote = await licensedRemote(ctx, 'get', flags, config, sources[0]!, 1);
  await withRemote(remote, async () => {
    const paths = await expandGlob(remote.side, sources[0]!.path);
    if (paths.length !== 1) throw new AgentError('USAGE', `get SOURCE -: ${sources[0]!.path} matches ${paths.length} files; standard output takes one`);
    const entry = await remote.side.stat(paths[0]!);
    if (!entry) throw new AgentError('NOT_FOUND', `${paths[0]}: no such file or folder`);
    if (entry.type !== 'file') throw new AgentError('USAGE', `get SOURCE -: ${paths[0]} is not a file; standard output takes one file`);
    filesStartMoving(traceTo(ctx.notice, flags.verbose));
    report.moved(await downloadToStream(remote.fs, entry.path, entry.size, output, throttleOf(config, 'down')));
  });
}

// ---------------------------------------------------------------- ls, mkdir, rm, mv

function modeString(entry: Entry): string {
  const kind = entry.type === 'dir' ? 'd' : entry.type === 'link' ? 'l' : entry.type === 'file' ? '-' : '?';
  const bits = 'rwxrwxrwx'.split('').map((c, i) => (entry.mode & (1 << (8 - i)) ? c : '-')).join('');
  return kind + bits;
}

function entryTime(entry: Entry): string {
  return new Date(entry.mtime * 1000).toISOString().slice(0, 16).replace('T', ' ');
}

/** Names where the server's listing gave them (JSON keeps them exact), numbers where it sent them; null otherwise. */
function ownerFields(entry: Entry): { owner: string | null; group: string | null; uid: number | null; gid: number | null } {
  return { owner: entry.owner ?? null, group: entry.group ?? null, uid: entry.uid ?? null, gid: entry.gid ?? null };
}

/** Owner and group as `ls -l` shows them: the names, else the numbers, else `?`. */
function ownerColumns(entry: Entry): string {
  const column = (name: string | undefined, id: number | undefined) => (name !== undefined ? printable(name) : id !== undefined ? String(id) : '?').padEnd(8);
  return `${column(entry.owner, entry.uid)} ${column(entry.group, entry.gid)}`;
}

function sizeColumn(size: number, human: boolean): string {
  return human ? humanSize(size).padStart(5) : String(size).padStart(12);
}

export async function ls(ctx: AgentContext, args: string[], flags: ListFlags): Promise<void> {
  const config = await loadTransferConfig(ctx, flags);
  if (args.length === 0) throw new AgentError('USAGE', 'ls needs sftp://user@host/path');
  const locations = remoteOnly(parseAll(args, config), 'ls');
  const remote = await licensedRemote(ctx, 'ls', flags, config, locations[0]!, 1);
  await withRemote(remote, async () => {
    // Names are the server's: JSON keeps them exact, a listing for people shows them printable.
    let refused = 0;
    const print = (entry: Entry, name: string) => {
      if (entry.refused) {
        refused++;
        ctx.notice(refusedNameError(entry.path, entry.refused).message);
        return;
      }
      if (flags.json) ctx.out(jsonLine({ name, path: entry.path, type: entry.type, size: entry.size, mtime: new Date(entry.mtime * 1000).toISOString(), mode: `0${entry.mode.toString(8)}`, ...ownerFields(entry) }));
      else if (flags.long) ctx.out(`${modeString(entry)} ${ownerColumns(entry)} ${sizeColumn(entry.size, flags.humanReadable === true)} ${entryTime(entry)} ${printable(name)}${entry.type === 'dir' ? '/' : ''}`);
      else ctx.out(`${printable(name)}${entry.type === 'dir' ? '/' : ''}`);
    };
    for (const location of locations) {
      for (const path of await expandGlob(remote.side, location.path)) {
        const entry = await remote.side.stat(path);
        if (!entry) throw new AgentError('NOT_FOUND', `${path}: no such file or folder`);
        if (entry.type !== 'dir') {
          print(entry, path);
          continue;
        }
        if (flags.recursive) {
          for await (const child of walk(remote.side, path)) print(child, child.relative);
        } else {
          for (const child of await remote.side.list(path)) print(child, remote.side.basename(child.path));
        }
      }
    }
    if (refused > 0) throw new AgentError('PARTIAL', `ls: the server listed ${refused} name${refused === 1 ? '' : 's'} that ${refused === 1 ? 'is' : 'are'} not plain file names (refused, not shown)`);
  });
}

export async function mkdir(ctx: AgentContext, args: string[], flags: MkdirFlags): Promise<void> {
  const config = await loadTransferConfig(ctx, flags);
  if (args.length === 0) throw new AgentError('USAGE', 'mkdir needs sftp://user@host/path');
  const locations = remoteOnly(parseAll(args, config), 'mkdir');
  const remote = await licensedRemote(ctx, 'mkdir', flags, config, locations[0]!, 1);
  await withRemote(remote, async () => {
    for (const { path } of locations) {
      const existing = await remote.side.stat(path);
      if (existing) {
        if (flags.parents && existing.type === 'dir') continue;
        throw new AgentError('USAGE', `${path} already exists${existing.type === 'dir' ? ' (with -p an existing folder is fine)' : ''}`);
      }
      if (flags.parents) await remote.side.mkdir(path);
      else await remote.fs.mkdir(path);
      if (flags.json) ctx.out(jsonLine({ event: 'mkdir', path }));
    }
  });
}

export async function rm(ctx: AgentContext, args: string[], flags: TransferFlags): Promise<void> {
  const config = await loadTransferConfig(ctx, flags);
  if (args.length === 0) throw new AgentError('USAGE', 'rm needs sftp://user@host/path');
  const locations = remoteOnly(parseAll(args, config), 'rm');
  const remote = await licensedRemote(ctx, 'rm', flags, config, locations[0]!, 1);
  await withRemote(remote, async () => {
    for (const location of locations) {
      for (const path of await expandGlob(remote.side, location.path)) {
        const entry = await remote.fs.lstat(path).then((attrs) => ({ path, attrs }));
        const isDir = (entry.attrs.mode & 0o170000) === 0o040000;
        if (isDir && !flags.recursive) throw new AgentError('USAGE', `${path} is a folder: use -r to remove it and everything in it`);
        if (posix.normalize(path) === '/' ) throw new AgentError('USAGE', 'refusing to remove /');
        await remote.side.remove({ path, type: isDir ? 'dir' : 'file', size: 0, mtime: 0, mode: 0 });
        if (flags.json) ctx.out(jsonLine({ event: 'removed', path }));
      }
    }
  });
}

export async function mv(ctx: AgentContext, args: string[], flags: TransferFlags): Promise<void> {
  const config = await loadTransferConfig(ctx, flags);
  if (args.length < 2) throw new AgentError('USAGE', 'mv needs SOURCE... and DESTINATION on one server');
  const locations = parseAll(args, config);
  const destLocation = locations.pop()!;
  const sources = remoteOnly(locations, 'mv');
  // A bare path as destination means a path on the same server.
  const dest = destLocation.kind === 'remote' ? destLocation : { ...sources[0]!, path: destLocation.path, trailingSlash: destLocation.trailingSlash };
  if (!sameServer(dest.target, sources[0]!.target)) throw new AgentError('USAGE', 'mv moves within one server: use get and put between servers');
  const remote = await licensedRemote(ctx, 'mv', flags, config, sources[0]!, 1);
  await withRemote(remote, async () => {
    const paths: string[] = [];
    for (const source of sources) paths.push(...(await expandGlob(remote.side, source.path)));
    const destEntry = await remote.side.stat(dest.path);
    const intoFolder = destEntry?.type === 'dir' || dest.trailingSlash || paths.length > 1;
    if (intoFolder && destEntry && destEntry.type !== 'dir') throw new AgentError('USAGE', `${dest.path} is not a folder`);
    if (intoFolder && !destEntry) throw new AgentError('NOT_FOUND', `${dest.path}: no such folder`);
    for (const path of paths) {
      if (!(await remote.side.stat(path))) throw new AgentError('NOT_FOUND', `${path}: no such file or folder`);
      const target = intoFolder ? posix.join(dest.path, posix.basename(path)) : dest.path;
      await remote.fs.replace(path, target);
      if (flags.json) ctx.out(jsonLine({ event: 'moved', from: path, to: target }));
    }
  });
}

// ---------------------------------------------------------------- sync

/**
 * A folder's tree for sync; names the server should not have listed go to `refusals` instead.
 * What the filter leaves out is not listed; the folders holding it go to `holding` (sync --delete
 * must never take them away whole), given for the destination only.
 */
async function listTree(
  side: FileSide, root: string, links: LinkMode, refusals: { file: string; error: AgentError }[], filter: PathFilter | null, holding?: Set<string>,
): Promise<ListedEntry[]> {
  const entries: ListedEntry[] = [];
  // The source's folders entered only to look for included files are listed only with something
  // in them (keepOf); the destination's are all listed, as sync --delete must see them.
  const keep: WalkKeep | undefined = !filter ? undefined : !holding ? keepOf(filter) : (entry) => {
    if (filter.admits(entry.relative, entry.type === 'dir')) return true;
    for (let i = entry.relative.lastIndexOf('/'); i > 0; i = entry.relative.lastIndexOf('/', i - 1)) holding.add(entry.relative.slice(0, i));
    return false;
  };
  for await (const entry of walk(side, root, links, keep)) {
    if (entry.refused) {
      refusals.push({ file: entry.relative === '' ? entry.refused.name : `${entry.relative}/${entry.refused.name}`, error: refusedNameError(entry.path, entry.refused) });
      continue;
    }
    if (isPartFile(side.basename(entry.path))) continue;
    entries.push({ relative: entry.relative, type: entry.type, size: entry.size, mtime: entry.mtime });
  }
  return entries;
}

/** Runs `work` on each item with at most `limit` at once. */
async function eachLimited<T>(items: T[], limit: number, work: (item: T, slot: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async (_, slot) => {
    while (next < items.length) await work(items[next++]!, slot);
  }));
}

/** A line of the dry-run plan; the names come from both sides' listings. */
function describeAction(action: SyncAction): string {
  const name = printable(action.relative);
  switch (action.action) {
    case 'mkdir': return `mkdir  ${name}/`;
    case 'copy': return `copy   ${name} (${action.reason === 'new' ? 'new' : `${action.reason} differs`}, ${formatBytes(action.size)})`;
    case 'compare': return `compare ${name}`;
    case 'delete': return `delete ${name}${action.type === 'dir' ? '/' : ''}`;
    case 'conflict': return `skip   ${name}: ${action.reason}`;
  }
}

export async function sync(ctx: AgentContext, args: string[], flags: SyncFlags): Promise<void> {
  await reporting(ctx, flags, args.slice(0, 1), (report) => syncRun(ctx, args, flags, report));
}

async function syncRun(ctx: AgentContext, args: string[], flags: SyncFlags, report: RunReport): Promise<void> {
  if (args.length !== 2) throw new AgentError('USAGE', 'sync needs exactly SOURCE and DESTINATION folders');
  const config = await loadTransferConfig(ctx, flags);
  const [src, dst] = parseAll(args, config) as [Location, Location];
  if (src.kind === dst.kind) {
    throw new AgentError('USAGE', src.kind === 'local' ? 'sync: one side must be remote (sftp://… or site:path)' : 'sync: one side must be local (remote-to-remote is not supported)');
  }
  const remoteLocation = (src.kind === 'remote' ? src : dst) as RemoteLocation;
  const remote = await licensedRemote(ctx, 'sync', flags, config, remoteLocation, connectionsFor(config, 'many'));
  await withRemote(remote, async () => {
    const [from, to]: [FileSide, FileSide] = src.kind === 'remote' ? [remote.side, localSide] : [localSide, remote.side];
    const srcEntry = await from.stat(src.path);
    if (!srcEntry) throw new AgentError('NOT_FOUND', `${describeLocation(src)}: no such folder`);
    if (srcEntry.type !== 'dir') throw new AgentError('USAGE', `${describeLocation(src)} is not a folder: sync mirrors folders (use put or get for files)`);
    const dstEntry = await to.stat(dst.path);
    if (dstEntry && dstEntry.type !== 'dir') throw new AgentError('USAGE', `${describeLocation(dst)} is not a folder`);

    // The destination's links are listed as links: a link to a folder elsewhere is never entered,
    // written through, or emptied by --delete (it is replaced, as rsync does without -K).
    const refusals: { file: string; error: AgentError }[] = [];
    const holding = new Set<string>();
    const sourceList = await listTree(from, src.path, 'follow', refusals, config.filter);
    const destList = dstEntry ? await listTree(to, dst.path, 'keep', refusals, config.filter, holding) : [];
    const failures: AgentError[] = [];
    const failed = (file: string, error: AgentError) => {
      failures.push(error);
      report.failed(file, error);
      if (!flags.json) ctx.notice(error.message);
    };
    for (const { file, error } of refusals) failed(file, error);
    const plan = planSync(sourceList, destList, { delete: flags.delete === true, checksum: flags.checksum === true, protect: holding });

    // One bucket for the whole sync, at the rate of its copies' way (UP for a sync up): the reads
    // that compare contents count as much as the copies.
    const throttle = throttleOf(config, src.kind === 'local' ? 'up' : 'down');
    // --checksum: same sizes are compared by content (read-only, so --dry-run does it too).
    const compared = new Map<string, boolean>();
    const compares = plan.actions.filter((a): a is Extract<SyncAction, { action: 'compare' }> => a.action === 'compare');
    await eachLimited(compares, config.parallel, async (action) => {
      const digest = async (side: FileSide, root: string) => {
        const path = side.join(root, action.relative);
        if (side.kind === 'local') return localDigest(path);
        const session = await remote.pool.session(0);
        return remoteDigest(new RemoteFs(session.sftp, session.posixRename), path, action.size, throttle);
      };
      const [a, b] = await Promise.all([digest(from, src.path), digest(to, dst.path)]);
      compared.set(action.relative, a === b);
    });
    let unchanged = plan.unchanged;
    const actions: SyncAction[] = [];
    for (const action of plan.actions) {
      if (action.action !== 'compare') actions.push(action);
      else if (compared.get(action.relative)) unchanged++;
      else actions.push({ action: 'copy', relative: action.relative, size: action.size, mtime: action.mtime, reason: 'content' });
    }
    traceSyncPlan(traceTo(ctx.notice, flags.verbose), actions, plan.unchangedFiles, [...compared].filter(([, same]) => same).map(([relative]) => relative));

    if (flags.dryRun) {
      for (const action of actions) {
        ctx.out(flags.json ? jsonLine({ event: 'plan', ...action }) : describeAction(action));
      }
      const copies = actions.filter((a) => a.action === 'copy');
      const summary = { copy: copies.length, bytes: copies.reduce((s, a) => s + (a.action === 'copy' ? a.size : 0), 0), mkdir: actions.filter((a) => a.action === 'mkdir').length, delete: actions.filter((a) => a.action === 'delete').length, unchanged };
      if (flags.json) ctx.out(jsonLine({ event: 'plan-summary', dryRun: true, ...summary }));
      else ctx.out(`dry run: ${summary.copy} to copy (${formatBytes(summary.bytes)}), ${summary.mkdir} folders to make, ${summary.delete} to delete, ${unchanged} unchanged; nothing was changed`);
      report.finish({ skip: true });
      return;
    }

    /** Whether `work` succeeded; a failure that is not the connection's is counted and the sync goes on. */
    const attempt = async (relative: string, work: () => Promise<void>): Promise<boolean> => {
      try {
        await work();
        return true;
      } catch (err) {
        const error = asAgentError(err);
        if (error.exit === 'CONNECTION' || error.exit === 'AUTH' || error.exit === 'HOST_KEY') throw error;
        failed(relative, error);
        return false;
      }
    };
    const destPath = (relative: string) => joinBelow(to.join, dst.path, relative);
    if (!dstEntry) await to.mkdir(dst.path);
    const deletes = actions.filter((a): a is Extract<SyncAction, { action: 'delete' }> => a.action === 'delete');
    const replacing = new Set(actions.filter((a) => a.action === 'mkdir' || a.action === 'copy').map((a) => a.relative));
    // Replacements go first: the new file or folder takes the name.
    for (const action of deletes.filter((d) => replacing.has(d.relative))) {
      await attempt(action.relative, () => to.remove({ path: destPath(action.relative), type: action.type, size: 0, mtime: 0, mode: 0 }));
    }
    for (const action of actions) {
      if (action.action === 'mkdir') await attempt(action.relative, () => to.mkdir(destPath(action.relative)));
      if (action.action === 'conflict') failed(action.relative, new AgentError('PARTIAL', `${action.relative} ${action.reason}`));
    }
    const jobs: Job[] = [];
    const srcEntries = new Map(sourceList.map((e) => [e.relative, e]));
    for (const action of actions) {
      if (action.action !== 'copy') continue;
      const entry = srcEntries.get(action.relative)!;
      jobs.push({
        direction: src.kind === 'local' ? 'upload' : 'download',
        source: joinBelow(from.join, src.path, action.relative),
        target: destPath(action.relative),
        size: entry.size,
        mtime: entry.mtime,
        mode: 0o644,
        display: action.relative,
      });
    }
    if (flags.preserve) {
      // Modes come from the source listing only when asked for.
      for (const job of jobs) job.mode = (await from.stat(job.source))?.mode ?? job.mode;
    }
    const summary = jobs.length > 0 ? await runJobs(ctx, remote, jobs, flags, config, 'sync', report, throttle) : null;
    for (const action of deletes.filter((d) => !replacing.has(d.relative))) {
      const removed = await attempt(action.relative, () => to.remove({ path: destPath(action.relative), type: action.type, size: 0, mtime: 0, mode: 0 }));
      if (removed && flags.json) ctx.out(jsonLine({ event: 'deleted', file: action.relative }));
    }
    if (!summary && progressMode(ctx, flags) !== 'quiet' && !flags.json) ctx.notice(`nothing to copy: ${unchanged} files unchanged`);

    const failedFiles = summary?.failed ?? 0;
    if (summary && failedFiles > 0 && !flags.json) for (const { error } of summary.failures) ctx.notice(error.message);
    const total = failures.length + failedFiles;
    if (total > 0) {
      report.accounted = true;
      const only = failures.length === 1 && failedFiles === 0 ? failures[0]! : failedFiles === 1 && failures.length === 0 ? summary!.failures[0]!.error : null;
      if (only && (summary?.files ?? 0) === 0) throw only;
      throw new AgentError('PARTIAL', `sync: ${total} item${total === 1 ? '' : 's'} failed${summary ? `; ${summaryLine(summary)}` : ''}`);
    }
  });
}
