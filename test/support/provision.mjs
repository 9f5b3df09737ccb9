// Runs before mocha (npm test): makes sure the services the tests talk to are there, starting them
// when they are installed but stopped, and failing loudly otherwise. Tests never skip for want of them.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createConnection } from 'node:net';

function reachable(port) {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.setTimeout(1000);
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => { socket.destroy(); resolve(false); });
  });
}

async function waitFor(name, port, seconds) {
  for (let i = 0; i < seconds * 4; i++) {
    if (await reachable(port)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${name} did not come up on 127.0.0.1:${port}`);
}

function has(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
}

const services = [
  {
    name: 'MariaDB', port: 3306, binary: '/usr/sbin/mariadbd',
    start: ['start-stop-daemon', ['--start', '--oknodo', '--background', '--exec', '/usr/sbin/mariadbd']],
  },
  {
    name: 'Redis', port: 6379, binary: 'redis-server',
    start: ['redis-server', ['--daemonize', 'yes', '--bind', '127.0.0.1', '--port', '6379', '--save', '', '--appendonly', 'no']],
  },
];

// Everything that is missing is reported at once; npm test then stops before mocha.
const missing = [];

for (const service of services) {
  if (await reachable(service.port)) continue;
  if (!has(service.binary)) {
    missing.push(`${service.name} is not installed and not listening on ${service.port}; run .ci/run (it installs it)`);
    continue;
  }
  console.log(`provision: starting ${service.name}`);
  execFileSync(service.start[0], service.start[1], { stdio: 'inherit' });
  await waitFor(service.name, service.port, 30);
}
if (missing.length === 0) console.log('provision: MariaDB and Redis are up');

// The portal tests drive Debian's Chromium through playwright-core; without it they cannot run.
const CHROMIUM = '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) {
  missing.push(`${CHROMIUM} is missing; the MyAccount browser tests need Debian's chromium: run .ci/run (it installs it) or apt-get install chromium`);
}

// The transfer tests start their own OpenSSH sshd on a loopback port with generated keys.
for (const [binary, pkg] of [['/usr/sbin/sshd', 'openssh-server'], ['/usr/bin/ssh-keygen', 'openssh-client']]) {
  if (!existsSync(binary)) {
    missing.push(`${binary} is missing: install the Debian package ${pkg} (.ci/run does); the transfer tests run a real sshd`);
  }
}
// The transfer matrix (test/transfer-servers.test.ts) runs ProFTPD's mod_sftp and gesftpserver too.
for (const [file, pkg] of [['/usr/sbin/proftpd', 'proftpd-core'], ['/usr/lib/proftpd/mod_sftp.so', 'proftpd-mod-crypto'], ['/usr/libexec/gesftpserver', 'gesftpserver']]) {
  if (!existsSync(file)) {
    missing.push(`${file} is missing: install the Debian package ${pkg} (.ci/run does); the transfer matrix runs that SFTP server`);
  }
}
// The https license-server test makes its self-signed certificate with openssl.
if (!existsSync('/usr/bin/openssl')) {
  missing.push('/usr/bin/openssl is missing: install the Debian package openssl (.ci/run does); the https test makes a certificate with it');
}
// The distribution test runs `curl -fsSL <server>/install.sh | sh`, as customers do.
if (!has('curl')) {
  missing.push('curl is missing: install the Debian package curl (.ci/run does); the distribution test runs install.sh with it');
}

for (const problem of missing) console.error(`provision: ${problem}`);
if (missing.length === 0) console.log('provision: Chromium, sshd and openssl are installed');
process.exitCode = missing.length > 0 ? 1 : 0;
