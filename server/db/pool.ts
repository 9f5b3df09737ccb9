import mysql from 'mysql2/promise';

export type Db = mysql.Pool;

export interface DatabaseTarget {
  /** The connection URL without the database: for creating it. */
  serverUrl: string;
  database: string;
}

/** Splits `mysql://user@host:3306/ferry` into the server and the database name. */
export function databaseTarget(databaseUrl: string): DatabaseTarget {
  const url = new URL(databaseUrl);
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!/^[A-Za-z0-9_]{1,64}$/.test(database)) {
    throw new Error(`DATABASE_URL must name a database of letters, digits and _ (got "${database}")`);
  }
  url.pathname = '/';
  return { serverUrl: url.toString(), database };
}

/**
 * The connection pool every request shares. Times go in and out as UTC, whatever the server's zone;
 * queries time out rather than hang when MySQL stops answering.
 */
export function createPool(databaseUrl: string, connectionLimit = 10): Db {
  const pool = mysql.createPool({
    uri: databaseUrl,
    connectionLimit,
    maxIdle: connectionLimit,
    idleTimeout: 60_000,
    connectTimeout: 5_000,
    enableKeepAlive: true,
    timezone: 'Z',
    supportBigNumbers: true,
    decimalNumbers: true,
    // mysql2 otherwise captures a stack trace on every query (5% of a validation's CPU, measured);
    // errors are logged with their MySQL code, which is what we act on.
    trace: false,
  });
  pool.pool.on('connection', (connection) => {
    connection.query("SET time_zone = '+00:00'");
  });
  return pool;
}
