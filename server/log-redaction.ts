import type { FastifyRequest } from 'fastify';

/**
 * Query parameters that carry a secret or a person's address: mailed single-use tokens
 * (`/account/verify?token=`, `/account/password/reset?token=`), the unsubscribe link's key and
 * address (`/unsubscribe?e=…&t=…`), and any code or key a client may put in an address. Their
 * values never reach the log: someone who reads the log must not be able to follow the link.
 */
export const SECRET_QUERY_PARAMETERS = ['token', 't', 'key', 'code', 'e', 'email', 'password', 'secret', 'claim', 'claimCode'] as const;

const SECRET_IN_QUERY = new RegExp(`([?&](?:${SECRET_QUERY_PARAMETERS.join('|')})=)[^&#\\s"'<>]*`, 'gi');

export const REDACTED = '[redacted]';

/** `/account/verify?token=abc&x=1` → `/account/verify?token=[redacted]&x=1`; anything else as it was. */
export function redactSecrets(text: string): string {
  return text.includes('=') ? text.replace(SECRET_IN_QUERY, `$1${REDACTED}`) : text;
}

/** Fastify's request serializer, with the secrets taken out of the address. */
export function serializeRequest(request: FastifyRequest) {
  return {
    method: request.method,
    url: redactSecrets(request.url),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

/** One level deep: the strings of a log line's object (`{ url }`, an error's message) and its message. */
function redactValue(value: unknown): unknown {
  if (typeof value === 'string') return redactSecrets(value);
  if (value instanceof Error) {
    const message = redactSecrets(value.message);
    if (message === value.message) return value;
    const copy = new Error(message);
    Object.assign(copy, value, { message, stack: value.stack && redactSecrets(value.stack) });
    return copy;
  }
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const entries = Object.entries(value as Record<string, unknown>);
    if (!entries.some(([, v]) => typeof v === 'string' || v instanceof Error)) return value;
    return Object.fromEntries(entries.map(([k, v]) => [k, typeof v === 'string' || v instanceof Error ? redactValue(v) : v]));
  }
  return value;
}

/**
 * pino's `hooks.logMethod`: every line, whoever writes it (our code, Fastify's "Route … not found",
 * a plugin), has the secrets of any address in its message and fields taken out.
 */
export function redactLogArguments(this: unknown, args: unknown[], method: (...args: unknown[]) => void): void {
  method.apply(this, args.map(redactValue));
}
