import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import mysql from 'mysql2/promise';
import { buildApp } from '../../server/app.js';
import { loadConfig, type Config } from '../../server/config.js';
import { migrate } from '../../server/db/migrate.js';
import { createdDatabases } from './databases.js';
import { tempDir } from './temp.js';
import { freePort } from './processes.js';
import { seedTestRoot } from './trust-root.js';

export const MYSQL_SERVER_URL = process.env.TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
}

/**
 * The environment of a fresh test server: its own database (dropped after the run), data folder
 * (with the test run's trust root), Redis key prefix (so rate limits and queues of one test never meet another's) and admin token.
 */
export function testEnv(extra: Record<string, string> = {}): Record<string, string> {
  const database = uniqueName('ferry_test');
  createdDatabases.add(database);
  // The run's one trust root (see trust-root.ts), so that every agent of the tests trusts this server.
  const dataDir = tempDir('ferry-data-');
  seedTestRoot(dataDir);
  return {
    DATABASE_URL: `${MYSQL_SERVER_URL}/${database}`,
    REDIS_URL,
    REDIS_PREFIX: uniqueName('ferry-test'),
    FERRY_DATA_DIR: dataDir,
    ADMIN_TOKEN: randomBytes(24).toString('base64url'),
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...extra,
  };
}

export interface TestServer {
  url: string;
  adminToken: string;
  config: Config;
  app: FastifyInstance;
  close(): Promise<void>;
}

/**
 * A real server, in this process, on a random loopback port, against real MariaDB and Redis.
 * Pass `databaseUrl`/`dataDir` of an earlier server to start "the same" server again.
 */
export async function startServer(overrides: Partial<Config> = {}): Promise<TestServer> {
  // A known port up front, so that PUBLIC_URL (links in mail) points at this very server.
  const config: Config = { ...loadConfig(testEnv({ PORT: String(await freePort()) })), ...overrides };
  await migrate(config.databaseUrl);
  const app = await buildApp(config);
  await app.listen({ port: config.port, host: config.host });
  const { port } = app.server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, adminToken: config.adminToken, config, app, close: () => app.close() };
}

/** A connection pool on a test server's database, for looking at what the server stored. */
export async function openDb(databaseUrl: string): Promise<mysql.Pool> {
  return mysql.createPool({ uri: databaseUrl, connectionLimit: 2, timezone: 'Z', supportBigNumbers: true });
}

/** What most API suites run against: a test server and a pool on its database. */
export interface ServerWorld {
  server: TestServer;
  db: mysql.Pool;
  close(): Promise<void>;
}

export async function startServerWorld(overrides: Partial<Config> = {}): Promise<ServerWorld> {
  const server = await startServer(overrides);
  const db = await openDb(server.config.databaseUrl);
  return {
    server, db,
    async close() {
      await db.end();
      await server.close();
    },
  };
}
