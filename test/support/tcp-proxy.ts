import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of a real service, that a test can cut and restore: from the server's side
 * the service goes away (connections dropped, new ones refused) and comes back on the same port.
 */
export interface TcpProxy {
  port: number;
  /** Connections accepted, and bytes carried from the service to its clients, so far. */
  readonly connections: number;
  readonly bytesFromService: number;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let server: Server;
  let port = 0;
  let connections = 0;
  let bytesFromService = 0;

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server = createServer((client) => {
        connections++;
        const upstream = createConnection({ host: targetHost, port: targetPort });
        upstream.on('data', (d: Buffer) => (bytesFromService += d.length));
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on('close', () => sockets.delete(s));
          s.on('error', () => {
            client.destroy();
            upstream.destroy();
          });
        }
        client.pipe(upstream);
        upstream.pipe(client);
      });
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        port = (server.address() as { port: number }).port;
        resolve();
      });
    });

  const cut = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      sockets.clear();
      server.close(() => resolve());
    });

  await listen();
  return {
    get port() {
      return port;
    },
    get connections() {
      return connections;
    },
    get bytesFromService() {
      return bytesFromService;
    },
    cut,
    restore: listen,
    close: cut,
  };
}
