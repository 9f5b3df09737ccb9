/**
 * Asking the person at the terminal for a secret (a password, a key's passphrase) without echoing
 * it. Only on a terminal: scripts give FERRY_PASSWORD / FERRY_KEY_PASSPHRASE instead, and a
 * command never waits on a pipe for an answer nobody can give.
 */
export interface Terminal {
  input: NodeJS.ReadStream;
  output: NodeJS.WriteStream;
}

export type SecretPrompt = (question: string) => Promise<string>;

export function terminalPrompt(terminal: Terminal | null): SecretPrompt | null {
  if (!terminal || !terminal.input.isTTY || !terminal.output.isTTY) return null;
  return (question) =>
    new Promise((resolve, reject) => {
      const { input, output } = terminal;
      // Echo off before the question shows: what is typed as soon as it appears is not echoed.
      input.setRawMode(true);
      output.write(question);
      input.resume();
      let answer = '';
      const finish = (error?: Error) => {
        input.setRawMode(false);
        input.pause();
        input.removeListener('data', onData);
        output.write('\n');
        if (error) reject(error);
        else resolve(answer);
      };
      const onData = (chunk: Buffer) => {
        for (const char of chunk.toString('utf8')) {
          if (char === '\r' || char === '\n') return finish();
          if (char === '\u0003') return finish(new Error('interrupted'));
          if (char === '\u007f' || char === '\b') answer = answer.slice(0, -1);
          else answer += char;
        }
      };
      input.on('data', onData);
    });
}
