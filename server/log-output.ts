/**
 * Where the logs go: readable lines (pino-pretty) when a person watches a terminal, one JSON object
 * a line otherwise (a file, journald, a container's log driver, a log shipper).
 */
export function logTransport(stdout: { isTTY?: boolean } = process.stdout): { transport?: { target: string; options: Record<string, unknown> } } {
  if (!stdout.isTTY) return {};
  return { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', singleLine: false } } };
}
