import { generateKeyPairSync, sign } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { canonicalUsageBytes, chainGenesis, USAGE_BATCH_MAX, usageEventHash } from '../licensing/index.js';
import { newMachine } from '../test/support/machines.js';
import { startServer } from '../test/support/server.js';
import { formatTable, ms } from './table.js';

/**
 * `node dist/bench/usage-chain.js`: what checking signatures and the chain costs the server. Full
 * batches of POST /v1/usage, signed and chained (an activation with a device key) beside unsigned
 * ones (an activation without), each on trials of its own, against one in-process server.
 */
const BATCHES = 10;

async function post(url: string, token: string, events: unknown[]): Promise<number> {
  const started = performance.now();
  const res = await fetch(`${url}/v1/usage`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ events }) });
  const body = (await res.json()) as { accepted?: number };
  if (res.status !== 202 || body.accepted !== events.length) throw new Error(`usage batch: ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
  return performance.now() - started;
}

async function trial(url: string, devicePublicKey?: string) {
  const res = await fetch(`${url}/v1/trials`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ fingerprint: newMachine(), devicePublicKey }) });
  return (await res.json()) as { token: string; activation: { id: number } };
}

const server = await startServer();
try {
  const signedTimes: number[] = [];
  const unsignedTimes: number[] = [];
  for (let b = 0; b < BATCHES; b++) {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const raw = publicKey.export({ format: 'jwk' }).x!;
    const keyed = await trial(server.url, raw);
    let prev = chainGenesis(keyed.activation.id, raw);
    const signed = Array.from({ length: USAGE_BATCH_MAX }, (_, i) => {
      const unsigned = { at: new Date(Date.now() - 60_000 + i).toISOString(), locale: 'en-US', kind: 'put', counter: i + 1, prev };
      prev = usageEventHash(keyed.activation.id, unsigned);
      return { ...unsigned, sig: sign(null, canonicalUsageBytes(keyed.activation.id, unsigned), privateKey).toString('base64url') };
    });
    signedTimes.push(await post(server.url, keyed.token, signed));
    const plain = await trial(server.url);
    unsignedTimes.push(await post(server.url, plain.token, signed.map(({ at, locale, kind }) => ({ at, locale, kind }))));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`POST /v1/usage, batches of ${USAGE_BATCH_MAX} new events, ${BATCHES} each (median)`);
  console.log(formatTable([{ title: 'events' }, { title: 'ms a batch', align: 'right' }, { title: 'ms an event', align: 'right' }], [
    ['unsigned', ms(median(unsignedTimes)), ms(median(unsignedTimes) / USAGE_BATCH_MAX)],
    ['signed and chained', ms(median(signedTimes)), ms(median(signedTimes) / USAGE_BATCH_MAX)],
  ]));
} finally {
  await server.close();
}
