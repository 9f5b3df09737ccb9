import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import ssh2 from 'ssh2';
import type { Attributes, Connection, SFTPWrapper } from 'ssh2';

const { Server, utils } = ssh2;
const { OPEN_MODE, STATUS_CODE } = utils.sftp;

/**
 * A hostile SFTP server for tests: ssh2's Server in this process, on a random loopback port, with
 * a generated host key, accepting any password or key. It speaks enough SFTP v3 for ferry to list,
 * download and upload against a small in-memory tree, and can misbehave on request: crafted names
 * in folder listings, a chosen STATUS message text, and stalls (the SSH connection stays alive,
 * SFTP requests go unanswered). A test peer, not a product: no permissions, one user.
 */

export interface StallOptions {
  /** Answer this many SFTP requests on a connection, then none (default 0: none at all). */
  afterRequests?: number;
  /** Stall only READ and WRITE requests (after `afterRequests` of them); everything else is answered. */
  onlyData?: boolean;
  /** Stall only the first N connections (default: every one). */
  connections?: number;
}

export interface HostileOptions {
  /** Absolute path → contents. A path ending in `/` is an empty folder; parents are implied. */
  files: Record<string, string | Buffer>;
  /** Extra names that READDIR of a folder lists, each as a regular file of 5 bytes. */
  craftedNames?: Record<string, string[]>;
  /** The message text of every failure STATUS. */
  statusMessage?: string;
  stall?: StallOptions;
  /**
   * Announce and answer `check-file-handle` and `check-file-name` (draft-ietf-secsh-filexfer-
   * extensions) with real SHA-256 digests, as ProFTPD does; `refuse`: announce them, then answer
   * every one OP_UNSUPPORTED (recorded all the same); without it they are unsupported.
   */
  checkFile?: boolean | 'refuse';
  /**
   * Carry out READ and WRITE requests a moment after the requests behind them, as a server with a
   * pool of threads for data does (ProFTPD, gesftpserver): a CLOSE sent behind writes in flight
   * is taken first, and the writes then fail on a closed handle.
   */
  reorderData?: boolean;
  /** RENAME requests whose source path ends with this fail (a part file that cannot take its place). */
  refuseRenamesOf?: string;
  /** Open file handles per session at most: an OPEN beyond fails with FAILURE ("too many open files"). */
  maxOpenHandles?: number;
  /** The software version in the server's SSH identification line (set at start only). */
  ident?: string;
  /** The longname READDIR sends with each entry (default: the bare name, which reads as no `ls -l` line). */
  longname?: (filename: string, attrs: Attributes) => string;
  /**
   * A server that gives way under load: READ and WRITE take a moment (so that those a client
   * pipelines are in flight together), and one that arrives while this many are already in
   * flight on the session fails with a plain FAILURE.
   */
  failDataRequestsBeyond?: number;
  /** The same, but the server drops the whole connection instead. */
  dropConnectionBeyond?: number;
  /**
   * Announce `limits@openssh.com` (as OpenSSH 8.8+ does) and answer it with these; the server
   * holds to them: an OPEN beyond `maxOpenHandles` fails ("too many open files"), and a READ or
   * WRITE longer than its limit fails.
   */
  limits?: { maxOpenHandles: number; maxReadLen?: number; maxWriteLen?: number };
}

/** A check-file request the server was asked (`target`: the file's path). */
export interface CheckFileRequest {
  request: 'check-file-handle' | 'check-file-name';
  target: string;
  algorithms: string;
  start: number;
  length: number;
  blockSize: number;
}

type Node = { type: 'dir'; mtime: number } | { type: 'file'; data: Buffer; mtime: number; mode: number };

export interface HostileSftp {
  port: number;
  /** `sftp://ferry@127.0.0.1:PORT` + path. */
  url(path: string): string;
  /** The known_hosts line of the server's key, for `[127.0.0.1]:PORT`. */
  knownHostsLine(): string;
  /** The contents of a file in the tree (uploads land here), or undefined. */
  file(path: string): Buffer | undefined;
  /** Every path in the tree, sorted (folders end in `/`). */
  paths(): string[];
  /** Change the misbehaviour for connections made from now on. */
  set(options: Partial<Omit<HostileOptions, 'files'>>): void;
  /** SSH connections accepted so far. */
  readonly connections: number;
  /** The method of every authentication request received (`none` included), in order. */
  readonly authentications: string[];
  /** READ requests answered so far, on every connection. */
  readonly reads: number;
  /** The check-file requests received, in order. */
  readonly checkFileRequests: CheckFileRequest[];
  /** The most file handles one session had open at once, and the longest READ and WRITE asked. */
  readonly peakOpenFiles: number;
  readonly longestRead: number;
  readonly longestWrite: number;
  /** READ and WRITE requests failed, and connections dropped, for being over the load allowed. */
  readonly overloadFailures: number;
  readonly overloadDrops: number;
  /** OPEN requests refused for being over the open handles allowed. */
  readonly refusedOpens: number;
  close(): Promise<void>;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const T0 = 1_700_000_000;

/**
 * An ed25519 host key. About one key in 200 that ssh2 generates is one its own parser refuses
 * ("Malformed OpenSSH private key"): a new one is made until it parses.
 */
function generateHostKey(): { private: string; public: string } {
  for (;;) {
    const key = utils.generateKeyPairSync('ed25519');
    if (!(utils.parseKey(key.private) instanceof Error)) return key;
  }
}

export async function startHostileSftp(options: HostileOptions): Promise<HostileSftp> {
  const hostKey = generateHostKey();
  const tree = new Map<string, Node>([['/', { type: 'dir', mtime: T0 }]]);
  const addParents = (path: string) => {
    for (let dir = posix.dirname(path); !tree.has(dir); dir = posix.dirname(dir)) tree.set(dir, { type: 'dir', mtime: T0 });
  };
  for (const [path, content] of Object.entries(options.files)) {
    if (path.endsWith('/')) {
      const dir = posix.normalize(path.slice(0, -1) || '/');
      tree.set(dir, { type: 'dir', mtime: T0 });
      addParents(dir);
    } else {
      tree.set(path, { type: 'file', data: Buffer.from(content), mtime: T0, mode: 0o644 });
      addParents(path);
    }
  }
  let behaviour: Omit<HostileOptions, 'files'> = { ...options };
  let connections = 0;
  let reads = 0;
  let peakOpenFiles = 0;
  let longestRead = 0;
  let longestWrite = 0;
  let overloadFailures = 0;
  let overloadDrops = 0;
  let refusedOpens = 0;
  const checkFileRequests: CheckFileRequest[] = [];
  const authentications: string[] = [];
  const clients = new Set<Connection>();

  const server = new Server({ hostKeys: [hostKey.private], ...(options.ident !== undefined ? { ident: options.ident } : {}) }, (client) => {
    connections++;
    clients.add(client);
    const stall = behaviour.stall && (behaviour.stall.connections === undefined || connections <= behaviour.stall.connections) ? behaviour.stall : null;
    client.on('error', () => undefined);
    client.on('close', () => clients.delete(client));
    client.on('authentication', (ctx) => {
      authentications.push(ctx.method);
      if (ctx.method === 'password' || ctx.method === 'publickey') return ctx.accept();
      ctx.reject(['password', 'publickey']);
    });
    client.on('session', (accept) => {
      accept().on('sftp', (acceptSftp) => {
        const sftp = acceptSftp();
        const extensions: Record<string, string> = {};
        if (behaviour.checkFile) extensions['check-file'] = 'sha256';
        if (behaviour.limits) extensions['limits@openssh.com'] = '1';
        if (Object.keys(extensions).length > 0) announce(sftp, extensions);
        serveSftp(sftp, stall, () => client.end());
      });
    });
  });

  /** Sends a raw SFTP packet (ssh2's server has no call for an extended reply). */
  function sendRaw(sftp: SFTPWrapper, packet: Buffer): void {
    const raw = sftp as unknown as { outgoing: { id: number; window: number }; _protocol: { channelData(id: number, data: Buffer): void } };
    raw.outgoing.window -= packet.length;
    raw._protocol.channelData(raw.outgoing.id, packet);
  }

  const sshString = (value: string | Buffer) => {
    const bytes = Buffer.from(value);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    return Buffer.concat([length, bytes]);
  };
  const packetOf = (type: number, body: Buffer[]) => {
    const head = Buffer.alloc(5);
    head.writeUInt32BE(1 + body.reduce((sum, b) => sum + b.length, 0));
    head[4] = type;
    return Buffer.concat([head, ...body]);
  };

  /** Puts extensions into the VERSION packet, which ssh2's server sends without any. */
  function announce(sftp: SFTPWrapper, extensions: Record<string, string>): void {
    const protocol = (sftp as unknown as { _protocol: { channelData(id: number, data: Buffer): void } })._protocol;
    const original = protocol.channelData;
    const version = Buffer.alloc(4);
    version.writeUInt32BE(3);
    protocol.channelData = function (this: unknown, id: number, data: Buffer) {
      if (id === (sftp as unknown as { outgoing: { id: number } }).outgoing.id && data.length === 9 && data[4] === 2) {
        protocol.channelData = original;
        const announced = packetOf(2, [version, ...Object.entries(extensions).flatMap(([name, value]) => [sshString(name), sshString(value)])]);
        (sftp as unknown as { outgoing: { window: number } }).outgoing.window -= announced.length - data.length;
        return original.call(this, id, announced);
      }
      return original.call(this, id, data);
    };
  }

  function serveSftp(sftp: SFTPWrapper, stall: StallOptions | null, drop: () => void): void {
    const handles = new Map<number, { path: string; listing?: { filename: string; longname: string; attrs: Attributes }[] }>();
    let nextHandle = 1;
    let counted = 0;
    const failure = (id: number, code: number) => sftp.status(id, code, behaviour.statusMessage ?? 'failure');
    /** Whether to leave this request unanswered. */
    const stalls = (isData: boolean) => {
      if (!stall || (stall.onlyData && !isData)) return false;
      return ++counted > (stall.afterRequests ?? 0);
    };
    const attrsOf = (node: Node): Attributes => ({
      mode: node.type === 'dir' ? S_IFDIR | 0o755 : S_IFREG | node.mode,
      size: node.type === 'file' ? node.data.length : 4096,
      uid: 0, gid: 0, atime: node.mtime, mtime: node.mtime,
    });
    const newHandle = (path: string, listing?: { filename: string; longname: string; attrs: Attributes }[]) => {
      const id = nextHandle++;
      handles.set(id, listing ? { path, listing } : { path });
      const handle = Buffer.alloc(4);
      handle.writeUInt32BE(id);
      return handle;
    };
    const handleOf = (handle: Buffer) => (handle.length === 4 ? handles.get(handle.readUInt32BE()) : undefined);
    const fileAt = (path: string) => {
      const node = tree.get(posix.normalize(path));
      return node?.type === 'file' ? node : undefined;
    };
    const setAttrs = (path: string, attrs: Attributes) => {
      const node = tree.get(path);
      if (!node) return false;
      if (typeof attrs.mtime === 'number') node.mtime = attrs.mtime;
      if (node.type === 'file' && typeof attrs.mode === 'number') node.mode = attrs.mode & 0o7777;
      return true;
    };
    const move = (from: string, to: string, overwrite: boolean) => {
      const node = tree.get(from);
      if (!node || (!overwrite && tree.has(to)) || !tree.has(posix.dirname(to))) return false;
      tree.delete(from);
      tree.set(to, node);
      return true;
    };

    /** READ and WRITE requests received and not yet answered, on this session. */
    let dataInFlight = 0;
    const on = (event: string, isData: boolean, handler: (id: number, ...args: any[]) => void) => {
      sftp.on(event as 'OPEN', ((id: number, ...args: unknown[]) => {
        if (stalls(isData)) return;
        const { failDataRequestsBeyond, dropConnectionBeyond } = behaviour;
        if (isData && (failDataRequestsBeyond !== undefined || dropConnectionBeyond !== undefined)) {
          if (dropConnectionBeyond !== undefined && dataInFlight >= dropConnectionBeyond) {
            overloadDrops++;
            return drop();
          }
          if (failDataRequestsBeyond !== undefined && dataInFlight >= failDataRequestsBeyond) {
            overloadFailures++;
            return sftp.status(id, STATUS_CODE.FAILURE, 'failure');
          }
          // A moment per request: what the client pipelines is in flight here together.
          dataInFlight++;
          setTimeout(() => {
            dataInFlight--;
            handler(id, ...args);
          }, 3);
          return;
        }
        if (isData && behaviour.reorderData) setImmediate(() => handler(id, ...args));
        else handler(id, ...args);
      }) as never);
    };
    const fileHandles = () => [...handles.values()].filter((h) => !h.listing).length;
    on('REALPATH', false, (id, path: string) => {
      const absolute = posix.resolve('/', path === '' ? '.' : path);
      sftp.name(id, [{ filename: absolute, longname: absolute, attrs: {} as Attributes }]);
    });
    const stat = (id: number, path: string) => {
      const node = tree.get(posix.normalize(path));
      if (!node) return failure(id, STATUS_CODE.NO_SUCH_FILE);
      sftp.attrs(id, attrsOf(node));
    };
    on('STAT', false, stat);
    on('LSTAT', false, stat);
    on('OPENDIR', false, (id, path: string) => {
      const dir = posix.normalize(path);
      if (tree.get(dir)?.type !== 'dir') return failure(id, STATUS_CODE.NO_SUCH_FILE);
      const entry = (filename: string, node: Node) => ({ filename, longname: behaviour.longname?.(filename, attrsOf(node)) ?? filename, attrs: attrsOf(node) });
      const listing = [entry('.', tree.get(dir)!), entry('..', tree.get(posix.dirname(dir))!)];
      for (const [path, node] of tree) if (path !== '/' && posix.dirname(path) === dir) listing.push(entry(posix.basename(path), node));
      const crafted: Node = { type: 'file', data: Buffer.from('evil\n'), mtime: T0, mode: 0o644 };
      for (const name of behaviour.craftedNames?.[dir] ?? []) listing.push(entry(name, crafted));
      sftp.handle(id, newHandle(dir, listing));
    });
    on('READDIR', false, (id, handle: Buffer) => {
      const open = handleOf(handle);
      if (!open?.listing) return failure(id, STATUS_CODE.FAILURE);
      if (open.listing.length === 0) return sftp.status(id, STATUS_CODE.EOF);
      sftp.name(id, open.listing);
      open.listing = [];
    });
    on('OPEN', false, (id, path: string, flags: number) => {
      const maxOpen = Math.min(behaviour.maxOpenHandles ?? Infinity, behaviour.limits?.maxOpenHandles ?? Infinity);
      if (handles.size >= maxOpen) {
        refusedOpens++;
        return sftp.status(id, STATUS_CODE.FAILURE, 'too many open files');
      }
      const target = posix.normalize(path);
      if (flags & OPEN_MODE.WRITE) {
        const existing = fileAt(target);
        if (tree.get(posix.dirname(target))?.type !== 'dir' || tree.get(target)?.type === 'dir') return failure(id, STATUS_CODE.NO_SUCH_FILE);
        if (!existing && !(flags & OPEN_MODE.CREAT)) return failure(id, STATUS_CODE.NO_SUCH_FILE);
        if (existing && flags & OPEN_MODE.EXCL) return failure(id, STATUS_CODE.FAILURE);
        if (!existing || flags & OPEN_MODE.TRUNC) tree.set(target, { type: 'file', data: Buffer.alloc(0), mtime: T0, mode: existing?.mode ?? 0o644 });
      } else if (!fileAt(target)) {
        return failure(id, STATUS_CODE.NO_SUCH_FILE);
      }
      sftp.handle(id, newHandle(target));
      peakOpenFiles = Math.max(peakOpenFiles, fileHandles());
    });
    on('READ', true, (id, handle: Buffer, offset: number, length: number) => {
      reads++;
      longestRead = Math.max(longestRead, length);
      if (behaviour.limits?.maxReadLen !== undefined && length > behaviour.limits.maxReadLen) return sftp.status(id, STATUS_CODE.FAILURE, 'read longer than max-read-length');
      const open = handleOf(handle);
      const node = open && fileAt(open.path);
      if (!node) return failure(id, STATUS_CODE.FAILURE);
      if (offset >= node.data.length) return sftp.status(id, STATUS_CODE.EOF);
      sftp.data(id, node.data.subarray(offset, Math.min(node.data.length, offset + length)));
    });
    on('WRITE', true, (id, handle: Buffer, offset: number, data: Buffer) => {
      longestWrite = Math.max(longestWrite, data.length);
      if (behaviour.limits?.maxWriteLen !== undefined && data.length > behaviour.limits.maxWriteLen) return sftp.status(id, STATUS_CODE.FAILURE, 'write longer than max-write-length');
      const open = handleOf(handle);
      const node = open && fileAt(open.path);
      if (!node) return failure(id, STATUS_CODE.FAILURE);
      const end = offset + data.length;
      if (end > node.data.length) {
        const grown = Buffer.alloc(end);
        node.data.copy(grown);
        node.data = grown;
      }
      data.copy(node.data, offset);
      sftp.status(id, STATUS_CODE.OK);
    });
    on('FSTAT', false, (id, handle: Buffer) => {
      const open = handleOf(handle);
      const node = open && tree.get(open.path);
      if (!node) return failure(id, STATUS_CODE.FAILURE);
      sftp.attrs(id, attrsOf(node));
    });
    on('FSETSTAT', false, (id, handle: Buffer, attrs: Attributes) => {
      const open = handleOf(handle);
      sftp.status(id, open && setAttrs(open.path, attrs) ? STATUS_CODE.OK : STATUS_CODE.FAILURE);
    });
    on('SETSTAT', false, (id, path: string, attrs: Attributes) => {
      if (!setAttrs(posix.normalize(path), attrs)) return failure(id, STATUS_CODE.NO_SUCH_FILE);
      sftp.status(id, STATUS_CODE.OK);
    });
    on('CLOSE', false, (id, handle: Buffer) => {
      if (handle.length !== 4 || !handles.delete(handle.readUInt32BE())) return failure(id, STATUS_CODE.FAILURE);
      sftp.status(id, STATUS_CODE.OK);
    });
    on('RENAME', false, (id, from: string, to: string) => {
      if (behaviour.refuseRenamesOf && from.endsWith(behaviour.refuseRenamesOf)) return failure(id, STATUS_CODE.PERMISSION_DENIED);
      if (!move(posix.normalize(from), posix.normalize(to), false)) return failure(id, STATUS_CODE.FAILURE);
      sftp.status(id, STATUS_CODE.OK);
    });
    /** check-file: SHA-256 of each block of the range, as the draft says (length 0: to the end). */
    const checkFile = (id: number, name: 'check-file-handle' | 'check-file-name', data: Buffer) => {
      let p = 0;
      const string = () => {
        const length = data.readUInt32BE(p);
        const value = data.subarray(p + 4, p + 4 + length);
        p += 4 + length;
        return value;
      };
      const target = string();
      const algorithms = string().toString();
      const start = Number(data.readBigUInt64BE(p));
      const length = Number(data.readBigUInt64BE(p + 8));
      const blockSize = data.readUInt32BE(p + 16);
      const path = name === 'check-file-handle' ? handleOf(target)?.path : posix.normalize(target.toString());
      checkFileRequests.push({ request: name, target: path ?? '?', algorithms, start, length, blockSize });
      const node = path === undefined ? undefined : fileAt(path);
      if (!node) return failure(id, STATUS_CODE.NO_SUCH_FILE);
      if (behaviour.checkFile === 'refuse' || !algorithms.split(',').includes('sha256')) return failure(id, STATUS_CODE.OP_UNSUPPORTED);
      const range = node.data.subarray(start, length === 0 ? node.data.length : start + length);
      const block = blockSize === 0 ? Math.max(range.length, 1) : blockSize;
      const digests: Buffer[] = [];
      for (let at = 0; at < range.length; at += block) digests.push(createHash('sha256').update(range.subarray(at, at + block)).digest());
      const requestId = Buffer.alloc(4);
      requestId.writeUInt32BE(id);
      // As ProFTPD 1.3.8 answers: the algorithm, then the digests.
      sendRaw(sftp, packetOf(201, [requestId, sshString('sha256'), ...digests]));
    };
    on('EXTENDED', false, (id, name: string, data: Buffer | undefined) => {
      if ((name === 'check-file-handle' || name === 'check-file-name') && behaviour.checkFile && data) return checkFile(id, name, data);
      if (name === 'limits@openssh.com' && behaviour.limits) {
        // max-packet-length, max-read-length, max-write-length, max-open-handles (0: no limit).
        const { maxOpenHandles, maxReadLen = 0, maxWriteLen = 0 } = behaviour.limits;
        const values = Buffer.alloc(32);
        [maxReadLen === 0 && maxWriteLen === 0 ? 0 : 34_000, maxReadLen, maxWriteLen, maxOpenHandles].forEach((value, i) => values.writeBigUInt64BE(BigInt(value), i * 8));
        const requestId = Buffer.alloc(4);
        requestId.writeUInt32BE(id);
        return sendRaw(sftp, packetOf(201, [requestId, values]));
      }
      if (name !== 'posix-rename@openssh.com' || !data) return failure(id, STATUS_CODE.OP_UNSUPPORTED);
      const fromLength = data.readUInt32BE(0);
      const from = data.toString('utf8', 4, 4 + fromLength);
      const to = data.toString('utf8', 8 + fromLength, 8 + fromLength + data.readUInt32BE(4 + fromLength));
      if (!move(posix.normalize(from), posix.normalize(to), true)) return failure(id, STATUS_CODE.FAILURE);
      sftp.status(id, STATUS_CODE.OK);
    });
    on('REMOVE', false, (id, path: string) => {
      const target = posix.normalize(path);
      if (!fileAt(target)) return failure(id, STATUS_CODE.NO_SUCH_FILE);
      tree.delete(target);
      sftp.status(id, STATUS_CODE.OK);
    });
    on('MKDIR', false, (id, path: string) => {
      const target = posix.normalize(path);
      if (tree.has(target) || tree.get(posix.dirname(target))?.type !== 'dir') return failure(id, STATUS_CODE.FAILURE);
      tree.set(target, { type: 'dir', mtime: T0 });
      sftp.status(id, STATUS_CODE.OK);
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    url: (path) => `sftp://ferry@127.0.0.1:${port}${path}`,
    knownHostsLine: () => `[127.0.0.1]:${port} ${hostKey.public.trim()}`,
    file: (path) => {
      const node = tree.get(path);
      return node?.type === 'file' ? Buffer.from(node.data) : undefined;
    },
    paths: () => [...tree].map(([path, node]) => (node.type === 'dir' && path !== '/' ? `${path}/` : path)).sort(),
    set: (changes) => {
      behaviour = { ...behaviour, ...changes };
    },
    get connections() {
      return connections;
    },
    authentications,
    get reads() {
      return reads;
    },
    get peakOpenFiles() {
      return peakOpenFiles;
    },
    get longestRead() {
      return longestRead;
    },
    get longestWrite() {
      return longestWrite;
    },
    get overloadFailures() {
      return overloadFailures;
    },
    get overloadDrops() {
      return overloadDrops;
    },
    get refusedOpens() {
      return refusedOpens;
    },
    checkFileRequests,
    close: () => new Promise<void>((resolve) => {
      for (const client of clients) client.end();
      server.close(() => resolve());
    }),
  };
}
