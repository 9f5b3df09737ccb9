import type { FastifyBaseLogger } from 'fastify';
import type { Pool } from 'mysql2/promise';
import type { Config } from '../config.js';
import { createMailService, type MailService } from '../mail/service.js';
import { outboxTransport, smtpTransport } from '../mail/transport.js';
import { join } from 'node:path';
import { createQueues, type Queues } from './queues.js';

/** What every job processor works with, whether it runs inside ferry-server or as ferry-server worker. */
export interface JobContext {
  db: Pool;
  config: Config;
  log: FastifyBaseLogger;
  queues: Queues;
  mail: MailService;
  /** The clock, replaceable in tests. */
  now(): Date;
}

/** The Redis key of the mail counter of one outcome ('sent' or 'failed'). */
export function mailCounterKey(redisPrefix: string, outcome: 'sent' | 'failed'): string {
  return `${redisPrefix}:metrics:mail:${outcome}`;
}

/** SMTP connections of each kind of mail: marketing sends in bulk, service mail a message at a time. */
const SERVICE_SMTP_CONNECTIONS = 2;
const MARKETING_SMTP_CONNECTIONS = 4;

export function createJobContext(config: Config, db: Pool, log: FastifyBaseLogger): JobContext {
  const queues = createQueues(config.redisUrl, config.redisPrefix, config);
  const transport = (connections: number) => (config.smtpUrl ? smtpTransport(config.smtpUrl, connections) : outboxTransport(join(config.dataDir, 'outbox')));
  const mail = createMailService({
    db,
    queues: { service: queues.mail, marketing: queues.marketingMail },
    transports: { service: transport(SERVICE_SMTP_CONNECTIONS), marketing: transport(MARKETING_SMTP_CONNECTIONS) },
    settings: { publicUrl: config.publicUrl, from: config.mailFrom, postalAddress: config.companyPostalAddress, secret: config.mailSecret },
    // Counted in Redis, so that /metrics of any server shows what every worker process sent.
    count: (outcome) => void queues.mail.client.incr(mailCounterKey(config.redisPrefix, outcome)).catch(() => {}),
  });
  return { db, config, log, queues, mail, now: () => new Date() };
}
