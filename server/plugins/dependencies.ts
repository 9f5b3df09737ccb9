import fp from 'fastify-plugin';
import { serviceUnavailable } from '../errors.js';

export type Dependency = 'mysql' | 'redis';

declare module 'fastify' {
  interface FastifyInstance {
    dependencies: DependencyMonitor;
  }
  interface FastifyContextConfig {
    /** What this route cannot answer without; API routes need MySQL unless they say otherwise. */
    needs?: Dependency[];
  }
}

const CHECK_EVERY_MS = 2_000;
const MYSQL_PING_TIMEOUT_MS = 2_000;

export interface DependencyMonitor {
  isUp(dependency: Dependency): boolean;
  /** Checks both now; readiness calls this so its answer is never stale. */
  check(): Promise<Record<Dependency, boolean>>;
  /** A request saw a connection error: check again now (one check at a time, however many errors). */
  recheck(): void;
}

/**
 * Knows whether MySQL and Redis answer, so that API calls fail fast with 503 and Retry-After while
 * one is away, and succeed again as soon as it is back, with no restart.
 */
export default fp(
  async (app) => {
    const up: Record<Dependency, boolean> = { mysql: true, redis: app.redis.status === 'ready' };
    // Only changes after the first check are news; the state at start is not "back".
    let started = false;

    const setState = (dependency: Dependency, isUp: boolean) => {
      if (started && up[dependency] !== isUp) app.log.warn({ dependency }, isUp ? `${dependency} is back` : `${dependency} is unavailable`);
      up[dependency] = isUp;
    };

    const checkMysql = async () => {
      try {
        await app.db.query({ sql: 'SELECT 1', timeout: MYSQL_PING_TIMEOUT_MS });
        setState('mysql', true);
      } catch {
        setState('mysql', false);
      }
    };
    const checkRedis = () => setState('redis', app.redis.status === 'ready');

    app.redis.on('ready', checkRedis);
    app.redis.on('close', checkRedis);
    app.redis.on('end', checkRedis);

    let inFlight: Promise<Record<Dependency, boolean>> | null = null;
    const monitor: DependencyMonitor = {
      isUp: (dependency) => up[dependency],
      check() {
        inFlight ??= (async () => {
          try {
            await checkMysql();
            checkRedis();
            return { ...up };
          } finally {
            inFlight = null;
          }
        })();
        return inFlight;
      },
      recheck: () => void monitor.check(),
    };
    app.decorate('dependencies', monitor);

    let timer: NodeJS.Timeout | undefined;
    const schedule = () => {
      timer = setTimeout(() => {
        void monitor.check().finally(schedule);
      }, CHECK_EVERY_MS);
      timer.unref();
    };
    app.addHook('onReady', async () => {
      await monitor.check();
      started = true;
      schedule();
    });
    app.addHook('onClose', async () => clearTimeout(timer));

    // A callback hook, not an async one: it runs on every request, check-ins most of all, and a
    // promise for each would cost a turn of the microtask queue for nothing.
    app.addHook('onRequest', (request, _reply, done) => {
      const url = request.routeOptions.url;
      if (url === undefined || !url.startsWith('/v1/')) return done();
      for (const dependency of request.routeOptions.config.needs ?? ['mysql']) {
        if (!up[dependency]) return done(serviceUnavailable(dependency === 'mysql' ? 'the license database' : 'the session and rate-limit store'));
      }
      done();
    });
  },
  { name: 'dependencies', dependencies: ['mysql', 'redis'] },
);
