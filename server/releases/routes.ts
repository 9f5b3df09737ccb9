import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import helmet from '@fastify/helmet';
import view from '@fastify/view';
import { Eta } from 'eta';
import type { FastifyPluginAsync } from 'fastify';
import { AppError } from '../errors.js';
import { pageSecurityHeaders } from '../plugins/page-security.js';
import { installScript } from './install-script.js';
import { countDownload, listPublished, releasesDir, type PublishedRelease } from './store.js';

/** The download page is a MyAccount page in look: its layout and stylesheet. */
const VIEWS = fileURLToPath(new URL('../../../server/account/views/', import.meta.url));

const PLATFORM_LABELS: Record<string, string> = {
  'linux-x64': 'Linux x64, single executable (no Node.js needed)',
  node: 'npm package, any system with Node.js 20 or later',
};

function noRelease(): AppError {
  return new AppError('RELEASE_NOT_FOUND', 404, 'There is no such published release of ferry.');
}

/**
 * Getting the agent: the download page, the published artefacts (each fetch counted by version
 * and platform, nothing about who fetched it), the signed manifests and the install script. Only
 * releases that staff published in /admin are served, whatever else the releases folder holds.
 */
const releaseRoutes: FastifyPluginAsync = async (app) => {
  const { publicUrl, dataDir } = app.config;
  await app.register(helmet, pageSecurityHeaders(publicUrl.startsWith('https:'), 'no-referrer'));
  await app.register(view, {
    engine: { eta: new Eta({ autoEscape: true }) },
    templates: VIEWS,
    layout: 'layout',
    production: true,
    defaultContext: { product: 'Ferry' },
  });

  const published = async (version: string): Promise<PublishedRelease> => {
    const releases = await listPublished(app.db);
    const release = version === 'latest' ? releases[0] : releases.find((r) => r.version === version);
    if (!release) throw noRelease();
    return release;
  };

  app.get('/download', async (_request, reply) => {
    const releases = await listPublished(app.db);
    return reply.view('download', {
      title: 'Download ferry',
      page: 'download',
      signedIn: false,
      notice: null,
      releases,
      labels: PLATFORM_LABELS,
      installCommand: `curl -fsSL ${publicUrl}/install.sh | sh`,
      server: publicUrl,
    });
  });

  app.get('/install.sh', async (_request, reply) =>
    reply.type('text/plain; charset=utf-8').header('cache-control', 'no-cache').send(installScript(publicUrl)));

  app.get('/download/:version/manifest.json', async (request, reply) => {
    const release = await published((request.params as { version: string }).version);
    return reply.type('application/json; charset=utf-8').header('cache-control', 'no-cache').send(release.manifestText);
  });

  app.get('/download/:version/:file', async (request, reply) => {
    const { version, file } = request.params as { version: string; file: string };
    const release = await published(version);
    // Only names the signed manifest lists, so nothing else in the folder can be fetched.
    const artefact = release.body.artefacts.find((a) => a.name === file);
    if (!artefact) throw noRelease();
    const path = join(releasesDir(dataDir), release.version, artefact.name);
    const size = await stat(path).then((s) => s.size, () => null);
    if (size === null) throw new AppError('RELEASE_FILE_MISSING', 404, 'This release file is not on the server any more.');
    if (request.method === 'GET') await countDownload(app.db, release.id, artefact.platform, artefact.name);
    return reply
      .type(artefact.platform === 'node' ? 'application/gzip' : 'application/octet-stream')
      .header('content-length', size)
      .header('content-disposition', `attachment; filename="${artefact.name}"`)
      .header('x-checksum-sha256', artefact.sha256)
      .send(createReadStream(path));
  });
};

export default releaseRoutes;
