import Bull from 'bull';
import { Redis, type RedisOptions } from 'ioredis';
import type { MailRequest } from '../mail/service.js';

/** The queues of DESIGN.md, by name. Their job data types live with their processors. */
export const QUEUE_NAMES = {
  /** Service mail (the name from before marketing had its own queue, so that queued messages carry on). */
  mail: 'mail',
  marketingMail: 'marketing-mail',
  campaigns: 'campaigns',
  reminders: 'reminders',
  exportReport: 'export-report',
  usageRollup: 'usage-rollup',
  retention: 'retention',
} as const;

export type QueueKey = keyof typeof QUEUE_NAMES;

export interface Queues {
  /** Service mail: verification, password links and notices, receipts, revocation, deletion. */
  mail: Bull.Queue<MailRequest>;
  /** Marketing mail: reminders, news, release notices, each paced apart from service mail. */
  marketingMail: Bull.Queue<MailRequest>;
  /** The fan-out of campaigns: from MySQL rows to marketing-mail jobs, in batches. */
  campaigns: Bull.Queue;
  reminders: Bull.Queue;
  exportReport: Bull.Queue;
  usageRollup: Bull.Queue;
  retention: Bull.Queue;
  all(): Bull.Queue[];
  close(): Promise<void>;
}

/**
 * Bull's three kinds of connection: one shared command client and one shared subscriber for all
 * queues, and a blocking client per queue (Bull's own rule). Bull wants retries without a per-request
 * limit, and waits out a Redis restart by itself.
 */
export function createQueues(redisUrl: string, prefix: string, pace: { mailPerMinute: number; marketingMailPerMinute: number }): Queues {
  const options: RedisOptions = { maxRetriesPerRequest: null, enableReadyCheck: false, connectionName: 'ferry-jobs' };
  let client: Redis | undefined;
  let subscriber: Redis | undefined;
  const blocking: Redis[] = [];
  const connect = () => {
    const redis = new Redis(redisUrl, options);
    redis.on('error', () => {}); // reconnects by itself; readiness is reported by /readyz
    // The shared connections carry listeners of every queue (Bull adds a few per queue).
    redis.setMaxListeners(8 * Object.keys(QUEUE_NAMES).length);
    return redis;
  };
  const queueOptions = (extra: Bull.QueueOptions = {}): Bull.QueueOptions => ({
    prefix: `${prefix}:bull`,
    createClient(type) {
      if (type === 'client') return (client ??= connect());
      if (type === 'subscriber') return (subscriber ??= connect());
      const redis = connect();
      blocking.push(redis);
      return redis;
    },
    ...extra,
  });
  const queues = {
    mail: new Bull<MailRequest>(QUEUE_NAMES.mail, queueOptions({ limiter: { max: pace.mailPerMinute, duration: 60_000 } })),
    marketingMail: new Bull<MailRequest>(QUEUE_NAMES.marketingMail, queueOptions({ limiter: { max: pace.marketingMailPerMinute, duration: 60_000 } })),
    campaigns: new Bull(QUEUE_NAMES.campaigns, queueOptions()),
    reminders: new Bull(QUEUE_NAMES.reminders, queueOptions()),
    exportReport: new Bull(QUEUE_NAMES.exportReport, queueOptions()),
    usageRollup: new Bull(QUEUE_NAMES.usageRollup, queueOptions()),
    retention: new Bull(QUEUE_NAMES.retention, queueOptions()),
  };
  const all = () => Object.values(queues) as Bull.Queue[];
  return {
    ...queues,
    all,
    async close() {
      await Promise.all(all().map((q) => q.close().catch(() => {})));
      for (const redis of [client, subscriber, ...blocking]) redis?.disconnect();
    },
  };
}
