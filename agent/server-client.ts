import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { AgentError } from './errors.js';

/**
 * HTTP to the license server: JSON in and out, a timeout on every call, and the two ways a call
 * can fail sorted apart. A server that cannot be reached (network error, timeout, 503) becomes
 * AgentError SERVER_UNREACHABLE; a server that answers with an error becomes ServerError with its
 * `{"error": {"code", "message"}}`, for the caller to branch on the code.
 */

/** Activation and other calls the user waits for on purpose. */
export const INTERACTIVE_TIMEOUT_MS = 10_000;
/** Lease renewal (before a command's real work) and usage reports (beside it, awaited at its end): an outage must not stall either. */
export const BACKGROUND_TIMEOUT_MS = 3_000;

export class ServerError extends Error {
  override readonly name = 'ServerError';
  constructor(
    readonly status: number,
    readonly code: string,
    readonly serverMessage: string,
    /** Seconds, from Retry-After on 429. */
    readonly retryAfterSeconds: number | null,
  ) {
    super(`${code}: ${serverMessage}`);
  }
}

export interface ServerRequest {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  body?: unknown;
  /** A license token, sent as `Authorization: Bearer`. */
  token?: string;
  timeoutMs: number;
}

export interface ServerReply {
  status: number;
  /** Parsed JSON, or undefined for an empty body (204). */
  body: unknown;
}

/** Checks and normalizes a server URL as the user gave it: http(s), no trailing slash. */
export function normalizeServerUrl(text: string, from: string): string {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new AgentError('USAGE', `${from}: "${text}" is not a URL (expected e.g. https://license.example.com)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new AgentError('USAGE', `${from}: the license server URL must start with http:// or https://, got "${text}"`);
  }
  return url.href.replace(/\/+$/, '');
}

function unreachable(server: string, reason: string): AgentError {
  return new AgentError('SERVER_UNREACHABLE', `cannot reach the license server at ${server} (${reason})`);
}

/**
 * A license server that took the time allowed without answering (a firewall that drops the
 * packets, a server that hangs), as against one that refused at once: SERVER_UNREACHABLE too.
 */
export class ServerSilent extends AgentError {
  constructor(server: string, reason: string) {
    super('SERVER_UNREACHABLE', `cannot reach the license server at ${server} (${reason})`);
  }
}

/** Why the request failed, in a few words: the system error code where there is one. */
function networkReason(err: unknown, timeoutMs: number): string {
  if (err instanceof RequestTimeout) return `no answer within ${timeoutMs / 1000} s`;
  const code = (err as { code?: unknown }).code;
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ENOTFOUND') return 'unknown host name';
  // TLS: an untrusted, expired or misnamed certificate is refused, and says so in words.
  if (typeof code === 'string' && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code)) {
    return `its TLS certificate was refused: ${err instanceof Error ? err.message : code}`;
  }
  if (typeof code === 'string') return code;
  return err instanceof Error ? err.message : String(err);
}

class RequestTimeout extends Error {}

function parseRetryAfter(value: string | string[] | undefined): number | null {
  if (typeof value !== 'string' || !/^\d+$/.test(value.trim())) return null;
  return Number(value.trim());
}

interface RawReply {
  status: number;
  statusText: string;
  headers: IncomingHttpHeaders;
  text: string;
}

/**
 * One HTTP exchange with node:http(s). Not fetch: undici, once loaded, left V8 collecting its old
 * generation every 50 ms during a transfer that followed (40 mark-compacts instead of 7 for a
 * 512 MiB upload; a third of the upload's CPU). No redirects are followed, TLS certificates are
 * verified, and `timeoutMs` covers connecting, sending and the whole answer.
 */
function exchange(url: URL, method: string, headers: Record<string, string>, body: string | undefined, timeoutMs: number): Promise<RawReply> {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const request = send(url, { method, headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) }, agent: false });
    const timer = setTimeout(() => request.destroy(new RequestTimeout()), timeoutMs);
    const fail = (err: unknown) => {
      clearTimeout(timer);
      reject(err);
    };
    request.once('error', fail);
    request.once('response', (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.once('error', fail);
      response.once('end', () => {
        clearTimeout(timer);
        resolve({ status: response.statusCode ?? 0, statusText: response.statusMessage ?? '', headers: response.headers, text });
      });
    });
    request.end(body);
  });
}

export async function callServer(server: string, request: ServerRequest): Promise<ServerReply> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (request.body !== undefined) headers['content-type'] = 'application/json';
  if (request.token !== undefined) headers.authorization = `Bearer ${request.token}`;

  let reply: RawReply;
  try {
    reply = await exchange(new URL(`${server}${request.path}`), request.method, headers, request.body === undefined ? undefined : JSON.stringify(request.body), request.timeoutMs);
  } catch (err) {
    if (err instanceof RequestTimeout) throw new ServerSilent(server, networkReason(err, request.timeoutMs));
    throw unreachable(server, networkReason(err, request.timeoutMs));
  }

  if (reply.status === 503) {
    const after = parseRetryAfter(reply.headers['retry-after']);
    throw unreachable(server, after === null ? 'it is unavailable' : `it is unavailable; try again in ${after} s`);
  }

  let body: unknown;
  if (reply.text.trim() !== '') {
    try {
      body = JSON.parse(reply.text);
    } catch {
      throw new AgentError('SERVER_ERROR', `${server} does not answer like a Ferry license server (HTTP ${reply.status}, not JSON)`);
    }
  }
  if (reply.status >= 200 && reply.status < 300) return { status: reply.status, body };

  const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const code = typeof error?.code === 'string' ? error.code : `HTTP_${reply.status}`;
  const message = typeof error?.message === 'string' ? error.message : reply.statusText || 'no message';
  throw new ServerError(reply.status, code, message, parseRetryAfter(reply.headers['retry-after']));
}

/**
 * What a refusal by the server means for the user. Codes the agent has an exit code for get it,
 * with a hint what to do; anything else is SERVER_ERROR with the server's own code and message.
 */
export function refusalToAgentError(err: ServerError): AgentError {
  switch (err.code) {
    case 'SEATS_EXHAUSTED':
      return new AgentError('SEATS_EXHAUSTED', `${err.serverMessage} (run "ferry deactivate" there, or deactivate it in MyAccount)`);
    case 'LICENSE_NOT_FOUND':
      return new AgentError('LICENSE_NOT_FOUND', 'the license server does not know this key: compare it with the one in your purchase email');
    case 'LICENSE_REVOKED':
      return new AgentError('LICENSE_REVOKED', 'this license has been revoked: contact Ferry support');
    case 'LICENSE_SUSPENDED':
      return new AgentError('LICENSE_REVOKED', 'this license is suspended: contact Ferry support to have it reinstated');
    case 'LICENSE_CANCELLED':
      return new AgentError('LICENSE_REVOKED', 'this license has been cancelled: contact Ferry support');
    case 'TRIAL_EXPIRED':
      return new AgentError('TRIAL_EXPIRED', `${err.serverMessage} (buy a license, then run "ferry activate --key KEY")`);
    case 'ACTIVATION_INACTIVE':
      return new AgentError('ACTIVATION_INACTIVE', 'this machine was deactivated elsewhere (e.g. in MyAccount): run "ferry activate" again to use it here');
    case 'TRIAL_EXISTS':
      return new AgentError('TRIAL_EXISTS', `${err.serverMessage}; its activation secret is not in this ferry home (buy a license, then run "ferry activate --key KEY")`);
    case 'KEY_FORMAT':
      return new AgentError('BAD_KEY_FORMAT', `bad license key: ${err.serverMessage}`);
    case 'TOKEN_WRONG_MACHINE':
      return new AgentError('NO_LICENSE', 'the license server says this license belongs to another machine: run "ferry activate" on this one');
    default: {
      const retry = err.retryAfterSeconds === null ? '' : ` (try again in ${err.retryAfterSeconds} s)`;
      return new AgentError('SERVER_ERROR', `the license server refused: ${err.code}: ${err.serverMessage}${retry}`);
    }
  }
}

/** Unreachable or refused, as the AgentError the user sees; anything else passes through. */
export function asAgentError(err: unknown): unknown {
  return err instanceof ServerError ? refusalToAgentError(err) : err;
}
