import { closestName } from './suggest.js';

/**
 * The keys `$FERRY_HOME/config.json` may hold, in one table: a key ferry does not know is most
 * often a typo ("sever", "paralell") that would otherwise be ignored in silence, the setting not
 * taking effect. Each command warns of them once (context.ts), naming them, and goes on: a config
 * written for a newer ferry still works with this one.
 */
const TOP_LEVEL = ['server', 'sites', 'transfers'] as const;
/** Of a site (settings.ts parseSites; `password` is refused there with its own message). */
const SITE = ['host', 'port', 'user', 'key', 'folder', 'password'] as const;
/** Of `transfers` (settings.ts loadTransferConfig). */
const TRANSFERS = ['parallel', 'connections', 'retries', 'timeout'] as const;

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function check(where: string, value: Record<string, unknown>, known: readonly string[], found: string[]): void {
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const near = closestName(key, known);
    found.push(`"${where}${key}"${near !== undefined ? ` (did you mean "${near}"?)` : ''}`);
  }
}

/** `"sever" (did you mean "server"?)`, `"sites.prod.hots" (…)`: the keys of `config` ferry does not know. */
export function unknownConfigKeys(config: unknown): string[] {
  if (!isObject(config)) return [];
  const found: string[] = [];
  check('', config, TOP_LEVEL, found);
  if (isObject(config.sites)) {
    for (const [name, site] of Object.entries(config.sites)) if (isObject(site)) check(`sites.${name}.`, site, SITE, found);
  }
  if (isObject(config.transfers)) check('transfers.', config.transfers, TRANSFERS, found);
  return found;
}
