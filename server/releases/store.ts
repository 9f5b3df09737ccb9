import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Pool, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { compareVersions, isVersion, parseManifestBody, verifyManifest, type ManifestBody } from '../../licensing/release-manifest.js';
import type { SignedStatement } from '../../licensing/trust.js';

/**
 * Releases of the agent: the packaged ones in `FERRY_DATA_DIR/releases/<version>/` (what
 * `npm run package` wrote), and the published ones, rows in `releases` with the signed manifest
 * copied in. Only published releases are served.
 */
export const MANIFEST_FILE = 'manifest.json';

export function releasesDir(dataDir: string): string {
  return join(dataDir, 'releases');
}

export interface PackagedRelease {
  version: string;
  /** The signed manifest, as written. */
  manifestText: string;
  body: ManifestBody;
}

/** Packaged versions whose manifest verifies under the root, newest first; others are skipped and named. */
export async function listPackaged(dataDir: string, rootPem: string): Promise<{ releases: PackagedRelease[]; refused: string[] }> {
  const names = await readdir(releasesDir(dataDir)).catch(() => [] as string[]);
  const releases: PackagedRelease[] = [];
  const refused: string[] = [];
  for (const version of names.filter(isVersion)) {
    try {
      const manifestText = await readFile(join(releasesDir(dataDir), version, MANIFEST_FILE), 'utf8');
      const body = verifyManifest(rootPem, manifestText);
      if (body.version !== version) throw new Error('its manifest names another version');
      releases.push({ version, manifestText, body });
    } catch {
      refused.push(version);
    }
  }
  releases.sort((a, b) => compareVersions(b.version, a.version));
  return { releases, refused };
}

export interface PublishedRelease {
  id: number;
  version: string;
  notes: string;
  manifestText: string;
  body: ManifestBody;
  publishedAt: Date;
}

interface ReleaseRow extends RowDataPacket {
  id: number;
  version: string;
  notes: string;
  manifest: string;
  published_at: Date;
}

/** The body of a stored manifest (verified when it was published); null for a row that is not one. */
function storedBody(manifest: string): ManifestBody | null {
  try {
    return parseManifestBody(JSON.parse((JSON.parse(manifest) as SignedStatement).payload) as Record<string, unknown>);
  } catch {
    return null;
  }
}

/** Published releases, newest version first. */
export async function listPublished(db: Pool): Promise<PublishedRelease[]> {
  const [rows] = await db.query<ReleaseRow[]>('SELECT id, version, notes, manifest, published_at FROM releases');
  const releases: PublishedRelease[] = [];
  for (const row of rows) {
    const body = storedBody(row.manifest);
    if (body) releases.push({ id: row.id, version: row.version, notes: row.notes, manifestText: row.manifest, body, publishedAt: row.published_at });
  }
  return releases.sort((a, b) => compareVersions(b.version, a.version));
}

/** Agents learn the newest version at every check-in: cached, so a validation costs no extra query. */
const LATEST_CACHE_MS = 60_000;
const latestCache = new WeakMap<Pool, { version: string | null; at: number }>();

/** The newest version as last read, while that is fresh; undefined: call `latestVersion`. */
export function cachedLatestVersion(db: Pool): string | null | undefined {
  const cached = latestCache.get(db);
  return cached && Date.now() - cached.at < LATEST_CACHE_MS ? cached.version : undefined;
}

export async function latestVersion(db: Pool): Promise<string | null> {
  const cached = latestCache.get(db);
  if (cached && Date.now() - cached.at < LATEST_CACHE_MS) return cached.version;
  const [rows] = await db.query<RowDataPacket[]>('SELECT version FROM releases');
  const versions = rows.map((row) => row.version as string).sort(compareVersions);
  const version = versions.at(-1) ?? null;
  latestCache.set(db, { version, at: Date.now() });
  return version;
}

/** Publishes a packaged release; false when that version is published already. */
export async function publish(db: Pool, release: PackagedRelease, notes: string): Promise<number | null> {
  const [result] = await db.execute<ResultSetHeader>(
    'INSERT IGNORE INTO releases (version, notes, manifest, published_at) VALUES (?, ?, ?, ?)',
    [release.version, notes, release.manifestText, new Date()],
  );
  latestCache.delete(db);
  return result.affectedRows === 1 ? result.insertId : null;
}

export async function countDownload(db: Pool, releaseId: number, platform: string, artefact: string): Promise<void> {
  await db.execute('INSERT INTO release_downloads (release_id, platform, artefact, downloaded_at) VALUES (?, ?, ?, ?)', [releaseId, platform, artefact, new Date()]);
}

export interface DownloadCount {
  version: string;
  platform: string;
  downloads: number;
}

export async function downloadCounts(db: Pool): Promise<DownloadCount[]> {
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT r.version, d.platform, COUNT(*) AS downloads
       FROM release_downloads d JOIN releases r ON r.id = d.release_id
      GROUP BY r.version, d.platform`,
  );
  return rows
    .map((row) => ({ version: row.version as string, platform: row.platform as string, downloads: Number(row.downloads) }))
    .sort((a, b) => compareVersions(b.version, a.version) || a.platform.localeCompare(b.platform));
}
