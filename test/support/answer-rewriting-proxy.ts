import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A plain HTTP proxy in front of a real server that hands a test every JSON answer before the
 * client gets it: the network between agent and license server, tampering with what it carries.
 * `rewrite` may change the parsed body (return it, or a new one); unset, answers pass unchanged.
 */
export interface AnswerRewritingProxy {
  url: string;
  rewrite: ((path: string, body: any) => unknown) | null;
  /** Every JSON answer as the server sent it, oldest first, with the path it answered. */
  readonly answers: { path: string; body: any }[];
  close(): Promise<void>;
}

export async function startAnswerRewritingProxy(target: string): Promise<AnswerRewritingProxy> {
  const upstream = new URL(target);
  const answers: { path: string; body: any }[] = [];
  const proxy: AnswerRewritingProxy = { url: '', rewrite: null, answers, close: async () => undefined };
  const server: Server = createServer((req, res) => {
    const headers = { ...req.headers, host: upstream.host };
    const forward = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, async (answer) => {
      const chunks: Buffer[] = [];
      for await (const chunk of answer) chunks.push(chunk as Buffer);
      let bytes = Buffer.concat(chunks);
      const path = req.url ?? '/';
      if (/^application\/json/.test(answer.headers['content-type'] ?? '') && bytes.length > 0) {
        const body = JSON.parse(bytes.toString('utf8'));
        answers.push({ path, body: structuredClone(body) });
        if (proxy.rewrite) bytes = Buffer.from(JSON.stringify(proxy.rewrite(path, body)));
      }
      const { 'content-length': _length, 'transfer-encoding': _encoding, ...rest } = answer.headers;
      res.writeHead(answer.statusCode ?? 502, { ...rest, 'content-length': bytes.length });
      res.end(bytes);
    });
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  return proxy;
}
