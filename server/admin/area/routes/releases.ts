import type { FastifyInstance } from 'fastify';
import { AppError } from '../../../errors.js';
import { loadOrCreateRoot, rootPaths } from '../../../keys/root.js';
import { announceRelease } from '../../../mail/campaigns.js';
import { downloadCounts, listPackaged, listPublished, publish } from '../../../releases/store.js';
import { field } from '../forms.js';
import type { AdminPages } from '../pages.js';

const MAX_NOTES = 5_000;

/**
 * Releases of the agent: the versions `npm run package` left in the releases folder (listed only
 * when their manifest verifies under the deployment's root), a form to publish one with its
 * notes, what is published, and the downloads per version and platform.
 */
export default async function releaseRoutes(app: FastifyInstance, pages: AdminPages): Promise<void> {
  const root = async () => (await loadOrCreateRoot(rootPaths(app.config.dataDir, app.config.rootKeyFile ?? undefined))).pem;

  const page = async (extra: Record<string, unknown> = {}) => {
    const [packaged, published, downloads] = await Promise.all([listPackaged(app.config.dataDir, await root()), listPublished(app.db), downloadCounts(app.db)]);
    const publishedVersions = new Set(published.map((r) => r.version));
    return {
      title: 'Releases',
      unpublished: packaged.releases.filter((r) => !publishedVersions.has(r.version)),
      refused: packaged.refused,
      published,
      downloads,
      ...extra,
    };
  };

  app.get('/releases', async (request, reply) => pages.render(request, reply, 'releases', await page()));

  app.post('/releases', async (request, reply) => {
    const version = field(request.body, 'version');
    const notes = field(request.body, 'notes');
    const base = await page();
    const release = (base.unpublished as Awaited<ReturnType<typeof listPackaged>>['releases']).find((r) => r.version === version);
    if (!release) throw new AppError('RELEASE_NOT_FOUND', 404, 'There is no such packaged, unpublished release (or its manifest is not signed by this deployment\'s root).');
    if (notes.length > MAX_NOTES) {
      return pages.render(request, reply, 'releases', { ...base, values: { version, notes }, errors: { [`notes-${version}`]: `Keep the notes under ${MAX_NOTES} characters.` } }, 400);
    }
    const releaseId = await publish(app.db, release, notes);
    if (releaseId === null) throw new AppError('RELEASE_PUBLISHED', 409, `Release ${version} is published already.`);
    // The release notice to everyone who chose news: queued once, whoever publishes (announced_at).
    const campaignId = await announceRelease(app.jobs, releaseId);
    request.log.info({ version, releaseId, campaignId, via: 'admin area' }, 'release published');
    return reply.redirect('/admin/releases?done=release-published', 303);
  });
}
