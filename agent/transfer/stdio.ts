import { posix } from 'node:path';
import { AgentError } from '../errors.js';
import type { Throttle } from './bwlimit.js';
import { PIPELINE } from './constants.js';
import { ConnectionLost, remoteError } from './errors.js';
import { CHANNEL_CLOSED, type RemoteFs } from './file-sides.js';
import { partNameFor, pipelinedRead } from './sftp-ops.js';

/**
 * `-` as a file: `ferry get host:f -` writes the file's bytes to standard output, `ferry put -
 * host:f` stores standard input in the remote file. One file, no progress and no events on stdout
 * (messages go to stderr). A stream cannot be read twice, so neither is retried or resumed: a
 * lost connection fails the command, and an upload's part file is removed, never renamed into place.
 */

/** Standard input and output as byte streams (not lines of text). */
export interface DataStreams {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
}

/** The argument that stands for standard input or output. */
export const STDIO_ARG = '-';

/**
 * Writes the remote file at `path` to `output`, pipelined as a download is, and waits for
 * `output` when it is slower (a pipe into tar). A reader that goes away early (`| head -c 100`)
 * ends the transfer quietly: that is the reader's choice, not a failure. Returns the bytes written.
 */
export async function downloadToStream(fs: RemoteFs, path: string, size: number, output: NodeJS.WritableStream, throttle?: Throttle): Promise<number> {
  let readerGone = false;
  let wake: (() => void) | null = null;
  const gone = () => {
    readerGone = true;
    wake?.();
  };
  output.once('error', gone);
  output.once('close', gone);
  const handle = await fs.open(path, 'r');
  let written = 0;
  try {
    await pipelinedRead(fs, handle, path, 0, size, async (run) => {
      if (readerGone) throw new ConnectionLost('standard output was closed');
      // A copy: the read buffers are reused as soon as this returns, while the stream may still hold the data.
      const data = Buffer.concat(run);
      written += data.length;
      if (!output.write(data)) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          output.once('drain', resolve);
        });
        wake = null;
      }
    }, undefined, throttle);
  } catch (err) {
    if (!readerGone) throw err;
  } finally {
    output.off('error', gone);
    output.off('close', gone);
    await fs.close(handle, path).catch(() => undefined);
  }
  return written;
}

/**
 * Stores everything `input` gives in the remote file at `target`: written to its part file with
 * many writes in flight, then renamed into place (atomically where the server can), so nobody sees
 * half of it under the final name. Returns the bytes stored.
 */
export async function uploadFromStream(fs: RemoteFs, target: string, input: NodeJS.ReadableStream, throttle?: Throttle, interrupt?: AbortSignal): Promise<number> {
  const part = partNameFor(target, posix);
  // Ctrl-C (`interrupt`): the input stops, and the part file goes as on any failure, since what it
  // holds cannot be continued.
  const interrupted = new AgentError('INTERRUPTED', 'put -: interrupted; nothing was stored (standard input cannot be read again, so there is nothing to resume)');
  const stop = () => (input as unknown as { destroy(error: Error): void }).destroy(interrupted);
  if (interrupt?.aborted) throw interrupted;
  interrupt?.addEventListener('abort', stop, { once: true });
  let handle: Buffer | null = await fs.open(part, 'w');
  const chunkBytes = fs.writeChunkBytes(handle, PIPELINE.chunkBytes);
  let position = 0;
  let inFlight = 0;
  let failure: unknown = null;
  let wake: (() => void) | null = null;
  const signal = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const write = async (data: Buffer) => {
    if (throttle) await throttle.take(data.length);
    while (inFlight >= PIPELINE.requestsInFlight && failure === null) await new Promise<void>((resolve) => (wake = resolve));
    if (failure !== null) return;
    if (!fs.usable) {
      failure = new ConnectionLost(CHANNEL_CLOSED);
      return;
    }
    inFlight++;
    // `data` is never reused: ssh2 may hold on to it until the request is sent.
    fs.sftp.write(handle!, data, 0, data.length, position, (err) => {
      inFlight--;
      if (err) failure ??= err;
      signal();
    });
    position += data.length;
  };
  try {
    let pending: Buffer = Buffer.alloc(0);
    for await (const chunk of input) {
      pending = pending.length === 0 ? (chunk as Buffer) : Buffer.concat([pending, chunk as Buffer]);
      while (pending.length >= chunkBytes && failure === null) {
        await write(pending.subarray(0, chunkBytes));
        pending = pending.subarray(chunkBytes);
      }
      if (failure !== null) break;
    }
    if (pending.length > 0 && failure === null) await write(pending);
    while (inFlight > 0) await new Promise<void>((resolve) => (wake = resolve));
    if (failure !== null) throw remoteError(failure, target);
    if (interrupt?.aborted) throw interrupted;
    const closing = handle;
    handle = null;
    await fs.close(closing, part);
    await fs.replace(part, target);
    return position;
  } catch (err) {
    if (handle) await fs.close(handle, part).catch(() => undefined);
    await fs.unlink(part).catch(() => undefined);
    if (err instanceof AgentError || err instanceof ConnectionLost) throw err;
    throw remoteError(err, target);
  } finally {
    interrupt?.removeEventListener('abort', stop);
  }
}
