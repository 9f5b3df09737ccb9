/**
 * Every exit code of `ferry`, in one table that `--help` prints as it is. Scripts branch on these
 * numbers, so once released a number never changes its meaning; new codes take free numbers.
 *
 * The ranges say who is talking: 0-9 the command line itself, 10-19 licensing (this machine's
 * license or the license server), 20-29 transfers (the SFTP server or the files), 30-39 updating
 * ferry itself, 40-49 licensing again (10-19 is full). 130 is the shell's own number for a command ended by Ctrl-C (128 + SIGINT): ferry
 * ends with it too when it stops cleanly on Ctrl-C.
 */
export interface ExitCodeEntry {
  code: number;
  /** One line for people: what happened, seen from the user's side. */
  meaning: string;
}

export const EXIT_CODES = {
  OK: { code: 0, meaning: 'success' },
  INTERNAL: { code: 1, meaning: 'unexpected internal error (a bug in ferry: please report it)' },
  USAGE: { code: 2, meaning: 'wrong use of the command line or a bad setting (unknown option, no server URL…)' },
  BAD_KEY_FORMAT: { code: 3, meaning: 'the license key is mistyped; checked on this machine, nothing was sent' },

  NO_LICENSE: { code: 10, meaning: 'no usable license on this machine (none activated, or its state is damaged or from another machine)' },
  TRIAL_EXPIRED: { code: 11, meaning: 'the trial has ended: activate a license key to go on' },
  LICENSE_REVOKED: { code: 12, meaning: 'the license has been revoked, suspended or cancelled' },
  SEATS_EXHAUSTED: { code: 13, meaning: 'every seat of the license is in use on other machines' },
  LICENSE_NOT_FOUND: { code: 14, meaning: 'the license server does not know this key' },
  SERVER_UNREACHABLE: { code: 15, meaning: 'the license server could not be reached (network, timeout, or it is unavailable)' },
  SERVER_ERROR: { code: 16, meaning: 'the license server refused for another reason (its code and message are printed)' },
  ACTIVATION_INACTIVE: { code: 17, meaning: 'this machine was deactivated elsewhere (e.g. in MyAccount)' },
  LICENSE_UNTRUSTED: { code: 18, meaning: 'the license, or the server that sent it, is not certified by this build\'s trust root (a forged or edited license.json, another server)' },
  TRIAL_EXISTS: { code: 19, meaning: 'this machine already had its trial, started by another ferry installation (whose activation secret is not here)' },

  CONNECTION: { code: 20, meaning: 'transfers: could not connect to the SFTP server' },
  AUTH: { code: 21, meaning: 'transfers: the SFTP server refused the login' },
  HOST_KEY: { code: 22, meaning: 'transfers: the SFTP server\'s host key is unknown or has changed' },
  PARTIAL: { code: 23, meaning: 'transfers: some files were transferred, others failed' },
  NOT_FOUND: { code: 24, meaning: 'transfers: a local or remote path does not exist' },
  PERMISSION: { code: 25, meaning: 'transfers: permission denied' },
  DISK_FULL: { code: 26, meaning: 'transfers: no space left where the files go' },

  UPDATE_UNSUPPORTED: { code: 30, meaning: 'update: this build cannot update itself (a development build, or an installation ferry cannot replace)' },
  UPDATE_REFUSED: { code: 31, meaning: 'update: the release failed its check (signature, size or SHA-256); nothing was changed' },
  UPDATE_FAILED: { code: 32, meaning: 'update: the download or the replacement failed; the installed ferry is unchanged' },

  REBIND_REFUSED: { code: 40, meaning: 'this machine\'s id changed and its license could not move to it (the license\'s moves for the year are used up, or the move was refused): deactivate a machine you no longer use, or contact support, whose staff can allow more' },

  INTERRUPTED: { code: 130, meaning: 'interrupted (Ctrl-C): part files are left, and the same command with --resume continues them' },
} as const satisfies Record<string, ExitCodeEntry>;

export type ExitName = keyof typeof EXIT_CODES;

export function exitCodeOf(name: ExitName): number {
  return EXIT_CODES[name].code;
}

/** The table as `--help` shows it: code, name, meaning. */
export function exitCodeTable(): string {
  return Object.entries(EXIT_CODES)
    .map(([name, { code, meaning }]) => `  ${String(code).padStart(3)}  ${name.padEnd(20)} ${meaning}`)
    .join('\n');
}
