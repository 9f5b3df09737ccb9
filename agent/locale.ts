/** Language tags as usage events carry them: `en-US`, or `und` when the system names none. */
export const UNDETERMINED_LOCALE = 'und';

/** `de_DE.UTF-8@euro` → `de-DE`; `C`, `POSIX` and nothing → null. */
function localeFromPosix(value: string | undefined): string | null {
  const name = value?.split(/[.@]/)[0]?.trim();
  if (!name || name === 'C' || name === 'POSIX') return null;
  try {
    return new Intl.Locale(name.replace(/_/g, '-')).baseName;
  } catch {
    return null;
  }
}

/**
 * The user's locale: what Intl resolves (language and region only, no Unicode extensions), else
 * the POSIX locale variables, else `und`.
 */
export function detectLocale(env: Record<string, string | undefined>): string {
  // PluralRules resolves the same default locale as DateTimeFormat (checked for de_DE, fr_CA,
  // zh_TW, sr_RS@latin, pt_BR, C) without loading ICU's calendar data: 0.4 ms instead of 17 ms at
  // every start.
  const resolved = new Intl.PluralRules().resolvedOptions().locale;
  if (resolved && resolved !== UNDETERMINED_LOCALE) {
    try {
      return new Intl.Locale(resolved).baseName;
    } catch {
      // fall through to the environment
    }
  }
  return localeFromPosix(env.LC_ALL) ?? localeFromPosix(env.LC_MESSAGES) ?? localeFromPosix(env.LANG) ?? UNDETERMINED_LOCALE;
}
