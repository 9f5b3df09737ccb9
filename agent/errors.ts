import { exitCodeOf, type ExitName } from './exit-codes.js';
import { printable } from './terminal-text.js';

/**
 * An error the user can act on: the exit code it ends the command with, and one line saying why
 * (printed as `ferry: <message>`). Everything that is not an AgentError is a bug, reported as an
 * internal error.
 */
export class AgentError extends Error {
  override readonly name = 'AgentError';
  constructor(readonly exit: ExitName, message: string) {
    super(message);
  }

  get exitCode(): number {
    return exitCodeOf(this.exit);
  }
}

export interface Failure {
  exitCode: number;
  /** One line, without the `ferry: ` prefix. */
  message: string;
}

/**
 * What the user sees when a command fails: never a stack trace, always one line. Messages carry
 * paths and servers' words, so they are shown through `printable` (a newline in a file name
 * shows as `\n`, not as a second line).
 */
export function describeFailure(err: unknown): Failure {
  if (err instanceof AgentError) return { exitCode: err.exitCode, message: printable(err.message.trim()) };
  const message = err instanceof Error ? err.message : String(err);
  return { exitCode: exitCodeOf('INTERNAL'), message: `internal error: ${printable(oneLine(message))}` };
}

/** Node's and commander's messages may span lines: those breaks are layout, not content. */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
