import { AgentError } from '../errors.js';

/**
 * Where a command argument points: a local path, or a path on an SFTP server named by an
 * `sftp://` URL, a site of the config file (`mysite:/in`) or OpenSSH's `[user@]host:path`.
 * Pure: which sites exist is passed in.
 */

export interface RemoteTarget {
  /** The host as written (a site's host, an alias of ~/.ssh/config, a name or an address). */
  host: string;
  port?: number;
  user?: string;
  /** The site it came from, when it did: its key and folder apply. */
  site?: string;
}

export type Location =
  | { kind: 'local'; path: string; trailingSlash: boolean }
  | { kind: 'remote'; target: RemoteTarget; path: string; trailingSlash: boolean };

export type RemoteLocation = Extract<Location, { kind: 'remote' }>;

export interface SiteDefinition {
  host: string;
  port?: number;
  user?: string;
  key?: string;
  /** Relative remote paths of the site start here. */
  folder?: string;
}

function decode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new AgentError('USAGE', `bad URL ${what}: malformed %-escape`);
  }
}

function parsePort(text: string, what: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port < 1 || port > 65535) throw new AgentError('USAGE', `bad port "${text}" in ${what}`);
  return port;
}

/**
 * `sftp://[user@]host[:port]/path`: the path after the host is absolute; `/~/x` is `x` in the
 * login folder (SFTP resolves relative paths there), `/~` the login folder itself.
 */
export function parseSftpUrl(text: string): RemoteLocation {
  const match = /^sftp:\/\/(?:([^@/]*)@)?(\[[^\]]+\]|[^:/]*)(?::([^/]*))?(\/.*)?$/i.exec(text);
  if (!match) throw new AgentError('USAGE', `bad URL ${text}: expected sftp://[user@]host[:port]/path`);
  const [, userPart, hostPart, portPart, pathPart] = match;
  const host = hostPart!.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw new AgentError('USAGE', `bad URL ${text}: no host`);
  const target: RemoteTarget = { host };
  if (userPart !== undefined) {
    // user;fingerprint=… is allowed by the draft; only the user is ours.
    const user = decode(userPart.split(';')[0]!, text);
    if (user === '') throw new AgentError('USAGE', `bad URL ${text}: empty user name`);
    if (user.includes(':')) throw new AgentError('USAGE', `bad URL ${text}: a password does not belong in a URL (use FERRY_PASSWORD or the prompt)`);
    target.user = user;
  }
  if (portPart !== undefined && portPart !== '') target.port = parsePort(portPart, text);
  const rawPath = decode(pathPart ?? '/', text);
  return { kind: 'remote', target, ...remotePath(rawPath) };
}

function remotePath(rawPath: string): { path: string; trailingSlash: boolean } {
  const trailingSlash = rawPath.length > 1 && rawPath.endsWith('/');
  let path: string;
  if (rawPath === '/~' || rawPath === '/~/') path = '.';
  else if (rawPath.startsWith('/~/')) path = rawPath.slice(3);
  else path = rawPath;
  if (path.length > 1) path = path.replace(/\/+$/, '') || '/';
  return { path: path === '' ? '.' : path, trailingSlash };
}

function joinSiteFolder(folder: string | undefined, path: string): string {
  if (path.startsWith('/') || !folder) return path === '' ? (folder ?? '.') : path;
  if (path === '' || path === '.') return folder;
  return `${folder.replace(/\/+$/, '')}/${path}`;
}

/**
 * Reads one argument. `sftp://…` is a URL; `name:path` is a site of the config file when one has
 * that name, else OpenSSH's `[user@]host:path` (a local name with a colon needs `./`); anything
 * else is a local path.
 */
export function parseLocation(text: string, sites: Record<string, SiteDefinition>): Location {
  if (text === '') throw new AgentError('USAGE', 'an empty path was given');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    if (/^sftp:/i.test(text)) return parseSftpUrl(text);
    throw new AgentError('USAGE', `bad URL ${text}: only sftp:// URLs are supported`);
  }
  const scp = /^(?:([^@/:]+)@)?(\[[^\]]+\]|[^@/:[\]]+):(.*)$/.exec(text);
  if (scp && !text.startsWith('./') && !text.startsWith('/')) {
    const [, user, hostPart, rawPath] = scp;
    const name = hostPart!.replace(/^\[(.*)\]$/, '$1');
    const trailingSlash = rawPath!.length > 1 && rawPath!.endsWith('/');
    const trimmed = rawPath!.length > 1 ? rawPath!.replace(/\/+$/, '') : rawPath!;
    const site = Object.hasOwn(sites, name) ? sites[name] : undefined;
    if (site) {
      const target: RemoteTarget = { host: site.host, site: name };
      if (site.port !== undefined) target.port = site.port;
      if (user ?? site.user) target.user = user ?? site.user;
      return { kind: 'remote', target, path: joinSiteFolder(site.folder, trimmed), trailingSlash };
    }
    const target: RemoteTarget = { host: name };
    if (user) target.user = user;
    return { kind: 'remote', target, path: trimmed === '' ? '.' : trimmed, trailingSlash };
  }
  const trailingSlash = text.length > 1 && text.endsWith('/');
  const path = text.length > 1 ? text.replace(/\/+$/, '') || '/' : text;
  return { kind: 'local', path, trailingSlash };
}

/** Same server and login: two remote locations one connection serves. */
export function sameServer(a: RemoteTarget, b: RemoteTarget): boolean {
  return a.host === b.host && a.port === b.port && a.user === b.user && a.site === b.site;
}

/** For messages: `user@host:port:path`, never a password (there is none in a URL). */
export function describeLocation(location: Location): string {
  if (location.kind === 'local') return location.path;
  const { target } = location;
  const user = target.user ? `${target.user}@` : '';
  const port = target.port ? `:${target.port}` : '';
  return `sftp://${user}${target.host}${port}${location.path.startsWith('/') ? '' : '/~/'}${location.path === '.' ? '' : location.path}`;
}

export function hasGlob(path: string): boolean {
  return /[*?[]/.test(path);
}

/**
 * A jump-host list as OpenSSH's `-J` and `ProxyJump` take it: `[user@]host[:port]` or
 * `ssh://[user@]host[:port]`, comma-separated, visited in order.
 */
export function parseJumpHosts(spec: string, what: string): RemoteTarget[] {
  return spec.split(',').map((raw) => {
    const hop = raw.trim();
    const match = /^(?:ssh:\/\/)?(?:([^@/]+)@)?(\[[^\]]+\]|[^:/@[\]\s]+)(?::([^/]*))?\/?$/i.exec(hop);
    if (!match) throw new AgentError('USAGE', `bad jump host "${hop}" in ${what}: expected [user@]host[:port]`);
    const [, user, hostPart, port] = match;
    const target: RemoteTarget = { host: hostPart!.replace(/^\[(.*)\]$/, '$1') };
    if (user !== undefined) target.user = user;
    if (port !== undefined) target.port = parsePort(port, what);
    return target;
  });
}
