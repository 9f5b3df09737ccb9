import type { SFTPWrapper } from 'ssh2';
import protocolUtils from 'ssh2/lib/protocol/utils.js';

/**
 * An SFTP WRITE built straight into its SSH packet. ssh2's `sftp.write` copies the data into a
 * request buffer of its own, then into the packet: two new buffers and two copies of every 32 KiB
 * sent, and a large upload spent about a seventh of its CPU collecting those buffers. Here the
 * request is written once, into the packet ssh2's packet writer hands out, and sent as ssh2 sends
 * every packet; its answer comes back through ssh2's table of requests, as any other's.
 *
 * Only where nothing can go differently from ssh2's own path: the channel open, nothing of ssh2's
 * queued behind its window, the window large enough to stay open after this request, the request
 * within one packet, and no key exchange under way (ssh2 queues packets then). Otherwise the write
 * goes through `sftp.write` (returns false). These are ssh2 1.17's internals, pinned by
 * package-lock.json; test/transfer-direct-write.test.ts checks the bytes that arrive.
 */

interface PacketWriter {
  allocStart: number;
  alloc(payloadLength: number): Buffer;
  finalize(packet: Buffer): Buffer;
}

interface Ssh2Protocol {
  _packetRW: { write: PacketWriter };
  _kexinit: unknown;
  channelData(channel: number, data: Buffer | string): void;
  channelEOF(channel: number): void;
  channelClose(channel: number): void;
}

interface Ssh2Sftp {
  _protocol: Ssh2Protocol;
  outgoing: { id: number; state: string; window: number; packetSize: number };
  _buffer: unknown[];
  _writeReqid: number;
  _maxWriteLen: number;
  _requests: Record<number, { cb: (err?: Error) => void }>;
}

/** RFC 4254 and the SFTP draft's numbers. */
const CHANNEL_DATA = 94;
const SSH_FXP_WRITE = 6;
const MAX_REQID = 2 ** 32 - 1;

/**
 * The SFTP requests of one turn of the event loop leave in as few SSH packets as hold them. ssh2
 * sends each request in a packet of its own; a small file's upload is five requests (open, write,
 * attributes, close, rename), and every packet costs its own allocation, padding, encryption and
 * write here, and its own decryption and channel handling in the server. Requests wait in `pending`
 * (their window already counted by ssh2) until the turn ends or the next would not fit in the
 * channel's packet size, and go out together, in the order they were made; a direct write takes
 * what is pending into its own packet, ahead of itself. Nothing else is sent on the channel out of
 * turn: its EOF and close first send what is pending.
 */
interface Packer {
  pending: Buffer[];
  bytes: number;
  /** Sends what is pending; `closing`: ahead of the channel's EOF or close, whatever ssh2 set its state to. */
  flush(closing?: boolean): void;
}

const packers = new WeakMap<object, Packer>();

export function packRequests(sftp: SFTPWrapper): void {
  const s = sftp as unknown as Ssh2Sftp;
  const protocol = s._protocol;
  const id = s.outgoing.id;
  const send = protocol.channelData.bind(protocol);
  let scheduled = false;
  const packer: Packer = {
    pending: [],
    bytes: 0,
    flush(closing = false) {
      if (packer.pending.length === 0) return;
      const data = packer.pending.length === 1 ? packer.pending[0]! : Buffer.concat(packer.pending, packer.bytes);
      packer.pending = [];
      packer.bytes = 0;
      // A channel the server closed meanwhile: ssh2 fails its requests; nothing more goes out on it.
      if (closing || s.outgoing.state === 'open') send(id, data);
    },
  };
  const endOfTurn = () => {
    scheduled = false;
    packer.flush();
  };
  protocol.channelData = (channel, data) => {
    if (channel !== id || !Buffer.isBuffer(data)) return send(channel, data);
    if (packer.bytes + data.length > s.outgoing.packetSize) packer.flush();
    packer.pending.push(data);
    packer.bytes += data.length;
    if (!scheduled) {
      scheduled = true;
      process.nextTick(endOfTurn);
    }
  };
  for (const method of ['channelEOF', 'channelClose'] as const) {
    const original = protocol[method].bind(protocol);
    protocol[method] = (channel: number) => {
      if (channel === id) packer.flush(true);
      original(channel);
    };
  }
  packers.set(sftp, packer);
}

export function writeDirect(
  sftp: SFTPWrapper, handle: Buffer, data: Buffer, offset: number, length: number, position: number, done: (err?: Error) => void,
): boolean {
  const s = sftp as unknown as Ssh2Sftp;
  const { outgoing } = s;
  const protocol = s._protocol;
  // uint32 length, byte type, uint32 id, string handle, uint64 offset, string data.
  const requestLength = 4 + 1 + 4 + 4 + handle.length + 8 + 4 + length;
  if (
    length === 0 || length > s._maxWriteLen || outgoing.state !== 'open' || s._buffer.length > 0 || protocol._kexinit !== undefined ||
    requestLength > outgoing.packetSize || outgoing.window <= requestLength
  ) return false;
  // What packRequests holds goes first, in this packet when it fits.
  const packer = packers.get(sftp);
  if (packer && packer.bytes + requestLength > outgoing.packetSize) packer.flush();
  const ahead = packer?.pending ?? [];
  const aheadBytes = packer?.bytes ?? 0;
  const writer = protocol._packetRW.write;
  let p = writer.allocStart;
  const packet = writer.alloc(1 + 4 + 4 + aheadBytes + requestLength);
  packet[p] = CHANNEL_DATA;
  packet.writeUInt32BE(outgoing.id, p + 1);
  packet.writeUInt32BE(aheadBytes + requestLength, p + 5);
  p += 9;
  for (const request of ahead) {
    packet.set(request, p);
    p += request.length;
  }
  if (packer) {
    packer.pending = [];
    packer.bytes = 0;
  }
  packet.writeUInt32BE(requestLength - 4, p);
  packet[p + 4] = SSH_FXP_WRITE;
  // ssh2's own sequence of request ids, kept unsigned (the answer's id is read as one).
  const id = (s._writeReqid = ((s._writeReqid + 1) & MAX_REQID) >>> 0);
  packet.writeUInt32BE(id, p + 5);
  packet.writeUInt32BE(handle.length, p + 9);
  p += 13;
  handle.copy(packet, p);
  p += handle.length;
  packet.writeUInt32BE(Math.floor(position / 2 ** 32), p);
  packet.writeUInt32BE(position % 2 ** 32, p + 4);
  packet.writeUInt32BE(length, p + 8);
  // A view and TypedArray#set: Buffer#copy's checks in JavaScript cost more than the copy here.
  packet.set(new Uint8Array(data.buffer, data.byteOffset + offset, length), p + 12);
  s._requests[id] = { cb: done };
  outgoing.window -= requestLength;
  protocolUtils.sendPacket(protocol, writer.finalize(packet));
  return true;
}
