import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './processes.js';
import { startSshDaemon } from './ssh-daemon.js';
import type { Sshd } from './sshd.js';

/**
 * ProFTPD's mod_sftp on a loopback port, as a test peer that is not OpenSSH: it answers requests
 * out of order, offers neither `posix-rename@openssh.com` nor `limits@openssh.com`, and speaks
 * SFTP v3 with its own error codes. It runs in the foreground (`-n`) as a child of this process,
 * with its own config, host key, scoreboard and pid file in `dir`. It looks like an `Sshd` to the
 * transfer world (same user, client key, known_hosts lines), so the same tests run against both.
 */
export const PROFTPD = '/usr/sbin/proftpd';
const MODULES = '/usr/lib/proftpd';

export interface ProftpdOptions {
  dir: string;
  /** Extra config lines inside the server's context (SFTPExtensions, limits, …). */
  extra?: string[];
}

function keygen(args: string[], file: string): void {
  execFileSync('ssh-keygen', ['-q', ...args, '-N', '', '-C', 'ferry-test', '-f', file], { stdio: 'ignore' });
}

export async function startProftpd(options: ProftpdOptions): Promise<Sshd> {
  if (!existsSync(PROFTPD) || !existsSync(join(MODULES, 'mod_sftp.so'))) {
    throw new Error(`${PROFTPD} or mod_sftp is missing: install proftpd-core and proftpd-mod-crypto (.ci/run does)`);
  }
  const { dir } = options;
  mkdirSync(dir, { recursive: true });
  // mod_sftp reads PEM host keys; RSA is the one every version takes.
  const hostKey = join(dir, 'ssh_host_rsa_key');
  if (!existsSync(hostKey)) keygen(['-t', 'rsa', '-b', '3072', '-m', 'PEM'], hostKey);
  const clientKey = join(dir, 'client_ed25519');
  if (!existsSync(clientKey)) keygen(['-t', 'ed25519'], clientKey);
  // SFTPAuthorizedUserKeys takes RFC 4716 public keys.
  const authorizedKeys = join(dir, 'authorized_keys');
  writeFileSync(authorizedKeys, execFileSync('ssh-keygen', ['-e', '-f', `${clientKey}.pub`], { encoding: 'utf8' }));

  const user = execFileSync('id', ['-un'], { encoding: 'utf8' }).trim();
  const group = execFileSync('id', ['-gn'], { encoding: 'utf8' }).trim();
  const port = await freePort();
  const config = [
    `LoadModule mod_sftp.c`,
    'ServerType standalone',
    'ServerName "ferry test"',
    'DefaultServer on',
    'UseIPv6 off',
    `DefaultAddress 127.0.0.1`,
    `Port ${port}`,
    `User ${user}`,
    `Group ${group}`,
    'RootLogin on',
    'RequireValidShell off',
    // Debian lists root in /etc/ftpusers; the tests log in as the user running them (root in CI).
    'UseFtpUsers off',
    'UseReverseDNS off',
    'WtmpLog off',
    'AuthOrder mod_auth_unix.c',
    `ScoreboardFile ${join(dir, 'scoreboard')}`,
    `PidFile ${join(dir, 'proftpd.pid')}`,
    `DelayTable ${join(dir, 'delay')}`,
    'MaxInstances 100',
    'TimeoutIdle 600',
    'Umask 022',
    'AllowOverwrite on',
    'SFTPEngine on',
    `SFTPHostKey ${hostKey}`,
    `SFTPAuthorizedUserKeys file:${authorizedKeys}`,
    `SFTPLog ${join(dir, 'sftp.log')}`,
    'SFTPAuthMethods publickey',
    // No ~/.sftp compression games, no waiting for a reverse lookup.
    'SFTPCompression off',
    '<Limit ALL>',
    '  AllowAll',
    '</Limit>',
    ...(options.extra ?? []),
    '',
  ].join('\n');
  const configFile = join(dir, 'proftpd.conf');
  writeFileSync(configFile, config);
  // A syntax check first: a bad directive otherwise shows only as a port that never opens.
  try {
    execFileSync(PROFTPD, ['-t', '-c', configFile], { stdio: 'pipe' });
  } catch (err) {
    const { stdout, stderr } = err as { stdout?: Buffer; stderr?: Buffer };
    throw new Error(`proftpd refused its config: ${String(stdout ?? '')}${String(stderr ?? err)}`);
  }

  const sftpLog = join(dir, 'sftp.log');
  const daemon = await startSshDaemon('proftpd', PROFTPD, ['-n', '-q', '-c', configFile], port, () => (existsSync(sftpLog) ? readFileSync(sftpLog, 'utf8') : ''));

  const hostKeyLine = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
  return {
    host: '127.0.0.1',
    port,
    user,
    dir,
    clientKey,
    hostKeys: { 'ssh-rsa': hostKeyLine },
    knownHostsLines: () => [`[127.0.0.1]:${port} ${hostKeyLine}`],
    password: null,
    killSessions: daemon.killSessions,
    sessionCount: daemon.sessionCount,
    output: daemon.output,
    stop: daemon.stop,
  };
}
