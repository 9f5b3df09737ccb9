import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Client, type SFTPWrapper } from 'ssh2';
import { packRequests, writeDirect } from '../agent/transfer/direct-write.js';
import { REAL_SERVERS } from './support/sftp-servers.js';
import type { Sshd } from './support/sshd.js';
import { folder } from './support/transfer-world.js';

/**
 * ferry's SFTP WRITE built straight into its SSH packet (agent/transfer/direct-write.ts), against
 * each real server: the bytes that arrive are the bytes sent, at any offset, many writes in flight
 * beside ssh2's own requests; an error answer reaches the caller; what it does not take (a write
 * longer than one request) it leaves to ssh2. And the requests of one turn packed into as few
 * packets as hold them (packRequests), in the order they were made.
 */

function connect(server: Sshd): Promise<{ client: Client; sftp: SFTPWrapper }> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    client.once('error', reject);
    client.once('ready', () => client.sftp((err, sftp) => (err ? reject(err) : resolve({ client, sftp }))));
    client.connect({ host: '127.0.0.1', port: server.port, username: server.user, privateKey: readFileSync(server.clientKey) });
  });
}

const call = <T>(start: (done: (err: Error | null | undefined, value?: T) => void) => void) =>
  new Promise<T>((resolve, reject) => start((err, value) => (err ? reject(err) : resolve(value as T))));

function readAt(path: string, position: number, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const out = Buffer.alloc(length);
    readSync(fd, out, 0, length, position);
    return out;
  } finally {
    closeSync(fd);
  }
}

for (const kind of REAL_SERVERS) {
  describe(`SFTP writes built into their packets, against ${kind.name}`, function () {
    this.timeout(60_000);
    let server: Sshd;
    let client: Client;
    let sftp: SFTPWrapper;
    before(async () => {
      server = await kind.start();
      ({ client, sftp } = await connect(server));
    });
    after(async () => {
      client?.end();
      await server?.stop();
    });

    it('arrive byte for byte: 64 writes in flight, between ssh2\'s own requests, and beyond 4 GiB', async () => {
      const path = join(folder(), 'direct.bin');
      const handle = await call<Buffer>((done) => sftp.open(path, 'w', done));
      const chunk = 30_000;
      const data = randomBytes(chunk * 64);
      const far = 2 ** 32 + 7;
      const tail = randomBytes(1_000);
      const writes: Promise<void>[] = [];
      const direct = (buffer: Buffer, offset: number, length: number, position: number) => writes.push(new Promise<void>((resolve, reject) => {
        assert.equal(writeDirect(sftp, handle, buffer, offset, length, position, (err) => (err ? reject(err) : resolve())), true, `the write at ${position} went directly`);
      }));
      for (let i = 0; i < 64; i++) {
        direct(data, i * chunk, chunk, i * chunk);
        // ssh2's own requests in between: their ids and the direct writes' share one sequence.
        if (i % 8 === 0) writes.push(call((done) => sftp.fstat(handle, done)).then(() => undefined));
      }
      direct(tail, 0, tail.length, far);
      await Promise.all(writes);
      await call((done) => sftp.close(handle, done));
      assert.equal(statSync(path).size, far + tail.length);
      assert.ok(readAt(path, 0, data.length).equals(data), 'the first 1.9 MB');
      assert.ok(readAt(path, far, tail.length).equals(tail), 'the write beyond 4 GiB, at its offset');
    });

    it('packs the requests of one turn into one packet, behind and ahead of a direct write, in their order', async () => {
      const packed = await connect(server);
      try {
        const s = packed.sftp as unknown as { _protocol: { channelData(c: number, d: Buffer): void }; outgoing: { id: number } };
        // What leaves through ssh2's channelData for this channel, under the packing.
        const sent: number[] = [];
        const send = s._protocol.channelData.bind(s._protocol);
        s._protocol.channelData = (channel, data) => {
          if (channel === s.outgoing.id) sent.push(data.length);
          send(channel, data);
        };
        packRequests(packed.sftp);
        const path = join(folder(), 'packed.bin');
        const handle = await call<Buffer>((done) => packed.sftp.open(path, 'w', done));
        sent.length = 0;
        const data = randomBytes(20_000);
        const mtime = 1_600_000_000;
        const answers: Promise<unknown>[] = [];
        // One turn: 20 requests, the write (which takes them into its packet), 20 more, the times
        // and the close. In order, the times come after the data, as the close does.
        for (let i = 0; i < 20; i++) answers.push(call((done) => packed.sftp.fstat(handle, done)));
        answers.push(new Promise<void>((resolve, reject) => {
          assert.equal(writeDirect(packed.sftp, handle, data, 0, data.length, 0, (err) => (err ? reject(err) : resolve())), true);
        }));
        for (let i = 0; i < 20; i++) answers.push(call((done) => packed.sftp.fstat(handle, done)));
        answers.push(call((done) => packed.sftp.futimes(handle, mtime, mtime, done)));
        answers.push(call((done) => packed.sftp.close(handle, done)));
        await Promise.all(answers);
        assert.deepEqual(sent.length, 1, `the 22 requests after the write left in one packet (${sent.join(', ')} bytes)`);
        assert.ok(readFileSync(path).equals(data));
        assert.equal(statSync(path).mtimeMs, mtime * 1000, 'the times were set after the data was written');
        // The channel's close sends what is held first: the request of the same turn is carried out.
        const again = await call<Buffer>((done) => packed.sftp.open(path, 'r+', done));
        const closing = call((done) => packed.sftp.futimes(again, mtime + 60, mtime + 60, done)).catch(() => undefined);
        packed.sftp.end();
        await closing;
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.equal(statSync(path).mtimeMs, (mtime + 60) * 1000, 'the request made before the channel closed reached the server');
      } finally {
        packed.client.end();
      }
    });

    it('hands an error answer to the caller, and leaves a write longer than one request to ssh2', async () => {
      const path = join(folder(), 'closed.bin');
      const handle = await call<Buffer>((done) => sftp.open(path, 'w', done));
      await call((done) => sftp.close(handle, done));
      const refused = await new Promise<Error | undefined>((resolve) => {
        assert.equal(writeDirect(sftp, handle, Buffer.from('late'), 0, 4, 0, resolve), true);
      });
      assert.ok(refused instanceof Error, 'a write on a closed handle fails');
      const long = Buffer.alloc((sftp as unknown as { _maxWriteLen: number })._maxWriteLen + 1);
      assert.equal(writeDirect(sftp, handle, long, 0, long.length, 0, () => undefined), false);
      assert.equal(writeDirect(sftp, handle, long, 0, 0, 0, () => undefined), false, 'nothing to write');
    });
  });
}
