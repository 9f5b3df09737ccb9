import mysql from 'mysql2/promise';
import { createdDatabases } from './databases.js';
import { MYSQL_SERVER_URL } from './server.js';
import { removeTempDirs } from './temp.js';
// Before any test: every agent a test starts trusts the run's root (FERRY_TRUST_ROOT).
import './trust-root.js';

/** Mocha root hooks (loaded with --require): clean up what the run made in the shared MariaDB. */
export const mochaHooks = {
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    removeTempDirs();
    if (createdDatabases.size === 0) return;
    const connection = await mysql.createConnection({ uri: MYSQL_SERVER_URL });
    try {
      for (const name of createdDatabases) await connection.query(`DROP DATABASE IF EXISTS \`${name}\``);
    } finally {
      await connection.end();
    }
  },
};
