import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { formatDuration, parseDuration, parseDurationList } from '../licensing/index.js';

/**
 * Every setting of ferry-server, read and validated once at start. Nothing else reads process.env:
 * the rest of the code is handed this object.
 */
export interface Config {
  databaseUrl: string;
  redisUrl: string;
  /** Prefix of every Redis key Ferry writes, so that several deployments (or test runs) can share one Redis. */
  redisPrefix: string;
  smtpUrl: string | null;
  dataDir: string;
  /** FERRY_ROOT_KEY: where the root private key is (default FERRY_DATA_DIR/root/root-key.pem); it may be absent (offline). */
  rootKeyFile: string | null;
  port: number;
  host: string;
  adminToken: string;
  /** True when ADMIN_TOKEN was unset and a new token was generated into the data folder now. */
  adminTokenGenerated: boolean;
  publicUrl: string;
  trialLengthMs: number;
  remindersBeforeEndMs: number[];
  companyPostalAddress: string;
  /** Sender of every message. */
  mailFrom: string;
  /** Keys unsubscribe links (kept in the data folder, generated once). */
  mailSecret: string;
  /** How often reminders lost with Redis (or due while no worker ran) are looked for. */
  reminderSweepMs: number;
  /** The mail queue's pace towards the SMTP server. */
  mailPerMinute: number;
  /** Pace of the marketing-mail queue (reminders, news, release notices), apart from service mail's. */
  marketingMailPerMinute: number;
  /** Usage events of a trial are kept this long after the trial ended, then purged. */
  retainLapsedTrialUsageMs: number;
  /** A cancelled account's personal data is kept this long after cancelling, then purged. */
  retainCancelledAccountsMs: number;
  /** The email of a trial never claimed, from the trial's end; and the address of mail sent to no customer (trial mail), from sending. */
  retainTrialEmailMs: number;
  /** Client addresses of activations (from last seen), license events and usage events. */
  retainIpAddressesMs: number;
  /** Piracy signals naming an address (by keyed hash), from their day. */
  retainAddressSignalsMs: number;
  rateLimitPerMinute: number;
  /** How often each server reads the license and activation rows changed since its last look (activation-state.ts). */
  licenseCatchUpMs: number;
  /** Moves of an activation to a new machine id (rebinds) per license and rolling 365 days, unless staff set the license's own. */
  rebindBudget: number;
  /**
   * New machines (fingerprints not seen on the license before) a license may take within an hour
   * and within a day; a license with more seats may take as many as its seats.
   */
  newMachinesPerLicensePerHour: number;
  newMachinesPerLicensePerDay: number;
  /** New trials from one client address within a day (beyond RATE_LIMIT_PER_MINUTE). */
  trialsPerAddressPerDay: number;
  logLevel: string;
  /** Trust X-Forwarded-For from a load balancer in front: TRUST_PROXY=1, or the balancer's addresses/subnets. */
  trustProxy: boolean | string;
  /** A second listen address that serves only /metrics, without the admin token (METRICS_PORT); null: none. */
  metricsPort: number | null;
  metricsHost: string;
  /** Run the Bull processors inside the server process (default) or leave them to `ferry-server worker`. */
  runWorkers: boolean;
  /**
   * STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET: with both, the portal's checkout sends buyers to a
   * Stripe Checkout page and Stripe's signed webhook completes the order; with neither, buyers are
   * told to pay by invoice and staff mark the order paid in /admin.
   */
  stripe: { secretKey: string; webhookSecret: string } | null;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly variable: string, reason: string) {
    super(`${variable}: ${reason}`);
  }
}

type Env = Record<string, string | undefined>;

function text(env: Env, name: string, fallback: string): string {
  const value = env[name];
  return value === undefined || value.trim() === '' ? fallback : value.trim();
}

function url(env: Env, name: string, fallback: string, protocols: string[]): string {
  const value = text(env, name, fallback);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(name, `"${value}" is not a URL`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `must start with ${protocols.map((p) => `${p}//`).join(' or ')}, got "${parsed.protocol}//"`);
  }
  return value;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = text(env, name, String(fallback));
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    throw new ConfigError(name, `must be a whole number from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

const SECOND = 1_000;
const DAY = 86_400_000;

/**
 * The range each duration setting must lie in. Beyond these, dates computed from them leave what
 * JavaScript and MySQL can hold (99999999d) or make no sense (a trial of a millisecond).
 */
const DURATION_BOUNDS = {
  TRIAL_LENGTH: [10 * SECOND, 3_650 * DAY],
  REMINDERS_BEFORE_END: [SECOND, 3_650 * DAY],
  REMINDER_SWEEP_EVERY: [SECOND, DAY],
  RETAIN_TRIAL_USAGE: [3_600 * SECOND, 3_650 * DAY],
  RETAIN_CANCELLED_ACCOUNTS: [3_600 * SECOND, 3_650 * DAY],
  RETAIN_TRIAL_EMAIL: [3_600 * SECOND, 3_650 * DAY],
  RETAIN_IP_ADDRESSES: [3_600 * SECOND, 3_650 * DAY],
  RETAIN_ADDRESS_SIGNALS: [3_600 * SECOND, 3_650 * DAY],
  LICENSE_CATCH_UP_EVERY: [SECOND, 3_600 * SECOND],
} as const;

type DurationSetting = keyof typeof DURATION_BOUNDS;

function inBounds(name: DurationSetting, ms: number, raw: string): number {
  const [min, max] = DURATION_BOUNDS[name];
  if (ms < min || ms > max) throw new ConfigError(name, `must be from ${formatDuration(min)} to ${formatDuration(max)}, got "${raw}"`);
  return ms;
}

function duration(env: Env, name: DurationSetting, fallback: string): number {
  const raw = text(env, name, fallback);
  const value = parseDuration(raw);
  if (value === null) throw new ConfigError(name, `must be a duration such as 90s, 15m, 12h or 30d, got "${raw}"`);
  return inBounds(name, value, raw);
}

function flag(env: Env, name: string, fallback: boolean): boolean {
  const raw = text(env, name, fallback ? '1' : '0').toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(name, `must be 1 or 0 (true or false), got "${raw}"`);
}

function trustProxy(env: Env): boolean | string {
  const raw = text(env, 'TRUST_PROXY', '0');
  if (['0', 'false'].includes(raw)) return false;
  if (['1', 'true'].includes(raw)) return true;
  if (/^[0-9a-fA-F.:/, ]+$/.test(raw)) return raw; // addresses or subnets, comma-separated, as Fastify takes them
  throw new ConfigError('TRUST_PROXY', `must be 1, 0, or the load balancer's addresses (e.g. 10.0.0.0/8), got "${raw}"`);
}

/**
 * A secret kept in the data folder (0600), generated the first time. Servers sharing the data
 * folder (or a copy of it) share the secret.
 */
function dataDirSecret(dataDir: string, name: string): { token: string; generated: boolean } {
  const file = join(dataDir, name);
  const unusable = (err: unknown) => new ConfigError('FERRY_DATA_DIR', `cannot use ${file}: ${(err as Error).message}`);
  try {
    return { token: readFileSync(file, 'utf8').trim(), generated: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw unusable(err);
  }
  const token = randomBytes(24).toString('base64url');
  try {
    writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
    return { token, generated: true };
  } catch (err) {
    // Another server process starting at the same moment wrote it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return { token: readFileSync(file, 'utf8').trim(), generated: false };
    throw unusable(err);
  }
}

/**
 * mkdir -p, one level at a time. Node's own `recursive: true` loops forever where mkdir answers
 * ENOENT although the parent exists (/proc, some FUSE mounts); here each level is tried once.
 */
function makeDirectory(dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      if (!statSync(dir).isDirectory()) throw new Error(`${dir} is not a folder`);
      return;
    }
    const parent = dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw err;
    makeDirectory(parent);
    mkdirSync(dir, { mode: 0o700 }); // the parent exists now: a second ENOENT is the answer
  }
}

function dataDirectory(env: Env): string {
  const dataDir = resolve(text(env, 'FERRY_DATA_DIR', './data'));
  try {
    makeDirectory(dataDir);
    accessSync(dataDir, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (err) {
    throw new ConfigError('FERRY_DATA_DIR', `cannot create or write ${dataDir}: ${(err as Error).message}`);
  }
  return dataDir;
}

/** ADMIN_TOKEN when set; otherwise the one kept in the data folder, generated (and so shown once) the first time. */
function adminToken(env: Env, dataDir: string): { token: string; generated: boolean } {
  const given = env.ADMIN_TOKEN?.trim();
  if (given) {
    if (given.length < 16) throw new ConfigError('ADMIN_TOKEN', 'must be at least 16 characters long');
    return { token: given, generated: false };
  }
  return dataDirSecret(dataDir, 'admin-token');
}

function mailFrom(env: Env): string {
  const raw = text(env, 'MAIL_FROM', 'Ferry <no-reply@ferry.example>');
  if (!/^([^<>@]*<[^\s@<>]+@[^\s@<>]+>|[^\s@<>]+@[^\s@<>]+)$/.test(raw)) {
    throw new ConfigError('MAIL_FROM', `must be an address, "Name <address>" or "address", got "${raw}"`);
  }
  return raw;
}

function redisPrefix(env: Env): string {
  const raw = text(env, 'REDIS_PREFIX', 'ferry');
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(raw)) throw new ConfigError('REDIS_PREFIX', `must be 1 to 64 letters, digits, _ . or -, got "${raw}"`);
  return raw;
}

/**
 * The data folder alone, without creating it or any secret in it: for `backup` and `restore`,
 * which must find a fresh folder as it is.
 */
export function dataDirOf(env: Env = process.env): string {
  return resolve(text(env, 'FERRY_DATA_DIR', './data'));
}

/** FERRY_BACKUP_PASSPHRASE, for `backup` and `restore` in scripts; null: ask on the terminal. */
export function backupPassphraseOf(env: Env = process.env): string | null {
  const value = env.FERRY_BACKUP_PASSPHRASE;
  return value === undefined || value === '' ? null : value;
}

export function loadConfig(env: Env = process.env): Config {
  const dataDir = dataDirectory(env);
  const port = integer(env, 'PORT', 3000, 0, 65535);
  const host = text(env, 'HOST', '127.0.0.1');
  const trialLengthMs = duration(env, 'TRIAL_LENGTH', '30d');
  const remindersRaw = text(env, 'REMINDERS_BEFORE_END', '7d,1d');
  const remindersBeforeEndMs = parseDurationList(remindersRaw);
  if (remindersBeforeEndMs === null) {
    throw new ConfigError('REMINDERS_BEFORE_END', `must be a comma-separated list of durations such as 7d,1d, got "${remindersRaw}"`);
  }
  for (const ms of remindersBeforeEndMs) inBounds('REMINDERS_BEFORE_END', ms, remindersRaw);
  const tooLate = remindersBeforeEndMs.find((ms) => ms >= trialLengthMs);
  if (tooLate !== undefined) {
    throw new ConfigError('REMINDERS_BEFORE_END', `${formatDuration(tooLate)} before the end is not within a trial of ${formatDuration(trialLengthMs)}`);
  }
  const admin = adminToken(env, dataDir);
  const smtp = text(env, 'SMTP_URL', '');
  const logLevel = text(env, 'LOG_LEVEL', 'info');
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `must be one of fatal, error, warn, info, debug, trace, silent, got "${logLevel}"`);
  }
  return {
    databaseUrl: url(env, 'DATABASE_URL', 'mysql://root@127.0.0.1:3306/ferry', ['mysql:']),
    redisUrl: url(env, 'REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:']),
    redisPrefix: redisPrefix(env),
    smtpUrl: smtp === '' ? null : url(env, 'SMTP_URL', smtp, ['smtp:', 'smtps:']),
    dataDir,
    rootKeyFile: text(env, 'FERRY_ROOT_KEY', '') === '' ? null : resolve(text(env, 'FERRY_ROOT_KEY', '')),
    port,
    host,
    adminToken: admin.token,
    adminTokenGenerated: admin.generated,
    publicUrl: url(env, 'PUBLIC_URL', `http://${host.includes(':') ? `[${host}]` : host}:${port}`, ['http:', 'https:']).replace(/\/+$/, ''),
    trialLengthMs,
    remindersBeforeEndMs,
    companyPostalAddress: text(env, 'COMPANY_POSTAL_ADDRESS', 'Ferry Software, 1 Harbour Street, Portsmouth PO1 3AX, United Kingdom'),
    mailFrom: mailFrom(env),
    mailSecret: dataDirSecret(dataDir, 'mail-secret').token,
    mailPerMinute: integer(env, 'MAIL_PER_MINUTE', 600, 1, 1_000_000),
    marketingMailPerMinute: integer(env, 'MARKETING_MAIL_PER_MINUTE', 300, 1, 1_000_000),
    reminderSweepMs: duration(env, 'REMINDER_SWEEP_EVERY', '15s'),
    retainLapsedTrialUsageMs: duration(env, 'RETAIN_TRIAL_USAGE', '90d'),
    retainCancelledAccountsMs: duration(env, 'RETAIN_CANCELLED_ACCOUNTS', '365d'),
    retainTrialEmailMs: duration(env, 'RETAIN_TRIAL_EMAIL', '90d'),
    retainIpAddressesMs: duration(env, 'RETAIN_IP_ADDRESSES', '90d'),
    retainAddressSignalsMs: duration(env, 'RETAIN_ADDRESS_SIGNALS', '365d'),
    rateLimitPerMinute: integer(env, 'RATE_LIMIT_PER_MINUTE', 300, 1, 1_000_000),
    licenseCatchUpMs: duration(env, 'LICENSE_CATCH_UP_EVERY', '5s'),
    rebindBudget: integer(env, 'REBIND_BUDGET', 3, 0, 1_000),
    newMachinesPerLicensePerHour: integer(env, 'NEW_MACHINES_PER_LICENSE_PER_HOUR', 10, 1, 1_000_000),
    newMachinesPerLicensePerDay: integer(env, 'NEW_MACHINES_PER_LICENSE_PER_DAY', 20, 1, 1_000_000),
    trialsPerAddressPerDay: integer(env, 'TRIALS_PER_ADDRESS_PER_DAY', 50, 1, 1_000_000),
    logLevel,
    trustProxy: trustProxy(env),
    runWorkers: flag(env, 'FERRY_WORKERS', true),
    metricsPort: text(env, 'METRICS_PORT', '') === '' ? null : integer(env, 'METRICS_PORT', 0, 1, 65535),
    metricsHost: text(env, 'METRICS_HOST', '127.0.0.1'),
    stripe: stripeSettings(env),
  };
}

function stripeSettings(env: Env): Config['stripe'] {
  const secretKey = text(env, 'STRIPE_SECRET_KEY', '');
  const webhookSecret = text(env, 'STRIPE_WEBHOOK_SECRET', '');
  if (secretKey === '' && webhookSecret === '') return null;
  if (secretKey === '') throw new ConfigError('STRIPE_SECRET_KEY', 'is needed with STRIPE_WEBHOOK_SECRET (or unset both to take payment by invoice)');
  if (webhookSecret === '') throw new ConfigError('STRIPE_WEBHOOK_SECRET', 'is needed with STRIPE_SECRET_KEY: without it no payment could be confirmed');
  if (!/^(sk|rk)_(test|live)_[A-Za-z0-9]+$/.test(secretKey)) throw new ConfigError('STRIPE_SECRET_KEY', 'must be a Stripe secret key (sk_live_… or sk_test_…)');
  if (!/^whsec_[A-Za-z0-9]+$/.test(webhookSecret)) throw new ConfigError('STRIPE_WEBHOOK_SECRET', 'must be the signing secret of the webhook endpoint (whsec_…)');
  return { secretKey, webhookSecret };
}
