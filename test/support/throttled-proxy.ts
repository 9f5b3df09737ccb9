import { createConnection, createServer, type Socket } from 'node:net';

/**
 * A TCP proxy that slows the bytes down to `bytesPerSecond` (each direction), so that a transfer
 * of a few MiB lasts long enough for a test to look at it mid-way, and that can drop every
 * connection going through it at once (the network failing) while still taking new ones.
 */
export interface ThrottledProxy {
  port: number;
  /** Bytes that went through, both directions. */
  bytes(): number;
  connections(): number;
  /** Destroys every connection through the proxy; new ones are still accepted. */
  dropAll(): void;
  close(): Promise<void>;
}

export async function startThrottledProxy(targetPort: number, bytesPerSecond: number): Promise<ThrottledProxy> {
  const sockets = new Set<Socket>();
  let total = 0;
  let opened = 0;
  const tickMs = 20;
  const perTick = Math.max(1024, Math.floor((bytesPerSecond * tickMs) / 1000));

  const pipeSlowly = (from: Socket, to: Socket) => {
    const queue: Buffer[] = [];
    let timer: NodeJS.Timeout | null = null;
    let ended = false;
    const flush = () => {
      let budget = perTick;
      while (budget > 0 && queue.length > 0) {
        const head = queue[0]!;
        const piece = head.subarray(0, budget);
        if (piece.length === head.length) queue.shift();
        else queue[0] = head.subarray(piece.length);
        budget -= piece.length;
        total += piece.length;
        if (!to.destroyed) to.write(piece);
      }
      if (queue.length === 0) {
        clearInterval(timer!);
        timer = null;
        if (ended) to.end();
        else from.resume();
      }
    };
    from.on('data', (chunk: Buffer) => {
      queue.push(chunk);
      from.pause();
      timer ??= setInterval(flush, tickMs);
    });
    // A side that closes after its last bytes (an HTTP answer with `Connection: close`) has them
    // delivered first; a side that was destroyed takes the other one down at once.
    from.on('end', () => {
      ended = true;
      if (timer === null) to.end();
    });
    from.on('close', () => {
      if (ended) return;
      if (timer) clearInterval(timer);
      timer = null;
      to.destroy();
    });
  };

  const server = createServer((client) => {
    opened++;
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    pipeSlowly(client, upstream);
    pipeSlowly(upstream, client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  const dropAll = () => {
    for (const s of sockets) s.destroy();
    sockets.clear();
  };
  return {
    port,
    bytes: () => total,
    connections: () => opened,
    dropAll,
    close: () =>
      new Promise<void>((resolve) => {
        dropAll();
        server.close(() => resolve());
      }),
  };
}
