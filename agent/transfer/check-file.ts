import type { SFTPWrapper } from 'ssh2';

/**
 * The `check-file-handle` and `check-file-name` requests (draft-ietf-secsh-filexfer-extensions,
 * "check-file"): the server hashes a range of a file itself, block by block, so that a part file
 * is verified without reading it back. ProFTPD's mod_sftp answers them (with `SFTPExtensions
 * +checkFile`), without announcing them in SFTP v3's VERSION: they are asked for unannounced, and
 * a channel whose server refuses once is not asked again. OpenSSH refuses (OP_UNSUPPORTED).
 * ProFTPD 1.3.8 answers, as measured, `string algorithm` then the digests (Apache MINA puts
 * `string "check-file"` first; both are read), and its last block runs to the end of the file
 * whatever length was asked: callers ask only for whole blocks where the file goes on.
 *
 * ssh2 has no call for them, and hands the body of an extended reply it does not know to nobody:
 * the request is written here, and while one is unanswered the channel's incoming bytes are also
 * framed here to catch its reply (only then: a transfer's data never passes through this code).
 */

const REQUEST_EXTENDED = 200;
const RESPONSE_EXTENDED_REPLY = 201;
const ALGORITHM = 'sha256';
const DIGEST_BYTES = 32;

export type CheckFileTarget = { handle: Buffer } | { path: string };

interface Ssh2Sftp {
  _extensions?: Record<string, string>;
  _writeReqid: number;
  _requests: Record<number, { extended?: string; cb: (err?: Error) => void }>;
  _pktLenBytes: number;
  _pktLen: number;
  _pktPos: number;
  _buffer: unknown[];
  _waitWindow: boolean;
  _protocol: { channelData(id: number, data: Buffer): void };
  outgoing: { id: number; state: string; window: number; packetSize: number };
  push(data: Buffer | null): unknown;
}

/** Channels whose server refused a check-file request: not asked again. */
const refused = new WeakSet<SFTPWrapper>();

/** Catches EXTENDED_REPLY packets by request id while any is awaited; then steps aside. */
class ReplyCatcher {
  private readonly waiting = new Map<number, (payload: Buffer) => void>();
  private lengthBytes: number;
  private length: number;
  private position: number;
  /** The packet being received, when it is an extended reply whose start was seen. */
  private packet: Buffer | null = null;
  private readonly originalPush: (data: Buffer | null) => unknown;

  constructor(private readonly sftp: Ssh2Sftp) {
    // Start where ssh2's own framing is: a packet half received belongs to nothing awaited here.
    this.lengthBytes = sftp._pktLenBytes;
    this.length = sftp._pktLen;
    this.position = sftp._pktPos;
    this.originalPush = sftp.push;
    sftp.push = (data) => {
      if (data) this.frame(data);
      return this.originalPush.call(sftp, data);
    };
  }

  await(id: number, onReply: (payload: Buffer) => void): void {
    this.waiting.set(id, onReply);
  }

  forget(id: number): boolean {
    this.waiting.delete(id);
    if (this.waiting.size > 0) return false;
    delete (this.sftp as Partial<Ssh2Sftp>).push;
    return true;
  }

  private frame(data: Buffer): void {
    let p = 0;
    while (p < data.length) {
      if (this.lengthBytes < 4) {
        while (this.lengthBytes < 4 && p < data.length) {
          this.length = (this.length * 256) + data[p++]!;
          this.lengthBytes++;
        }
        if (this.lengthBytes < 4) return;
        this.position = 0;
        if (p >= data.length) return;
      }
      const take = Math.min(this.length - this.position, data.length - p);
      if (this.position === 0 && data[p] === RESPONSE_EXTENDED_REPLY) this.packet = Buffer.allocUnsafe(this.length);
      this.packet && data.copy(this.packet, this.position, p, p + take);
      p += take;
      this.position += take;
      if (this.position < this.length) return;
      const packet = this.packet;
      this.packet = null;
      this.lengthBytes = 0;
      this.length = 0;
      this.position = 0;
      if (packet && packet.length >= 5) this.waiting.get(packet.readUInt32BE(1))?.(packet);
    }
  }
}

const catchers = new WeakMap<SFTPWrapper, ReplyCatcher>();

function sshString(value: Buffer | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  const out = Buffer.allocUnsafe(4 + bytes.length);
  out.writeUInt32BE(bytes.length, 0);
  bytes.copy(out, 4);
  return out;
}

/**
 * Writes the request as ssh2 writes its own, when the channel can take it whole now, and returns
 * its id; otherwise (the channel's window is used up by other files' data) null, and the caller
 * reads back instead.
 */
function send(sftp: Ssh2Sftp, body: Buffer[]): number | null {
  const { outgoing } = sftp;
  const id = sftp._writeReqid = (sftp._writeReqid + 1) & 0xffffffff;
  const head = Buffer.allocUnsafe(9);
  const length = body.reduce((sum, b) => sum + b.length, 5);
  head.writeUInt32BE(length, 0);
  head[4] = REQUEST_EXTENDED;
  head.writeUInt32BE(id, 5);
  const packet = Buffer.concat([head, ...body]);
  if (outgoing.state !== 'open' || sftp._buffer.length > 0 || sftp._waitWindow || outgoing.window < packet.length || packet.length > outgoing.packetSize) return null;
  outgoing.window -= packet.length;
  sftp._protocol.channelData(outgoing.id, packet);
  return id;
}

/** Parses a check-file reply: [`string "check-file"`], `string algorithm`, then the digests. */
function digestsOf(payload: Buffer, blocks: number): Buffer[] | null {
  let p = 5;
  const readString = (): Buffer | null => {
    if (p + 4 > payload.length) return null;
    const length = payload.readUInt32BE(p);
    if (p + 4 + length > payload.length) return null;
    const value = payload.subarray(p + 4, p + 4 + length);
    p += 4 + length;
    return value;
  };
  let algorithm = readString();
  if (algorithm?.toString() === 'check-file') algorithm = readString();
  if (algorithm?.toString() !== ALGORITHM) return null;
  if (payload.length - p !== blocks * DIGEST_BYTES) return null;
  return Array.from({ length: blocks }, (_, i) => Buffer.from(payload.subarray(p + i * DIGEST_BYTES, p + (i + 1) * DIGEST_BYTES)));
}

/**
 * The SHA-256 of each `blockBytes` block of [0, length) of a remote file, hashed by the server;
 * null when it cannot or will not say (refused, another algorithm, a malformed answer, a lost
 * connection): the caller then reads the bytes back (where a lost connection shows). Never rejects.
 */
export function checkFileBlocks(sftpWrapper: SFTPWrapper, target: CheckFileTarget, length: number, blockBytes: number): Promise<Buffer[] | null> {
  const sftp = sftpWrapper as unknown as Ssh2Sftp;
  const name = 'handle' in target ? 'check-file-handle' : 'check-file-name';
  if (refused.has(sftpWrapper) || length <= 0) return Promise.resolve(null);
  const range = Buffer.allocUnsafe(20);
  range.writeBigUInt64BE(0n, 0);
  range.writeBigUInt64BE(BigInt(length), 8);
  range.writeUInt32BE(blockBytes, 16);
  const blocks = Math.ceil(length / blockBytes);
  const catcher = catchers.get(sftpWrapper) ?? new ReplyCatcher(sftp);
  catchers.set(sftpWrapper, catcher);
  return new Promise((resolve) => {
    const id = send(sftp, [sshString(name), sshString('handle' in target ? target.handle : target.path), sshString(ALGORITHM), range]);
    if (id === null) {
      if (catcher.forget(-1)) catchers.delete(sftpWrapper);
      return resolve(null);
    }
    let reply: Buffer | null = null;
    catcher.await(id, (payload) => (reply = payload));
    sftp._requests[id] = {
      extended: name,
      // ssh2 calls back with nothing for a reply it does not know, with an error for a STATUS.
      cb: (err) => {
        if (catcher.forget(id)) catchers.delete(sftpWrapper);
        const digests = err || !reply ? null : digestsOf(reply, blocks);
        if (digests === null) refused.add(sftpWrapper);
        resolve(digests);
      },
    };
  });
}
