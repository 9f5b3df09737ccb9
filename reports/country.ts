import geoip from 'geoip-country';

/**
 * The country of a report: from the IP address the server saw (offline database of geoip-country),
 * else the region of the locale (`de-AT` → AT), else `ZZ` (unknown, as ISO 3166 reserves it).
 */
export function countryOf(ip: string | null, locale: string | null): string {
  if (ip) {
    const found = geoip.lookup(ip.replace(/^::ffff:/, ''));
    if (found?.country && /^[A-Z]{2}$/.test(found.country)) return found.country;
  }
  const region = locale ? /^[A-Za-z]{2,3}[-_](?:[A-Za-z]{4}[-_])?([A-Za-z]{2})\b/.exec(locale)?.[1] : undefined;
  return region ? region.toUpperCase() : 'ZZ';
}
