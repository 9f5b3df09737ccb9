import { AgentError } from '../errors.js';
import type { ExitName } from '../exit-codes.js';

/**
 * What went wrong in a transfer, as the user should hear it, with the exit code it deserves.
 * SFTP status codes (draft-ietf-secsh-filexfer-02 §7) and local errno codes each map once, here.
 */

export const SFTP_STATUS = {
  OK: 0,
  EOF: 1,
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  BAD_MESSAGE: 5,
  NO_CONNECTION: 6,
  CONNECTION_LOST: 7,
  OP_UNSUPPORTED: 8,
} as const;

const SFTP_EXITS: Partial<Record<number, { exit: ExitName; reason: string }>> = {
  [SFTP_STATUS.NO_SUCH_FILE]: { exit: 'NOT_FOUND', reason: 'no such file or folder' },
  [SFTP_STATUS.PERMISSION_DENIED]: { exit: 'PERMISSION', reason: 'permission denied' },
};

const LOCAL_EXITS: Record<string, { exit: ExitName; reason: string }> = {
  ENOENT: { exit: 'NOT_FOUND', reason: 'no such file or folder' },
  ENOTDIR: { exit: 'NOT_FOUND', reason: 'a part of the path is not a folder' },
  EACCES: { exit: 'PERMISSION', reason: 'permission denied' },
  EPERM: { exit: 'PERMISSION', reason: 'permission denied' },
  EROFS: { exit: 'PERMISSION', reason: 'read-only file system' },
  ENOSPC: { exit: 'DISK_FULL', reason: 'no space left on the device' },
  EDQUOT: { exit: 'DISK_FULL', reason: 'disk quota exceeded' },
  EISDIR: { exit: 'USAGE', reason: 'is a folder' },
};

/** Errors that mean the connection went away: the transfer is retried and resumed. */
export class ConnectionLost extends Error {
  override readonly name: string = 'ConnectionLost';
}

/**
 * The connection was alive but the server answered no SFTP request within the deadline
 * (`--timeout`): treated as a lost connection (retried, resumed), with its own words.
 */
export class ServerStalled extends ConnectionLost {
  override readonly name = 'ServerStalled';
}

/**
 * The server refused to open a file with a plain failure (not "no such file", not "permission
 * denied"): what servers with a limit on open handles per session answer (ProFTPD, some appliances)
 * when many files are in flight. The engine then moves fewer files at once and tries it again.
 */
export class OpenRefused extends AgentError {
  constructor(path: string, readonly serverMessage: string) {
    super('PARTIAL', `${path}: the server failed (${serverMessage})`);
  }
}

/** A failure tied to one path; its exit says what kind. */
export function pathError(exit: ExitName, path: string, reason: string): AgentError {
  return new AgentError(exit, `${path}: ${reason}`);
}

export function isConnectionLost(err: unknown): boolean {
  if (err instanceof ConnectionLost) return true;
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (code === SFTP_STATUS.NO_CONNECTION || code === SFTP_STATUS.CONNECTION_LOST) return true;
  if (typeof code === 'string' && ['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT', 'ECONNREFUSED'].includes(code)) return true;
  return /No response from server|Not connected|channel closed|Channel open failure|connection lost|Keepalive timeout|socket (hang up|closed)|Connection lost before handshake|\(SSH\) Channel open failure|Unable to start subsystem/i.test(err.message);
}

/** A remote error on `path` (an ssh2 SFTP error carries the status as `code`). */
export function remoteError(err: unknown, path: string): Error {
  if (err instanceof AgentError || err instanceof ConnectionLost) return err;
  if (isConnectionLost(err)) return new ConnectionLost((err as Error).message);
  const code = (err as { code?: unknown }).code;
  const mapped = typeof code === 'number' ? SFTP_EXITS[code] : undefined;
  if (mapped) return pathError(mapped.exit, path, mapped.reason);
  const message = err instanceof Error ? err.message : String(err);
  if (/no space|ENOSPC|quota/i.test(message)) return pathError('DISK_FULL', path, 'no space left on the server');
  return pathError('PARTIAL', path, `the server failed (${message})`);
}

/** A local error on `path` (a Node errno error). */
export function localError(err: unknown, path: string): Error {
  if (err instanceof AgentError || err instanceof ConnectionLost) return err;
  const code = (err as NodeJS.ErrnoException).code;
  const mapped = code ? LOCAL_EXITS[code] : undefined;
  if (mapped) return pathError(mapped.exit, path, mapped.reason);
  return pathError('PARTIAL', path, (err as Error).message ?? String(err));
}

/** The exit of an error a transfer ended with; unexpected errors are bugs (INTERNAL). */
export function exitOf(err: unknown): ExitName {
  if (err instanceof AgentError) return err.exit;
  if (isConnectionLost(err)) return 'CONNECTION';
  return 'INTERNAL';
}

export function asAgentError(err: unknown): AgentError {
  if (err instanceof AgentError) return err;
  if (err instanceof ServerStalled) return new AgentError('CONNECTION', err.message);
  if (isConnectionLost(err)) return new AgentError('CONNECTION', `the connection to the SFTP server was lost (${(err as Error).message})`);
  return new AgentError('INTERNAL', `internal error: ${err instanceof Error ? err.message : String(err)}`);
}
