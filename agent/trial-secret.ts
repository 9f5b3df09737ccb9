import { randomBytes } from 'node:crypto';
import { AgentError } from './errors.js';
import { createFileOnce, readTextFile, UnreadableFileError } from './home.js';

/**
 * `$FERRY_HOME/trial-secret`: what proves to the license server that a trial request comes from
 * the installation that started this machine's trial. The fingerprint proves nothing: anyone who
 * knows the machine id can compute it. The secret is made here, once, before the first trial
 * request, so that a retry after a lost answer and two commands at once send the same one. It
 * stays when the license is deactivated (the trial can be activated here again) and is never
 * shown or reported; only its SHA-256 is kept on the server.
 */

/** The server's pattern (base64url, at least 32 bytes). */
const SECRET = /^[A-Za-z0-9_-]{43,128}$/;

async function readSecret(file: string): Promise<string | undefined> {
  let text: string | undefined;
  try {
    text = await readTextFile(file);
  } catch (err) {
    if (err instanceof UnreadableFileError) throw new AgentError('USAGE', err.message);
    throw err;
  }
  if (text === undefined) return undefined;
  const secret = text.trim();
  if (!SECRET.test(secret)) {
    throw new AgentError('USAGE', `${file} is damaged (it holds no activation secret): restore it from a backup of this ferry home`);
  }
  return secret;
}

/** This machine's activation secret, made (0600) the first time a trial is asked for. */
export async function trialSecret(file: string): Promise<string> {
  const kept = await readSecret(file);
  if (kept !== undefined) return kept;
  // Of two commands making one at once, one file wins and both send what it holds.
  await createFileOnce(file, `${randomBytes(32).toString('base64url')}\n`);
  const made = await readSecret(file);
  if (made === undefined) throw new Error(`${file} vanished right after it was made`);
  return made;
}
