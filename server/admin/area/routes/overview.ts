import type { FastifyInstance } from 'fastify';
import type { AdminPages } from '../pages.js';
import { overview } from '../queries.js';

/** The first page: how many licenses of each kind, machines, trials, and the state of the queues. */
export default async function overviewRoutes(app: FastifyInstance, pages: AdminPages): Promise<void> {
  app.get('/', async (request, reply) => {
    const now = new Date();
    const [counts, queues] = await Promise.all([
      overview(app.db, now),
      Promise.all(app.jobs.queues.all().map(async (queue) => ({ name: queue.name, counts: await queue.getJobCounts() }))),
    ]);
    return pages.render(request, reply, 'overview', { title: 'Overview', counts, queues });
  });
}
