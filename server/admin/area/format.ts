/** How the admin pages write numbers, times and countries: the same everywhere, in UTC. */

const number = new Intl.NumberFormat('en');
const dateTime = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC' });
const date = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeZone: 'UTC' });
const regions = new Intl.DisplayNames(['en'], { type: 'region', fallback: 'none' });

/** Codes that ICU names but that are not ISO 3166-1 countries. */
const NOT_COUNTRIES = new Set('AC AN BU CP CQ CS DD DG DY EA EU EZ FX HV IC NH QO RH SU TA TP UK UN VD XA XB XK YD YU ZR ZZ'.split(' '));

export function isCountryCode(code: string): boolean {
  return /^[A-Z]{2}$/.test(code) && !NOT_COUNTRIES.has(code) && regions.of(code) !== undefined;
}

export function countryName(code: string): string {
  if (!/^[A-Z]{2}$/.test(code)) return code;
  try {
    return regions.of(code) ?? code;
  } catch {
    return code;
  }
}

export const formatters = {
  number: (n: number) => number.format(n),
  dateTime: (d: Date | null) => (d ? `${dateTime.format(d)} UTC` : '—'),
  date: (d: Date | null) => (d ? date.format(d) : '—'),
  /** `YYYY-MM-DD` → `3 Mar 2026`. */
  day: (day: string) => date.format(new Date(`${day}T00:00:00Z`)),
  country: (code: string) => `${countryName(code)} (${code})`,
};

/** `YYYY-MM-DD` of a moment, UTC. */
export function dayOf(moment: Date): string {
  return moment.toISOString().slice(0, 10);
}

/** A real calendar day written `YYYY-MM-DD` (not 2026-02-30). */
export function isDay(text: string): boolean {
  const time = Date.parse(`${text}T00:00:00Z`);
  return /^\d{4}-\d{2}-\d{2}$/.test(text) && !Number.isNaN(time) && dayOf(new Date(time)) === text;
}
