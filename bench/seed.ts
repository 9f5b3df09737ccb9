import { randomBytes } from 'node:crypto';
import type { Connection, Pool } from 'mysql2/promise';
import { generateKey, keyDigest, keyHint, type LicenseKind } from '../licensing/index.js';

/**
 * The bench's database state: licenses (trials and permanent ones) and their activations, written
 * with multi-row INSERTs straight into the schema the server created. Ids are given explicitly, so
 * the bench knows every row without reading it back.
 */

export interface SeedPlan {
  licenses: number;
  trials: number;
  /** Permanent licenses with many free seats, for the activation scenario. Part of `licenses`. */
  poolLicenses: number;
  poolSeats: number;
  activations: number;
  /** Seats of an ordinary permanent license: from min to max, inclusive. */
  seatsMin: number;
  seatsMax: number;
  batchRows: number;
}

export const DEFAULT_PLAN: SeedPlan = {
  licenses: 100_000,
  trials: 30_000,
  poolLicenses: 250,
  poolSeats: 1_000,
  activations: 300_000,
  seatsMin: 3,
  seatsMax: 6,
  batchRows: 2_000,
};

const KIND_TRIAL = 0;
const KIND_PERMANENT = 1;
const KIND_POOL = 2;

const DAY = 86_400_000;
const PLATFORMS = ['linux-x64', 'linux-arm64', 'darwin-arm64', 'darwin-x64', 'win32-x64'];
const LOCALES = ['en-US', 'en-GB', 'de-DE', 'fr-FR', 'ja-JP', 'pt-BR', 'es-ES', 'nl-NL'];

/** What the bench needs to know about the seeded rows afterwards. */
export interface Seeded {
  /** licenseKind[licenseId]: 0 trial, 1 permanent, 2 permanent with many seats (the pool). */
  licenseKind: Uint8Array;
  /** licenseExpiresAt[licenseId]: ms since the epoch, NaN for permanent licenses. */
  licenseExpiresAt: Float64Array;
  /** activationLicense[activationId]: the license of that activation. */
  activationLicense: Uint32Array;
  /** activationFingerprint[activationId]. */
  activationFingerprint: string[];
  /** The pool licenses and their keys (in canonical form), for the activation scenario. */
  pool: { licenseId: number; key: string }[];
  elapsedMs: number;
}

export interface SeededActivation {
  licenseId: number;
  activationId: number;
  fingerprint: string;
  kind: LicenseKind;
  licenseExpiresAt: number | null;
}

export function activationOf(seeded: Seeded, activationId: number): SeededActivation {
  const licenseId = seeded.activationLicense[activationId]!;
  const expires = seeded.licenseExpiresAt[licenseId]!;
  return {
    licenseId,
    activationId,
    fingerprint: seeded.activationFingerprint[activationId]!,
    kind: seeded.licenseKind[licenseId] === KIND_TRIAL ? 'trial' : 'permanent',
    licenseExpiresAt: Number.isNaN(expires) ? null : expires,
  };
}

/** n random fingerprints: 64 lowercase hex characters each. */
export function randomFingerprints(n: number): string[] {
  const hex = randomBytes(32 * n).toString('hex');
  const out = new Array<string>(n);
  for (let i = 0; i < n; i++) out[i] = hex.slice(i * 64, i * 64 + 64);
  return out;
}

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)]!;
}

function randomInt(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

function randomIp(): string {
  return `${pick(['203.0.113', '198.51.100', '192.0.2'])}.${randomInt(1, 254)}`;
}

/** Drops and creates the bench database (the server then creates its schema at start). */
export async function resetDatabase(admin: Connection, database: string): Promise<void> {
  if (!/^[A-Za-z0-9_]+$/.test(database)) throw new Error(`unexpected database name ${database}`);
  await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
  await admin.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
}

/** Runs `insert` over the batches with at most `parallel` in flight (one per pool connection). */
async function insertBatches(
  db: Pool,
  sql: string,
  batches: Iterable<unknown[][]>,
  parallel: number,
): Promise<void> {
  const iterator = batches[Symbol.iterator]();
  const lane = async () => {
    for (let next = iterator.next(); !next.done; next = iterator.next()) {
      await db.query(sql, [next.value]);
    }
  };
  await Promise.all(Array.from({ length: parallel }, lane));
}

/** Seeds licenses and activations into an empty schema. `db` must use timezone 'Z'. */
export async function seed(db: Pool, plan: SeedPlan = DEFAULT_PLAN, parallel = 2): Promise<Seeded> {
  const started = Date.now();
  const now = Date.now();
  const permanent = plan.licenses - plan.trials - plan.poolLicenses;
  if (permanent <= 0) throw new Error('seed plan: more trials and pool licenses than licenses');

  // Which license is which kind, interleaved as sales and trials would be (ids are 1-based).
  const kinds = shuffle([
    ...new Array<number>(plan.trials).fill(KIND_TRIAL),
    ...new Array<number>(permanent).fill(KIND_PERMANENT),
    ...new Array<number>(plan.poolLicenses).fill(KIND_POOL),
  ]);
  const licenseKind = new Uint8Array(plan.licenses + 1);
  const licenseExpiresAt = new Float64Array(plan.licenses + 1).fill(Number.NaN);
  const seats = new Uint32Array(plan.licenses + 1);
  const used = new Uint32Array(plan.licenses + 1);

  // Activations per license: a trial has its one machine; ordinary permanent licenses are filled
  // to their seats, then freed one seat at a time at random until the total is what the plan says;
  // pool licenses start empty.
  let permanentUsed = 0;
  const permanentIds: number[] = [];
  for (let id = 1; id <= plan.licenses; id++) {
    const kind = kinds[id - 1]!;
    licenseKind[id] = kind;
    if (kind === KIND_TRIAL) {
      seats[id] = 1;
      used[id] = 1;
    } else if (kind === KIND_PERMANENT) {
      seats[id] = randomInt(plan.seatsMin, plan.seatsMax);
      used[id] = seats[id]!;
      permanentUsed += seats[id]!;
      permanentIds.push(id);
    } else {
      seats[id] = plan.poolSeats;
      used[id] = 0;
    }
  }
  let excess = permanentUsed - (plan.activations - plan.trials);
  if (excess < 0) throw new Error(`seed plan: ${plan.activations} activations do not fit in the seats of ${permanent} permanent licenses`);
  shuffle(permanentIds);
  while (excess > 0) {
    let freed = 0;
    for (const id of permanentIds) {
      if (excess === 0) break;
      if (used[id]! > 1 && Math.random() < 0.5) {
        used[id]!--;
        excess--;
        freed++;
      }
    }
    if (freed === 0) throw new Error('seed plan: cannot reach the planned activation count');
  }

  const pool: Seeded['pool'] = [];
  const trialFingerprints = randomFingerprints(plan.trials);
  let trialIndex = 0;
  const trialFingerprintOf = new Map<number, string>();

  function* licenseBatches(): Generator<unknown[][]> {
    let rows: unknown[][] = [];
    for (let id = 1; id <= plan.licenses; id++) {
      const kind = licenseKind[id]!;
      if (kind === KIND_TRIAL) {
        const fingerprint = trialFingerprints[trialIndex++]!;
        trialFingerprintOf.set(id, fingerprint);
        // Started within the last 28 days, 30 days long: ends from 2 to 30 days from now.
        const expiresAt = now + 2 * DAY + Math.floor(Math.random() * 28 * DAY);
        licenseExpiresAt[id] = expiresAt;
        rows.push([id, 'trial', 'active', 1, null, null, fingerprint, new Date(expiresAt), new Date(expiresAt - 30 * DAY)]);
      } else {
        const key = generateKey();
        if (kind === KIND_POOL) pool.push({ licenseId: id, key });
        const createdAt = now - Math.floor(Math.random() * 730 * DAY);
        rows.push([id, 'permanent', 'active', seats[id], keyDigest(key), keyHint(key), null, null, new Date(createdAt)]);
      }
      if (rows.length === plan.batchRows) {
        yield rows;
        rows = [];
      }
    }
    if (rows.length > 0) yield rows;
  }

  const activationLicense = new Uint32Array(plan.activations + 1);
  const activationFingerprint = new Array<string>(plan.activations + 1);
  activationFingerprint[0] = '';

  function* activationBatches(): Generator<unknown[][]> {
    let rows: unknown[][] = [];
    let activationId = 0;
    for (let licenseId = 1; licenseId <= plan.licenses; licenseId++) {
      const n = used[licenseId]!;
      if (n === 0) continue;
      const fingerprints = licenseKind[licenseId] === KIND_TRIAL ? [trialFingerprintOf.get(licenseId)!] : randomFingerprints(n);
      const expires = licenseExpiresAt[licenseId]!;
      const createdAt = Number.isNaN(expires) ? now - Math.floor(Math.random() * 365 * DAY) : expires - 30 * DAY;
      for (const fingerprint of fingerprints) {
        activationId++;
        activationLicense[activationId] = licenseId;
        activationFingerprint[activationId] = fingerprint;
        rows.push([
          activationId, licenseId, fingerprint, true, pick(PLATFORMS), null, '0.1.0', pick(LOCALES), randomIp(),
          new Date(createdAt), new Date(now - Math.floor(Math.random() * 7 * DAY)),
        ]);
        if (rows.length === plan.batchRows) {
          yield rows;
          rows = [];
        }
      }
    }
    if (rows.length > 0) yield rows;
    if (activationId !== plan.activations) throw new Error(`seeded ${activationId} activations, planned ${plan.activations}`);
  }

  await insertBatches(
    db,
    'INSERT INTO licenses (id, kind, status, seats, key_digest, key_hint, trial_fingerprint, expires_at, created_at) VALUES ?',
    licenseBatches(),
    parallel,
  );
  await insertBatches(
    db,
    'INSERT INTO activations (id, license_id, fingerprint, active, platform, hostname, agent_version, locale, ip, created_at, last_validated_at) VALUES ?',
    activationBatches(),
    parallel,
  );
  // Fresh statistics, so the server's first queries get the plans they will get in production.
  await db.query('ANALYZE TABLE licenses, activations');

  return {
    licenseKind,
    licenseExpiresAt,
    activationLicense,
    activationFingerprint,
    pool,
    elapsedMs: Date.now() - started,
  };
}

export interface Counts {
  trials: number;
  permanent: number;
  activations: number;
  activeActivations: number;
}

export async function countRows(db: Pool): Promise<Counts> {
  const [kinds] = await db.query('SELECT kind, COUNT(*) AS n FROM licenses GROUP BY kind');
  const [acts] = await db.query('SELECT COUNT(*) AS n, COALESCE(SUM(active), 0) AS active FROM activations');
  const byKind = new Map((kinds as { kind: string; n: number }[]).map((r) => [r.kind, Number(r.n)]));
  const a = (acts as { n: number; active: number | string }[])[0]!;
  return {
    trials: byKind.get('trial') ?? 0,
    permanent: byKind.get('permanent') ?? 0,
    activations: Number(a.n),
    activeActivations: Number(a.active),
  };
}

/** Licenses with more active activations than seats: must be none, whatever the concurrency. */
export async function licensesOverSeats(db: Pool): Promise<number> {
  const [rows] = await db.query(
    `SELECT COUNT(*) AS n FROM (
       SELECT l.id FROM licenses l JOIN activations a ON a.license_id = l.id AND a.active
       GROUP BY l.id, l.seats HAVING COUNT(*) > l.seats
     ) over_seats`,
  );
  return Number((rows as { n: number }[])[0]!.n);
}
