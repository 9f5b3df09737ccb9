import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import Postgrator from 'postgrator';
import { databaseTarget } from './pool.js';

/** The SQL files stay in the source tree; from dist/server/db/ this is server/db/migrations/. */
const MIGRATIONS = fileURLToPath(new URL('../../../server/db/migrations/*.do.*.sql', import.meta.url));
const LOCK_NAME = 'ferry_schema_migration';

export interface MigrationResult {
  applied: string[];
  version: number;
}

/**
 * Creates the database if it is missing and applies the versioned SQL files in order, recording each
 * in `schema_migrations`. Several servers starting at once take turns on a named lock, so each file
 * runs exactly once.
 */
export async function migrate(databaseUrl: string): Promise<MigrationResult> {
  const { serverUrl, database } = databaseTarget(databaseUrl);
  const bootstrap = await mysql.createConnection({ uri: serverUrl, connectTimeout: 5_000 });
  try {
    await bootstrap.query(`CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  } finally {
    await bootstrap.end();
  }

  const connection = await mysql.createConnection({ uri: databaseUrl, multipleStatements: true, timezone: 'Z', connectTimeout: 5_000 });
  try {
    await connection.query("SET time_zone = '+00:00'");
    const [[lock]] = (await connection.query('SELECT GET_LOCK(?, 120) AS got', [LOCK_NAME])) as unknown as [[{ got: number }]];
    if (lock?.got !== 1) throw new Error('timed out waiting for another server to finish migrating the database');
    try {
      const postgrator = new Postgrator({
        migrationPattern: MIGRATIONS,
        driver: 'mysql',
        database,
        schemaTable: 'schema_migrations',
        execQuery: async (query) => {
          const [rows] = await connection.query(query);
          return { rows: Array.isArray(rows) ? rows : [] };
        },
      });
      const applied = await postgrator.migrate();
      return { applied: applied.map((m) => basename(m.filename)), version: Number(await postgrator.getDatabaseVersion()) };
    } finally {
      await connection.query('SELECT RELEASE_LOCK(?)', [LOCK_NAME]);
    }
  } finally {
    await connection.end();
  }
}
