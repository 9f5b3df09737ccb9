import crypto from 'node:crypto';

/**
 * Random bytes for small requests from a pool, refilled from the system's CSPRNG 64 KiB at a time.
 *
 * ssh2 fills every packet's padding (4 to 19 bytes) with `crypto.randomFillSync`, one call per
 * packet: 3.4 µs each here (OpenSSL checks the process id and locks its generator on each call;
 * strace counted 10,073 getpid calls for 2,000 small files up). From the pool a request costs a copy.
 * The bytes are the same CSPRNG output, each handed out once and wiped from the pool when it is:
 * what OpenSSH does with arc4random_buf, which buffers its generator's output the same way.
 *
 * ssh2 takes `randomFillSync` from node:crypto when it is loaded, so `installPooledRandom` runs
 * before ssh2 is (agent/cli.ts imports this module first). Requests over SMALL_BYTES, and any
 * argument that is not a plain view with valid bounds, go to Node's own function unchanged.
 */

const POOL_BYTES = 64 * 1024;
const SMALL_BYTES = 256;

const systemFill = crypto.randomFillSync;
const pool = Buffer.alloc(POOL_BYTES);
let used = POOL_BYTES;

/** Fills `buffer[offset, offset + size)` as randomFillSync does, from the pool where it can. */
export function pooledRandomFillSync<T extends NodeJS.ArrayBufferView>(buffer: T, offset = 0, size?: number): T {
  if (!ArrayBuffer.isView(buffer)) return systemFill(buffer, offset, size);
  const length = size ?? buffer.byteLength - offset;
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || length > SMALL_BYTES || offset + length > buffer.byteLength) {
    return systemFill(buffer, offset, size);
  }
  if (used + length > POOL_BYTES) {
    systemFill(pool);
    used = 0;
  }
  new Uint8Array(buffer.buffer, buffer.byteOffset + offset, length).set(pool.subarray(used, used + length));
  pool.fill(0, used, used + length);
  used += length;
  return buffer;
}

/** From now on, node:crypto's randomFillSync serves small requests from the pool (for modules loaded after this). */
export function installPooledRandom(): void {
  (crypto as { randomFillSync: typeof crypto.randomFillSync }).randomFillSync = pooledRandomFillSync as typeof crypto.randomFillSync;
}

installPooledRandom();
