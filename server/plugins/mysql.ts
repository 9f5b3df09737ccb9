import fp from 'fastify-plugin';
import { createPool, type Db } from '../db/pool.js';

declare module 'fastify' {
  interface FastifyInstance {
    db: Db;
  }
}

export default fp(
  async (app) => {
    const db = createPool(app.config.databaseUrl);
    app.decorate('db', db);
    app.addHook('onClose', async () => {
      await db.end();
    });
  },
  { name: 'mysql', dependencies: ['config'] },
);
