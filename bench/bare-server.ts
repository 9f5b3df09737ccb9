import Fastify from 'fastify';

/**
 * The reference for the bench: a minimal Fastify 5 server with one `POST /bare` route answering
 * `{"valid":true}`. It parses the same JSON body the licensing calls get, and does nothing else.
 * Started by the bench as a child process: `PORT=… node dist/bench/bare-server.js`.
 */
const port = Number(process.env.PORT ?? '0');
const host = process.env.HOST ?? '127.0.0.1';

const app = Fastify({ logger: false });

app.post('/bare', async () => ({ valid: true }));

const stop = () => {
  void app.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

await app.listen({ port, host });
