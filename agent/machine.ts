import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import machineIdPackage from 'node-machine-id';
import { fingerprint } from '../licensing/index.js';
import { createFileOnce, readTextFile } from './home.js';

/** Where this machine's id came from: status and privacy say it, so a user can tell. */
export type MachineIdSource = 'FERRY_MACHINE_ID' | 'os' | 'generated';

export interface MachineIdentity {
  /** HMAC-SHA256 of the machine id: the only form the id ever leaves the machine in. */
  fingerprint: string;
  source: MachineIdSource;
}

/**
 * The OS machine id as node-machine-id reads it (the original, not its own hash), or '' when none.
 * On Linux the package runs a shell, `( cat /var/lib/dbus/machine-id /etc/machine-id || hostname )
 * | head -n 1`: four processes, forked from ferry's main thread (3-5 ms of it, and 10 ms of the
 * other core, on every command). ferry reads those files itself and makes the same string of them
 * (linuxMachineId; test/agent-machine-id.test.ts compares it with the package's); elsewhere the
 * package answers, asynchronously.
 */
export async function readOsMachineId(): Promise<string> {
  try {
    const id = process.platform === 'linux' ? linuxMachineId() : (await machineIdPackage.machineId(true)).trim();
    // On Linux without /etc/machine-id the package falls back to the host name, which is neither
    // unique (every container called "localhost") nor stable; that is no machine id for a trial.
    return id.toLowerCase() === hostname().trim().toLowerCase() ? '' : id;
  } catch {
    return '';
  }
}

/** The files node-machine-id's Linux command reads, in its order. */
const LINUX_MACHINE_ID_FILES = ['/var/lib/dbus/machine-id', '/etc/machine-id'];

/**
 * What node-machine-id's Linux command prints, made without it: what `cat` writes of the files
 * that can be read, then (when one cannot, `cat` fails) the host name; its first line, without
 * white space, in lower case (the package's `expose`).
 */
export function linuxMachineId(files: string[] = LINUX_MACHINE_ID_FILES, host: () => string = hostname): string {
  let text = '';
  let failed = false;
  for (const file of files) {
    try {
      text += readFileSync(file, 'utf8');
    } catch {
      failed = true;
    }
  }
  if (failed) text += `${host()}\n`;
  return text.split('\n', 1)[0]!.replace(/\s+/g, '').toLowerCase();
}

export interface IdentifyOptions {
  /** FERRY_MACHINE_ID: for tests, replaces the OS machine id (development builds only: see context.ts). */
  override: string | undefined;
  /** `$FERRY_HOME/machine-id`, the fallback. */
  fallbackFile: string;
  /** One line for the user on stderr. */
  notice: (message: string) => void;
  readOsId?: () => string | Promise<string>;
}

/**
 * The machine's fingerprint: FERRY_MACHINE_ID when set, else the OS machine id, else an id
 * generated once into the agent's home (the user is told when it is made, since reinstalling
 * the OS or removing the folder then makes this a new machine).
 */
export async function identifyMachine(options: IdentifyOptions): Promise<MachineIdentity> {
  const override = options.override?.trim();
  if (override) return { fingerprint: fingerprint(override), source: 'FERRY_MACHINE_ID' };

  const osId = await (options.readOsId ?? readOsMachineId)();
  if (osId) return { fingerprint: fingerprint(osId), source: 'os' };

  const kept = (await readTextFile(options.fallbackFile))?.trim();
  if (kept) return { fingerprint: fingerprint(kept), source: 'generated' };

  const created = await createFileOnce(options.fallbackFile, `${randomUUID()}\n`);
  if (created) {
    options.notice(`no machine id is readable on this system: using a generated one kept in ${options.fallbackFile}`);
  }
  const id = (await readTextFile(options.fallbackFile))?.trim();
  if (!id) throw new Error(`${options.fallbackFile} is empty`);
  return { fingerprint: fingerprint(id), source: 'generated' };
}
