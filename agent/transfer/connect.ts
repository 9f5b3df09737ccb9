import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect as connectSocket, isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import ssh2 from 'ssh2';
import sshCrypto from 'ssh2/lib/protocol/crypto.js';
import { codeCacheNote } from '../runtime.js';
import { packRequests } from './direct-write.js';
import type { AnyAuthMethod, AuthenticationType, ConnectConfig, ParsedKey, SFTPWrapper } from 'ssh2';
import { AgentError } from '../errors.js';
import { closestName } from '../suggest.js';
import { RECEIVE, SSH } from './constants.js';
import { ConnectionLost, ServerStalled } from './errors.js';
import { channelOpen, markChannelClosed, watchChannel } from './file-sides.js';
import {
  fingerprintOf, judgeHostKey, keyTypeOf, keyTypeOfAlgorithm, knownHostsName, type KnownHosts, type KnownKey,
} from './known-hosts.js';
import type { SecretPrompt } from './prompt.js';
import { LoginAttempts } from './login-attempts.js';
import { defaultSshConfigFiles, hostAliases, readSshConfig, resolveSshHost, type ConfigBlock } from './ssh-config.js';
import { parseJumpHosts, type RemoteTarget, type SiteDefinition } from './url.js';
import { noTrace, traceSftpStart, type Trace } from './verbose.js';

const { Client, utils } = ssh2;

/**
 * Connecting to an SFTP server the way OpenSSH users expect: the host resolved through sites and
 * `~/.ssh/config`, its key checked against known_hosts BEFORE any credential is sent, then keys
 * (`-i`, IdentityFile, the defaults), ssh-agent, and a password (FERRY_PASSWORD or a prompt).
 */

export interface ConnectOptions {
  /** `-i FILE`. */
  identity?: string;
  /** `-P PORT`: used when the URL names no port. */
  port?: number;
  /** `-J HOST[,HOST…]`: jump hosts, ahead of any ProxyJump in the ssh config. */
  jump?: string;
  /** `--accept-new`: trust an unknown host key on first use, and record it. */
  acceptNew: boolean;
  /** `--timeout`: the deadline of connecting (prompts not counted) and of each SFTP request. */
  timeoutMs: number;
  /** The user's home (for ~/.ssh), the local login name, the agent socket. */
  home: string;
  localUser: string;
  sshAuthSock?: string;
  password?: string;
  keyPassphrase?: string;
  prompt: SecretPrompt | null;
  knownHosts: KnownHosts;
  sites: Record<string, SiteDefinition>;
  /** Notices for stderr (a recorded host key, a skipped key). */
  notice: (message: string) => void;
  /** `-v` lines (verbose.ts); none when absent. */
  trace?: Trace;
  /**
   * What the connection waits for before it judges the host key, and so before any prompt or
   * credential: the license check, which runs meanwhile (commands/transfer.ts, licensedOpening).
   * Its `signal` ends the connection at once, wherever it is.
   */
  gate?: { passed: Promise<void>; signal: AbortSignal };
}

/** A resolved server: where to connect and as whom. */
export interface Endpoint {
  host: string;
  port: number;
  user: string;
  /** Keys to offer, in order: `-i`, the site's, IdentityFile lines, else OpenSSH's default files. */
  identityFiles: string[];
  useAgent: boolean;
  /** `user@host:port` for messages (`jump host user@host:port` for a jump host). */
  label: string;
  /** Jump hosts to go through, in order (ProxyJump, `-J`); empty for a direct connection. */
  jumps: Endpoint[];
  /**
   * The configured site or ~/.ssh/config host closest to the name, when the name is neither and
   * looks like a mistyped one (suggest.ts): said if the name then does not resolve.
   */
  didYouMean?: string;
  /** Whether this is a jump host on the way to the destination. */
  isJump: boolean;
}

const DEFAULT_IDENTITIES = ['id_ed25519', 'id_ecdsa', 'id_rsa'];
/** More hops than this is a loop in the ssh config (a jump host that names itself, say). */
const MAX_JUMPS = 8;

export async function resolveEndpoint(target: RemoteTarget, options: ConnectOptions): Promise<Endpoint> {
  const site = target.site ? options.sites[target.site] : undefined;
  const explicit = [options.identity, site?.key].filter((f): f is string => !!f).map((f) => (f.startsWith('~/') ? join(options.home, f.slice(2)) : f));
  for (const file of explicit) {
    if (!existsSync(file)) throw new AgentError('USAGE', `identity file ${file}: no such file`);
  }
  const user = target.user ?? site?.user;
  const sshConfig = await readSshConfig(defaultSshConfigFiles(options.home), options.home);
  return resolveHost({ host: target.host, port: target.port ?? options.port ?? site?.port, user, explicit }, sshConfig, options, options.jump, 0);
}

/**
 * One host through the ssh config. As in OpenSSH, flags given for the destination (`-i`, `-P`, a
 * site's key) do not apply to jump hosts: those are configured in ~/.ssh/config.
 */
function resolveHost(
  wanted: { host: string; port: number | undefined; user: string | undefined; explicit: string[]; jumpHost?: boolean },
  sshConfig: ConfigBlock[], options: ConnectOptions, jumpFlag: string | undefined, depth: number,
): Endpoint {
  const config = resolveSshHost(sshConfig, wanted.host, {
    home: options.home, localUser: options.localUser, ...(wanted.user !== undefined ? { user: wanted.user } : {}),
  });
  const host = config.hostName ?? wanted.host;
  const port = wanted.port ?? config.port ?? SSH.defaultPort;
  const user = wanted.user ?? config.user ?? options.localUser;
  const identityFiles = [...wanted.explicit, ...config.identityFiles];
  if (identityFiles.length === 0) {
    for (const name of DEFAULT_IDENTITIES) {
      const file = join(options.home, '.ssh', name);
      if (existsSync(file)) identityFiles.push(file);
    }
  }
  const label = `${wanted.jumpHost ? 'jump host ' : ''}${user}@${host}${port === SSH.defaultPort ? '' : `:${port}`}`;
  const jumpSpec = jumpFlag ?? config.proxyJump;
  // OpenSSH takes whichever of ProxyJump and ProxyCommand comes first; ferry does not run commands
  // from a config file, and connecting straight to a host meant to be reached through one could go
  // where the user's network does not intend: refuse, saying what would work.
  if (jumpSpec === undefined && config.proxyCommand !== undefined && config.proxyCommand.toLowerCase() !== 'none') {
    throw new AgentError('USAGE', `the ssh config reaches ${wanted.host} through ProxyCommand, which ferry does not run: use ProxyJump (or -J) for it, or "ProxyCommand none" in a Host block for ferry's use`);
  }
  const jumps: Endpoint[] = [];
  if (jumpSpec !== undefined && jumpSpec.toLowerCase() !== 'none') {
    const what = jumpFlag !== undefined ? '-J' : `the ProxyJump of ${wanted.host} in the ssh config`;
    const hops = parseJumpHosts(jumpSpec, what);
    if (depth + hops.length > MAX_JUMPS) throw new AgentError('USAGE', `more than ${MAX_JUMPS} jump hosts on the way to ${wanted.host}: does a ProxyJump in the ssh config lead back to itself?`);
    for (const [i, hop] of hops.entries()) {
      // The first hop may have a ProxyJump of its own; later ones are reached through the hop before.
      const resolved = resolveHost({ host: hop.host, port: hop.port, user: hop.user, explicit: [], jumpHost: true }, sshConfig, options, i === 0 ? undefined : 'none', depth + hops.length);
      jumps.push(...resolved.jumps, { ...resolved, jumps: [] });
    }
  }
  const endpoint: Endpoint = {
    host,
    port,
    user,
    identityFiles: [...new Set(identityFiles)],
    useAgent: !!options.sshAuthSock && !config.identitiesOnly,
    label,
    jumps,
    isJump: wanted.jumpHost === true,
  };
  // A name that no site or Host line gives an address to may be a mistyped one: the closest
  // configured name is kept, to be said if the name then does not resolve.
  if (config.hostName === undefined && !isIP(wanted.host)) {
    const suggestion = closestName(wanted.host, [...Object.keys(options.sites), ...hostAliases(sshConfig)]);
    if (suggestion !== undefined) endpoint.didYouMean = suggestion;
  }
  return endpoint;
}

/** One SSH connection and its SFTP channel. */
export interface SshSession {
  sftp: SFTPWrapper;
  client: InstanceType<typeof Client>;
  /** True once the connection has closed. */
  closed(): boolean;
  /** Resolves when the connection has closed, for whatever reason. */
  whenClosed: Promise<void>;
  /** Whether the server offers `posix-rename@openssh.com`. */
  posixRename: boolean;
  end(): void;
}

/**
 * One way to log in. `needs` is the server's name of the method: one the server does not accept is
 * skipped before `offer` reads its key or asks for its password.
 */
interface AuthOffer {
  needs: AuthenticationType;
  /** For messages, before the offer is made: `key FILE`, `ssh-agent`, `password`. */
  name: string;
  /** The method, and what it is in words (never a secret); null when it cannot be offered. */
  offer: (attempts: LoginAttempts) => Promise<{ method: AnyAuthMethod; what: string } | null>;
}

/**
 * Makes connections to one endpoint. Keys are read and unlocked once, so a reconnect after a lost
 * connection prompts for nothing.
 */
export class Connector {
  private readonly keys = new Map<string, { key: ParsedKey | null; problem?: string }>();
  private password: string | undefined;
  /** Where the password came from, for messages. */
  private passwordSource = 'FERRY_PASSWORD';
  private readonly trace: Trace;
  /** Connections made so far: the first one's details are traced at -v, later ones at -vv. */
  private connections = 0;
  /** Set when --accept-new has recorded this host's key: later connections find it on file. */
  private hostKeyRecorded = false;

  /** One per jump host, in order; each checks its host's key and logs in on its own. */
  private readonly jumpConnectors: Connector[];

  constructor(readonly endpoint: Endpoint, private readonly options: ConnectOptions) {
    this.password = options.password;
    this.trace = options.trace ?? noTrace;
    // FERRY_PASSWORD is the destination's: a jump host is never sent it (its password is asked for).
    const { password: _destinationOnly, ...forJumps } = options;
    this.jumpConnectors = endpoint.jumps.map((hop) => new Connector(hop, forJumps));
  }

  /** Key types on file for this host first, so the server shows a key we can check (as OpenSSH does). */
  private hostKeyAlgorithms(known: KnownKey[]): string[] {
    const all = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];
    const knownTypes = new Set(known.filter((k) => !k.revoked).map((k) => k.keyType));
    return [...all.filter((a) => knownTypes.has(keyTypeOfAlgorithm(a))), ...all.filter((a) => !knownTypes.has(keyTypeOfAlgorithm(a)))];
  }

  private async loadKey(file: string): Promise<{ key: ParsedKey | null; problem?: string }> {
    if (this.keys.has(file)) return this.keys.get(file)!;
    let parsed: ParsedKey | null = null;
    let problem: string | undefined;
    try {
      const data = await readFile(file);
      let result = utils.parseKey(data);
      if (result instanceof Error && /passphrase/i.test(result.message)) {
        const passphrase = this.options.keyPassphrase ?? (this.options.prompt ? await this.options.prompt(`Enter passphrase for key '${file}': `) : undefined);
        if (passphrase === undefined) {
          problem = 'encrypted, no passphrase';
          this.options.notice(`skipping the encrypted key ${file}: no passphrase (set FERRY_KEY_PASSPHRASE or run on a terminal)`);
        } else {
          result = utils.parseKey(data, passphrase);
        }
      }
      if (result instanceof Error) {
        problem ??= result.message;
        if (!/passphrase given/i.test(result.message)) this.options.notice(`skipping the key ${file}: ${result.message}`);
      } else {
        parsed = Array.isArray(result) ? (result[0] ?? null) : result;
      }
    } catch (err) {
      problem = (err as Error).message;
      this.options.notice(`skipping the key ${file}: ${(err as Error).message}`);
    }
    const loaded = problem === undefined ? { key: parsed } : { key: parsed, problem };
    this.keys.set(file, loaded);
    return loaded;
  }

  /** What to offer, in order. */
  private authMethods(): AuthOffer[] {
    const { user } = this.endpoint;
    const methods: AuthOffer[] = this.endpoint.identityFiles.map((file) => ({
      needs: 'publickey',
      name: `key ${file}`,
      offer: async (attempts) => {
        const { key, problem } = await this.loadKey(file);
        if (!key) {
          attempts.unusable.push(`key ${file} (${problem ?? 'unreadable'})`);
          this.trace(1, `${this.endpoint.label}: cannot offer key ${file}: ${problem ?? 'unreadable'}`);
          return null;
        }
        const publicKey = key.getPublicSSH();
        return { method: { type: 'publickey', username: user, key }, what: `key ${file} ${keyTypeOf(publicKey)} ${fingerprintOf(publicKey)}` };
      },
    }));
    if (this.endpoint.useAgent) {
      methods.push({ needs: 'publickey', name: 'ssh-agent', offer: async () => ({ method: { type: 'agent', username: user, agent: this.options.sshAuthSock! }, what: 'ssh-agent' }) });
    }
    methods.push({
      needs: 'password',
      name: 'password',
      offer: async (attempts) => {
        if (this.password === undefined && this.options.prompt) {
          this.password = await this.options.prompt(`${this.endpoint.label}'s password: `);
          this.passwordSource = 'typed';
        }
        if (this.password === undefined) {
          const why = this.endpoint.isJump ? 'not on a terminal to ask it' : 'no FERRY_PASSWORD, and not on a terminal to ask it';
          attempts.unusable.push(`password (${why})`);
          this.trace(1, `${this.endpoint.label}: cannot offer a password: ${why}`);
          return null;
        }
        return { method: { type: 'password', username: user, password: this.password }, what: `from ${this.passwordSource}` };
      },
    });
    return methods;
  }

  /**
   * Opens a connection and its SFTP channel, through the jump hosts if there are any. Throws
   * AgentError CONNECTION, AUTH or HOST_KEY.
   */
  async connect(): Promise<SshSession> {
    const hops: Login[] = [];
    const endHops = () => {
      for (const hop of hops) hop.client.end();
    };
    const first = this.connections++ === 0;
    const detail = first ? 1 : 2;
    const via = this.jumpConnectors.length > 0 ? ` via ${this.jumpConnectors.map((j) => `${j.endpoint.user}@${j.endpoint.host}:${j.endpoint.port}`).join(', ')}` : '';
    this.trace(detail, `connecting to ${this.endpoint.host} port ${this.endpoint.port} as ${this.endpoint.user}${via}${first ? '' : ` (connection ${this.connections})`}`);
    const cacheNote = first ? codeCacheNote() : null;
    if (cacheNote) this.trace(2, cacheNote);
    try {
      let sock: Duplex | undefined;
      for (const [i, jump] of this.jumpConnectors.entries()) {
        const hop = await jump.login(sock);
        hops.push(hop);
        sock = await forwardThrough(hop, jump.endpoint, this.jumpConnectors[i + 1]?.endpoint ?? this.endpoint, this.options.timeoutMs);
      }
      const login = await this.login(sock, true);
      // The jump connections serve this one only: they close with it.
      void login.whenClosed.then(endHops);
      const sftp = await openSftp(login, this.endpoint, this.options.timeoutMs);
      watchRequests(sftp, login.client, this.endpoint, this.options.timeoutMs);
      packRequests(sftp);
      if (first) traceSftpStart(this.trace, sftp, this.endpoint.label);
      return {
        sftp,
        client: login.client,
        closed: login.closed,
        whenClosed: login.whenClosed,
        posixRename: typeof (sftp as unknown as { _extensions?: Record<string, string> })._extensions?.['posix-rename@openssh.com'] === 'string',
        end: () => {
          login.client.end();
          endHops();
        },
      };
    } catch (err) {
      endHops();
      throw err;
    }
  }

  /**
   * Logs in to this endpoint, over `sock` when given (a jump host's forwarded channel), else over
   * a socket of its own: with the receive ring when `ring` (see ringSocket), else ssh2's.
   */
  private async login(sock?: Duplex, ring = false): Promise<Login> {
    const { endpoint, options } = this;
    const knownName = knownHostsName(endpoint.host, endpoint.port);
    const known = await options.knownHosts.keysFor(knownName);
    let hostKeyProblem: AgentError | null = null;
    let recordKey: Buffer | null = null;

    const methods = this.authMethods();
    const attempts = new LoginAttempts();
    const trace = this.trace;
    const { label } = endpoint;
    let last: { method: string; what: string } | null = null;
    /** The host key against known_hosts: true to go on (a problem is kept for the error). */
    const judgeKey = (key: Buffer): boolean => {
      const judged = judgeHostKey(known, key);
      const presented = `${keyTypeOf(key)} ${fingerprintOf(key)}`;
      if (judged.verdict === 'known') {
        trace(1, `${label}: host key ${presented} matches ${judged.entry.file}:${judged.entry.line}`);
        return true;
      }
      if (judged.verdict === 'revoked') {
        hostKeyProblem = new AgentError('HOST_KEY', `the host key of ${knownName} (${presented}) is marked @revoked in ${judged.entry.file}:${judged.entry.line}: refused`);
        return false;
      }
      if (judged.verdict === 'changed') {
        hostKeyProblem = changedHostKey(knownName, key, judged.stored);
        return false;
      }
      if (!options.acceptNew) {
        hostKeyProblem = new AgentError('HOST_KEY', `the host key of ${knownName} is not known (${presented}): check it with the server's administrator, then run again with --accept-new to trust it`);
        return false;
      }
      // Recorded once the key exchange has proved the server holds it (see below).
      trace(1, `${label}: host key ${presented} is not known: trusted on first use (--accept-new)`);
      recordKey = key;
      return true;
    };
    let gateOpen = options.gate === undefined;
    void options.gate?.passed.then(() => (gateOpen = true), () => undefined);
    const client = new Client();
    // The handshake and login have a deadline of ours, not ssh2's readyTimeout: it stops while a
    // passphrase or password is asked for (a person may take their time), and starts again after.
    const deadline = new Deadline(options.timeoutMs);
    const config: ConnectConfig = {
      host: endpoint.host,
      port: endpoint.port,
      username: endpoint.user,
      readyTimeout: 0,
      keepaliveInterval: SSH.keepaliveIntervalMs,
      keepaliveCountMax: SSH.keepaliveCountMax,
      algorithms: { cipher: [...SSH.ciphers] as never, serverHostKey: this.hostKeyAlgorithms(known) as never },
      // Called during key exchange, before the first authentication request is sent, and again at
      // each new key exchange. While the gate is shut (the license check, made while the TCP
      // connection and key exchange went ahead) it answers once the gate opens, with a copy of the
      // key: the key is a view of the receive ring, which moves on meanwhile. Once the gate is open
      // it answers at once, as ssh2 expects of a key exchange renewing the keys of a busy connection.
      hostVerifier: ((key: Buffer, verify: (trusted: boolean) => void): boolean | undefined => {
        if (gateOpen) return judgeKey(key);
        const presented = Buffer.from(key);
        options.gate!.passed.then(() => verify(judgeKey(presented)), () => verify(false));
        return undefined;
      }) as ConnectConfig['hostVerifier'],
      authHandler: (methodsLeft, partial, next) => {
        // First "none", as OpenSSH does: the server's answer lists the methods it accepts, so
        // nobody is asked for a password that the server would not take anyway.
        if (methodsLeft === null) return next({ type: 'none', username: endpoint.user });
        if (last) trace(1, `${label}: ${last.method} ${last.what}: ${partial ? 'accepted, and the server asks for more' : 'refused'}`);
        else trace(1, `${label}: the server accepts ${methodsLeft.join(', ') || 'no login method'}`);
        attempts.accepted ??= [...methodsLeft];
        const { accepted } = attempts;
        void (async () => {
          while (methods.length > 0) {
            const { needs, name, offer } = methods.shift()!;
            if (!methodsLeft.includes(needs)) {
              if (!accepted.includes(needs)) attempts.notAccepted.push(name === needs ? name : `${name} (${needs})`);
              trace(1, `${label}: not offering ${name}: the server does not accept ${needs}${accepted.includes(needs) ? ' any more' : ''}`);
              continue;
            }
            deadline.pause();
            const offered = await offer(attempts).finally(() => deadline.resume());
            if (!offered) continue;
            last = { method: needs, what: offered.what };
            attempts.tried.push(last);
            trace(1, `${label}: trying ${needs} ${offered.what}`);
            return next(offered.method);
          }
          return next(false as never);
        })().catch(() => next(false as never));
      },
    };

    // --accept-new: the key is recorded when the key exchange has succeeded (the server has signed
    // with it), whether or not the login then does, as OpenSSH does: a wrong password is no reason
    // to meet the same host as a stranger next time. ssh2 asks hostVerifier before it checks the
    // signature, so 'handshake' (kex done) is the moment, not hostVerifier.
    let recording: Promise<void> | null = null;
    client.once('handshake', (negotiated: { kex?: string; serverHostKey?: string; cs?: { cipher?: string; mac?: string } }) => {
      // The server's software version is its own text: the notice escapes it.
      trace(1, `${label}: server software ${String((client as unknown as { _remoteVer?: unknown })._remoteVer ?? 'unknown')}`);
      trace(2, `${label}: key exchange ${negotiated.kex ?? '?'}, host key algorithm ${negotiated.serverHostKey ?? '?'}, cipher ${negotiated.cs?.cipher ?? '?'}${negotiated.cs?.mac ? `, mac ${negotiated.cs.mac}` : ''} (${sshCrypto.bindingAvailable ? 'ssh2\'s OpenSSL binding' : 'JavaScript: ssh2\'s OpenSSL binding is not loaded'})`);
      if (recordKey && !this.hostKeyRecorded) {
        this.hostKeyRecorded = true;
        recording = this.recordHostKey(knownName, recordKey);
      }
    });

    const handshake = new Promise<Login>((resolve, reject) => {
      let settled = false;
      let isClosed = false;
      let markClosed: () => void = () => {};
      const whenClosed = new Promise<void>((r) => (markClosed = r));
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        deadline.stop();
        client.end();
        reject(err);
      };
      deadline.start(() => {
        // Destroyed first: `end` would only half-close the socket, and a silent server keeps it open.
        client.destroy();
        fail(new AgentError('CONNECTION', `cannot connect to ${endpoint.label}: no answer in ${options.timeoutMs / 1000} s (the server did not finish the handshake and login)`));
      });
      client.on('error', (err: Error & { level?: string; code?: string }) => {
        if (settled) return; // after ready: 'close' follows and the channel's requests fail
        if (hostKeyProblem) return fail(hostKeyProblem);
        if (err.level === 'client-authentication') {
          const hint = endpoint.isJump
            ? 'give it an IdentityFile in ~/.ssh/config, or run on a terminal to be asked its password; -i and FERRY_PASSWORD are the destination\'s'
            : 'use -i KEY or set FERRY_PASSWORD';
          if (last) trace(1, `${label}: ${last.method} ${last.what}: refused`);
          return fail(new AgentError('AUTH', `${endpoint.label} refused the login (${attempts.describe(`no key, agent or password to offer: ${hint}`)})`));
        }
        if (err.level === 'client-timeout') return fail(new AgentError('CONNECTION', `cannot connect to ${endpoint.label}: no answer in time`));
        const unknownName = err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN';
        const reason = err.code === 'ECONNREFUSED' ? 'connection refused' : unknownName ? `unknown host name${endpoint.didYouMean ? `: did you mean ${endpoint.didYouMean}?` : ''}` : err.message;
        fail(new AgentError('CONNECTION', `cannot connect to ${endpoint.label}: ${reason}`));
      });
      client.on('close', () => {
        isClosed = true;
        markClosed();
        if (!settled) fail(hostKeyProblem ?? new AgentError('CONNECTION', `the connection to ${endpoint.label} closed during the handshake`));
      });
      client.on('ready', () => {
        trace(1, last ? `${label}: logged in with ${last.method} ${last.what}` : `${label}: logged in without credentials`);
        settled = true;
        deadline.stop();
        resolve({ client, closed: () => isClosed, whenClosed });
      });
      // The socket is made here, with the client's handlers: an early failure (an unknown host
      // name) has a listener.
      if (sock) config.sock = sock;
      else if (ring) config.sock = ringSocket(endpoint);
      client.connect(config);
      // The gate's signal ends the connection until it is made (or has failed).
      const signal = options.gate?.signal;
      const abort = () => client.destroy();
      if (signal?.aborted) client.destroy();
      else if (signal) {
        signal.addEventListener('abort', abort, { once: true });
        whenClosed.finally(() => signal.removeEventListener('abort', abort)).catch(() => undefined);
        client.once('ready', () => signal.removeEventListener('abort', abort));
      }
      // Without TCP_NODELAY, Nagle holds back each small request packet until the previous data is
      // acknowledged: pipelined SFTP stalls on delayed ACKs (downloads measured 3× slower).
      client.setNoDelay(true);
    });

    try {
      return await handshake;
    } finally {
      await recording;
    }
  }

  /** Trust on first use; a file that cannot be written is said, and the connection goes on. */
  private async recordHostKey(knownName: string, key: Buffer): Promise<void> {
    const { knownHosts, notice } = this.options;
    try {
      await knownHosts.record(knownName, key);
      notice(`added the host key of ${knownName} (${keyTypeOf(key)} ${fingerprintOf(key)}) to ${knownHosts.ownFile}`);
    } catch (err) {
      notice(`could not record the host key of ${knownName} in ${knownHosts.ownFile}: ${(err as Error).message}`);
    }
  }
}

/**
 * The refusal of a key that matches none on file for a host that has some. When the server
 * showed another type than those on file, it could not (or would not) present a known one,
 * although ferry asked for the known types first (hostKeyAlgorithms): say so.
 */
function changedHostKey(knownName: string, presented: Buffer, stored: KnownKey[]): AgentError {
  const shown = `${keyTypeOf(presented)} ${fingerprintOf(presented)}`;
  const onFile = stored.map((k) => `${k.keyType} ${fingerprintOf(k.key)} (${k.file}:${k.line})`).join(', ');
  const otherType = !stored.some((k) => k.keyType === keyTypeOf(presented));
  const why = otherType ? ' (the server offered no key of a type on file for it)' : '';
  return new AgentError('HOST_KEY', `the host key of ${knownName} has CHANGED: the server shows ${shown}, known_hosts has ${onFile}${why}; someone may be intercepting the connection, or the server was reinstalled: refused (remove the old lines once you have checked the new key with its administrator)`);
}

/**
 * The TCP connection to a server reached directly, reading into a ring of reused buffers rather
 * than a new 64 KiB buffer per read (Node's default). With a new buffer per read, a 512 MiB
 * download allocated 512 MiB of buffers that V8 had to collect (a third of ferry's CPU); with the
 * ring, and reads sized to fit one packet (RemoteFs.readChunkBytes), it measured 20 % faster.
 *
 * Reuse is safe only if nothing keeps a view of received bytes for long, since the ring comes
 * round after `RECEIVE.ringBytes`. ssh2 handles each packet as it arrives: file data is copied
 * into our buffers, names and attributes become strings and numbers, a packet split over reads
 * is gathered in a buffer of its own. Views that live on are the ones in our hands: file and
 * folder handles (RemoteFs copies them at once) and the host key (copied in the host-key check).
 * The server's key-exchange message lives for one key exchange, a few small packets after it.
 * A jump host's connection does not use the ring: it carries other connections' bytes, which
 * stream buffers may hold for longer.
 */
function ringSocket(endpoint: Endpoint): Socket {
  const ring = Buffer.allocUnsafe(RECEIVE.ringBytes);
  let at = 0;
  const socket: Socket = connectSocket({
    host: endpoint.host,
    port: endpoint.port,
    onread: {
      // Asked for the buffer of the next read, after each read.
      buffer: () => {
        if (at + RECEIVE.readBytes > ring.length) at = 0;
        return ring.subarray(at, at + RECEIVE.readBytes);
      },
      callback: (bytes: number, buffer: Uint8Array) => {
        at += bytes;
        socket.emit('data', Buffer.from(buffer.buffer, buffer.byteOffset, bytes));
        return true;
      },
    },
  });
  coalesceWrites(socket);
  return socket;
}

/**
 * The packets ssh2 sends in one turn of the event loop leave in one system call: ssh2 writes each
 * packet on its own, and the answers that one socket read brings (a dozen small files' opens and
 * closes) each send a request or two. A 512 MiB download made 17,400 `write` calls before and 1,200
 * after (strace), and small-file runs spent about a fifth less system time; their wall time moved
 * less than this machine's noise (identical runs differ by up to 7 %, median of 6).
 */
function coalesceWrites(socket: Socket): void {
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  socket.write = ((...args: unknown[]) => {
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    return write(...args);
  }) as Socket['write'];
}

/** A logged-in SSH connection, before any channel is opened. */
interface Login {
  client: InstanceType<typeof Client>;
  closed(): boolean;
  whenClosed: Promise<void>;
}

function openSftp(login: Login, endpoint: Endpoint, timeoutMs: number): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      login.client.destroy();
      reject(new AgentError('CONNECTION', `${endpoint.label} did not start SFTP in ${timeoutMs / 1000} s`));
    }, timeoutMs);
    login.client.sftp((err, sftp) => {
      clearTimeout(timer);
      if (err) {
        login.client.end();
        return reject(new AgentError('CONNECTION', `${endpoint.label} refused the SFTP subsystem: ${err.message}`));
      }
      sftp.on('error', () => undefined);
      watchChannel(sftp, login.client);
      resolve(sftp);
    });
  });
}

/** A channel from the jump host `hop` to the next host: the next connection runs inside it. */
function forwardThrough(hop: Login, hopEndpoint: Endpoint, next: Endpoint, timeoutMs: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      hop.client.destroy();
      reject(new AgentError('CONNECTION', `${hopEndpoint.label} did not open a connection to ${next.host}:${next.port} in ${timeoutMs / 1000} s`));
    }, timeoutMs);
    hop.client.forwardOut('127.0.0.1', 0, next.host, next.port, (err, channel) => {
      clearTimeout(timer);
      if (err) return reject(new AgentError('CONNECTION', `${hopEndpoint.label} could not open a connection to ${next.host}:${next.port}: ${err.message}`));
      resolve(channel);
    });
  });
}

/** A timer that can be paused (while a person is asked something) and started again from zero. */
class Deadline {
  private timer: NodeJS.Timeout | undefined;
  private onExpire: (() => void) | undefined;

  constructor(private readonly ms: number) {}

  start(onExpire: () => void): void {
    this.onExpire = onExpire;
    this.resume();
  }

  pause(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  resume(): void {
    this.pause();
    if (this.onExpire) this.timer = setTimeout(this.onExpire, this.ms);
  }

  stop(): void {
    this.pause();
    this.onExpire = undefined;
  }
}

/** ssh2's table of a channel's requests waiting for their answer, by request id. */
type PendingRequests = Record<string, { cb?: (err: Error) => void }>;

/**
 * The deadline of every SFTP request, without a timer per request: one watchdog per connection
 * looks a few times per deadline at the oldest request still waiting for its answer. ssh2 keeps
 * them in an object by id, and ids increase, so the first key is the oldest (integer keys come in
 * ascending order). A request that is still the oldest a whole deadline after it was first seen
 * has waited at least that long: the server has stopped answering, though the connection may be
 * alive (keepalives answered). Counted from when a request became the oldest, not from when it
 * was sent, a slow link with thousands of requests queued is no stall: servers answer in order,
 * and each answer makes another request the oldest. The waiting requests then fail as a lost
 * connection, in words that say so, and the connection is closed: the engine retries and resumes
 * on a new one. The transfer path pays nothing for it, no timer and no bookkeeping per request
 * (the performance of the pipeline is in README's transfer benchmark).
 */
function watchRequests(sftp: SFTPWrapper, client: InstanceType<typeof Client>, endpoint: Endpoint, timeoutMs: number): void {
  const waiting = () => (sftp as unknown as { _requests: PendingRequests })._requests;
  let oldest: string | undefined;
  let since = 0;
  const timer = setInterval(() => {
    let first: string | undefined;
    for (const id in waiting()) {
      first = id;
      break;
    }
    const now = Date.now();
    if (first !== oldest) {
      oldest = first;
      since = now;
      return;
    }
    if (first === undefined || now - since < timeoutMs) return;
    clearInterval(timer);
    const stalled = new ServerStalled(`${endpoint.label} stopped answering: no reply to an SFTP request in ${timeoutMs / 1000} s`);
    markChannelClosed(sftp);
    const requests = waiting();
    (sftp as unknown as { _requests: PendingRequests })._requests = {};
    for (const id of Object.keys(requests)) requests[id]!.cb?.(stalled);
    client.destroy();
  }, Math.max(100, Math.min(SSH.watchdogMaxTickMs, timeoutMs / 4)));
  timer.unref();
  client.once('close', () => clearInterval(timer));
}

/**
 * A few connections to one endpoint that transfer workers share: worker i uses slot i mod size.
 * A slot whose connection is lost is reconnected by the next worker that asks for it.
 */
export class ConnectionPool {
  private readonly slots: (Promise<SshSession> | null)[];
  private ended = false;

  constructor(readonly connector: Connector, size: number, first?: SshSession) {
    this.slots = Array.from({ length: Math.max(1, size) }, () => null);
    if (first) this.slots[0] = Promise.resolve(first);
  }

  get size(): number {
    return this.slots.length;
  }

  async session(slot: number): Promise<SshSession> {
    if (this.ended) throw new ConnectionLost('the transfer was stopped');
    const index = slot % this.slots.length;
    const current = this.slots[index];
    if (current) {
      const session = await current.catch(() => null);
      if (session && !session.closed() && channelOpen(session.sftp)) return session;
      session?.end();
      if (this.slots[index] !== current) return this.session(slot);
    }
    const next = this.connector.connect();
    this.slots[index] = next;
    next.catch(() => {
      if (this.slots[index] === next) this.slots[index] = null;
    });
    return next;
  }

  end(): void {
    this.ended = true;
    for (const slot of this.slots) void slot?.then((s) => s.end(), () => undefined);
  }
}
