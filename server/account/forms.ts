import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from './passwords.js';

/**
 * Form input of the portal, checked by hand rather than by a JSON schema, so that each field gets
 * its own message next to it, in words a customer understands.
 */
export type FieldErrors = Record<string, string>;

export class Form {
  readonly errors: FieldErrors = {};
  constructor(private readonly body: unknown) {}

  /** The field as one trimmed string ('' when missing; the first value when sent twice). */
  text(name: string): string {
    const raw = typeof this.body === 'object' && this.body !== null ? (this.body as Record<string, unknown>)[name] : undefined;
    const value = Array.isArray(raw) ? raw[0] : raw;
    return typeof value === 'string' ? value.trim() : typeof value === 'number' || typeof value === 'boolean' ? String(value) : '';
  }

  /** Passwords are taken as typed: spaces are characters too. */
  raw(name: string): string {
    const raw = typeof this.body === 'object' && this.body !== null ? (this.body as Record<string, unknown>)[name] : undefined;
    const value = Array.isArray(raw) ? raw[0] : raw;
    return typeof value === 'string' ? value : '';
  }

  checked(name: string): boolean {
    return ['on', 'yes', 'true', '1'].includes(this.text(name).toLowerCase());
  }

  fail(name: string, message: string): void {
    this.errors[name] ??= message;
  }

  get ok(): boolean {
    return Object.keys(this.errors).length === 0;
  }

  required(name: string, label: string, max: number): string {
    const value = this.text(name);
    if (value === '') this.fail(name, `Enter ${label}.`);
    else if (value.length > max) this.fail(name, `${capitalize(label)} can be at most ${max} characters long.`);
    else if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(value)) this.fail(name, `${capitalize(label)} contains characters that cannot be used.`);
    return value;
  }

  optional(name: string, label: string, max: number): string | null {
    const value = this.text(name);
    if (value === '') return null;
    return this.required(name, label, max);
  }

  email(name: string): string {
    const value = this.text(name).toLowerCase();
    if (value === '') this.fail(name, 'Enter your email address.');
    else if (value.length > 254 || !/^[^\s@<>()",;:]+@[^\s@<>()",;:]+\.[^\s@<>()",;:]+$/.test(value)) {
      this.fail(name, 'Enter an email address like name@example.com.');
    }
    return value;
  }

  newPassword(name: string): string {
    const value = this.raw(name);
    if (value === '') this.fail(name, 'Choose a password.');
    else if ([...value].length < PASSWORD_MIN_LENGTH) this.fail(name, `Use at least ${PASSWORD_MIN_LENGTH} characters.`);
    else if (value.length > PASSWORD_MAX_LENGTH) this.fail(name, `Use at most ${PASSWORD_MAX_LENGTH} characters.`);
    return value;
  }

  choice<T extends string>(name: string, choices: readonly T[], message: string): T {
    const value = this.text(name);
    if (!(choices as readonly string[]).includes(value)) this.fail(name, message);
    return value as T;
  }

  integer(name: string, label: string, min: number, max: number): number {
    const raw = this.text(name);
    const value = Number(raw);
    if (!/^\d{1,9}$/.test(raw) || value < min || value > max) this.fail(name, `Enter ${label}: a whole number from ${min} to ${max}.`);
    return value;
  }

  country(name: string): string {
    const value = this.text(name).toUpperCase();
    if (!COUNTRY_CODES.has(value)) this.fail(name, 'Choose your country from the list.');
    return value;
  }
}

const capitalize = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);

/** Codes that ICU names but that are not (or no longer) ISO 3166-1 countries. */
const NOT_COUNTRIES = new Set('AC AN BU CP CQ CS DD DG DY EA EU EZ FX HV IC NH QO RH SU TA TP UK UN VD XA XB XK YD YU ZR ZZ'.split(' '));

/** ISO 3166-1 alpha-2 countries with their English names, by name. */
export const COUNTRIES: { code: string; name: string }[] = (() => {
  const names = new Intl.DisplayNames(['en'], { type: 'region', fallback: 'none' });
  const list: { code: string; name: string }[] = [];
  for (let a = 65; a <= 90; a++) {
    for (let b = 65; b <= 90; b++) {
      const code = String.fromCharCode(a, b);
      const name = NOT_COUNTRIES.has(code) ? undefined : names.of(code);
      if (name) list.push({ code, name });
    }
  }
  return list.sort((x, y) => x.name.localeCompare(y.name, 'en'));
})();

const COUNTRY_CODES = new Set(COUNTRIES.map((c) => c.code));

export function countryName(code: string | null): string {
  return COUNTRIES.find((c) => c.code === code)?.name ?? code ?? '';
}

/** A claim code as the agent prints it, whatever the spacing or case the customer typed. */
export function normalizeClaimCode(text: string): string {
  return text.toUpperCase().replace(/[\s-]/g, '');
}
