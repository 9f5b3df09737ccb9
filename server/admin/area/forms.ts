/** A field of a posted form as one trimmed string ('' when missing; the first value when sent twice). */
export function field(body: unknown, name: string): string {
  const raw = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[name] : undefined;
  const value = Array.isArray(raw) ? raw[0] : raw;
  return typeof value === 'string' ? value.trim() : '';
}

/** A query parameter the same way. */
export const param = field;

export type FieldErrors = Record<string, string>;
