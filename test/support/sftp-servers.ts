import { startProftpd } from './proftpd.js';
import { startSshd, type Sshd } from './sshd.js';
import { tempDir } from './temp.js';

/**
 * The SFTP servers ferry is tested against, each started on a loopback port serving this
 * machine's files as the user running the tests: OpenSSH (internal-sftp), ProFTPD's mod_sftp, and
 * the Green End SFTP server under sshd. The last two answer requests out of order and offer none
 * of OpenSSH's extensions (posix-rename, statvfs, limits); ProFTPD answers check-file. Suites that
 * are about what differs between servers run once per server of `REAL_SERVERS`; what is about
 * sshd's own settings (jump hosts, rekeying, logins as another user) has suites of its own.
 */
export interface SftpServerKind {
  name: string;
  start: () => Promise<Sshd>;
  /** How `--resume` verifies a part file there: by the server's check-file, or by reading it back. */
  resumeVia: 'check-file' | 'read-back';
}

export const OPENSSH: SftpServerKind = { name: 'OpenSSH internal-sftp', start: () => startSshd({ dir: tempDir('ferry-sshd-') }), resumeVia: 'read-back' };
export const PROFTPD: SftpServerKind = { name: 'ProFTPD mod_sftp', start: () => startProftpd({ dir: tempDir('ferry-proftpd-') }), resumeVia: 'check-file' };
export const GESFTPSERVER: SftpServerKind = { name: 'gesftpserver under sshd', start: () => startSshd({ dir: tempDir('ferry-sshd-'), subsystem: 'gesftpserver' }), resumeVia: 'read-back' };

/** ProFTPD without OpenSSH's extensions: a file is replaced through the plain rename. */
export const PROFTPD_PLAIN: SftpServerKind = {
  name: 'ProFTPD mod_sftp without posix-rename or statvfs',
  start: () => startProftpd({ dir: tempDir('ferry-proftpd-'), extra: ['SFTPExtensions -posixRename -statvfs -spaceAvailable'] }),
  resumeVia: 'check-file',
};

/** Three implementations: the suites about server differences run against each. */
export const REAL_SERVERS: SftpServerKind[] = [OPENSSH, PROFTPD, GESFTPSERVER];
