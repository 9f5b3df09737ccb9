import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './processes.js';
import { startSshDaemon } from './ssh-daemon.js';

export { descendantsOf } from './ssh-daemon.js';

/**
 * A real OpenSSH `sshd` on a loopback port, with host keys and a client key generated for it in
 * `dir`: the peer of the transfer tests and of the transfer benchmark. It runs in the foreground
 * (`-D -e`) as a child of this process, so it ends with the run.
 */
export const SSHD = '/usr/sbin/sshd';
export const SFTP_SERVER = '/usr/lib/openssh/sftp-server';
/** The Green End SFTP server (Debian gesftpserver): another SFTP implementation, multi-threaded, answering out of order. */
export const GESFTPSERVER = '/usr/libexec/gesftpserver';

/** A user with a password, for password authentication (root has none to test with). */
export const PASSWORD_USER = 'ferrysftp';

export interface Sshd {
  host: string;
  port: number;
  /** Login of the client key: the user running the tests. */
  user: string;
  dir: string;
  /** Private key (ed25519, no passphrase) that `authorized_keys` accepts. */
  clientKey: string;
  /** Host public keys by type (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`): the key lines, only those it was given. */
  hostKeys: Record<string, string>;
  /** A known_hosts line per host key, for `[127.0.0.1]:port`. */
  knownHostsLines(): string[];
  /** The password of PASSWORD_USER, when started with `{ password: true }`. */
  password: string | null;
  /** Kills every session process (the per-connection sshd children): connections drop, the listener stays. */
  killSessions(): number;
  /** The number of live session processes. */
  sessionCount(): number;
  output(): string;
  stop(): Promise<void>;
}

export interface SshdOptions {
  dir: string;
  /** Create or update PASSWORD_USER with a fresh password and allow password logins. */
  password?: boolean;
  /** `internal-sftp` (default, one process less), the `sftp-server` binary, or gesftpserver. */
  subsystem?: 'internal-sftp' | 'sftp-server' | 'gesftpserver';
  /**
   * Key types of the host keys, in the order sshd offers them (default all three). Each type's key
   * is made once per `dir`: an sshd started again in the same dir shows the same keys.
   */
  hostKeyTypes?: ('ed25519' | 'ecdsa' | 'rsa')[];
  /**
   * Allow password logins without creating PASSWORD_USER or changing its password (other test
   * files may be using it): for tests in which every password is a wrong one.
   */
  acceptPasswords?: boolean;
  /** sshd's LogLevel (default ERROR); INFO logs each password tried ("Failed password for …"). */
  logLevel?: 'ERROR' | 'INFO' | 'VERBOSE';
  /** sshd's RekeyLimit (e.g. `1M`): new session keys after that much data, mid-transfer. */
  rekeyLimit?: string;
}

function keygen(type: string, file: string, comment: string): void {
  const bits = type === 'rsa' ? ['-b', '3072'] : [];
  execFileSync('ssh-keygen', ['-q', '-t', type, ...bits, '-N', '', '-C', comment, '-f', file], { stdio: 'ignore' });
}

function ensurePasswordUser(): string {
  if (process.getuid?.() !== 0) throw new Error('password authentication tests need root (to create a test user)');
  try {
    execFileSync('id', [PASSWORD_USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--no-create-home', '--home-dir', '/nonexistent', '--shell', '/bin/sh', PASSWORD_USER], { stdio: 'ignore' });
  }
  const password = randomBytes(12).toString('base64url');
  execFileSync('chpasswd', [], { input: `${PASSWORD_USER}:${password}\n` });
  return password;
}

function currentUser(): string {
  return execFileSync('id', ['-un'], { encoding: 'utf8' }).trim();
}

export async function startSshd(options: SshdOptions): Promise<Sshd> {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} is missing: install openssh-server (.ci/run does)`);
  const { dir } = options;
  mkdirSync(dir, { recursive: true });
  // sshd's privilege separation needs this folder; a fresh container has none.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });

  const hostKeyTypes = options.hostKeyTypes ?? ['ed25519', 'ecdsa', 'rsa'];
  const hostKeys: Record<string, string> = {};
  const hostKeyFiles: string[] = [];
  for (const type of hostKeyTypes) {
    const file = join(dir, `ssh_host_${type}_key`);
    if (!existsSync(file)) keygen(type, file, 'host');
    hostKeyFiles.push(file);
    const line = readFileSync(`${file}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
    hostKeys[line.split(' ')[0]!] = line;
  }
  const clientKey = join(dir, 'client_ed25519');
  if (!existsSync(clientKey)) keygen('ed25519', clientKey, 'ferry-test-client');
  chmodSync(clientKey, 0o600);
  const authorizedKeys = join(dir, 'authorized_keys');
  writeFileSync(authorizedKeys, readFileSync(`${clientKey}.pub`, 'utf8'));

  const password = options.password ? ensurePasswordUser() : null;
  const port = await freePort();
  const subsystem = { 'sftp-server': SFTP_SERVER, gesftpserver: GESFTPSERVER, 'internal-sftp': 'internal-sftp' }[options.subsystem ?? 'internal-sftp'];
  if (subsystem.startsWith('/') && !existsSync(subsystem)) throw new Error(`${subsystem} is missing: install ${options.subsystem} (.ci/run does)`);
  const config = [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    ...hostKeyFiles.map((f) => `HostKey ${f}`),
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${authorizedKeys}`,
    'StrictModes no',
    'UsePAM no',
    'PermitRootLogin yes',
    `PasswordAuthentication ${password || options.acceptPasswords ? 'yes' : 'no'}`,
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    // Parallel transfers open many channels and connections at once.
    'MaxSessions 64',
    'MaxStartups 200:30:400',
    'LoginGraceTime 30',
    'UseDNS no',
    `LogLevel ${options.logLevel ?? 'ERROR'}`,
    `Subsystem sftp ${subsystem}`,
    ...(options.rekeyLimit ? [`RekeyLimit ${options.rekeyLimit}`] : []),
    '',
  ].join('\n');
  const configFile = join(dir, 'sshd_config');
  writeFileSync(configFile, config);

  const daemon = await startSshDaemon('sshd', SSHD, ['-D', '-e', '-f', configFile], port);

  return {
    host: '127.0.0.1',
    port,
    user: currentUser(),
    dir,
    clientKey,
    hostKeys,
    knownHostsLines: () => Object.values(hostKeys).map((key) => `[127.0.0.1]:${port} ${key}`),
    password,
    killSessions: daemon.killSessions,
    sessionCount: daemon.sessionCount,
    output: daemon.output,
    stop: daemon.stop,
  };
}
