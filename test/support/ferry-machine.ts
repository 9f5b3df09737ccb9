import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LicenseState } from '../../agent/license-state.js';
import { tempDir } from './temp.js';
import { TEST_ROOT } from './trust-root.js';
import { runToEnd } from './processes.js';

/** The built `ferry` binary, run as a user runs it: a child process with its own home and machine. */
export const CLI = fileURLToPath(new URL('../../agent/cli.js', import.meta.url));

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * One machine with ferry installed: its own FERRY_HOME and machine id (another's, for a clone). It trusts the test run's
 * root (FERRY_TRUST_ROOT) unless `env` says otherwise; `cli` runs another build of ferry.
 */
export class Machine {
  readonly home: string;
  readonly id: string;
  private readonly cli: string;

  /** `id`: another machine's, for a clone that knows it; `cli`: another build of ferry; `home`: another machine's ferry home. */
  constructor(options: { id?: string; cli?: string; home?: string } = {}) {
    this.id = options.id ?? `machine-${randomBytes(8).toString('hex')}`;
    this.cli = options.cli ?? CLI;
    this.home = options.home ?? tempDir('ferry-home-');
  }

  /** The same installation (this ferry home) after its machine id changed: a kernel upgrade, a VM move. */
  withNewId(id = `machine-${randomBytes(8).toString('hex')}`): Machine {
    return new Machine({ id, cli: this.cli, home: this.home });
  }

  private environment(options: { now?: number; env?: Record<string, string> }): Record<string, string | undefined> {
    const env: Record<string, string | undefined> = {
      ...process.env, FERRY_TRUST_ROOT: TEST_ROOT.publicFile, ...options.env, FERRY_HOME: this.home, FERRY_MACHINE_ID: this.id,
    };
    delete env.FERRY_SERVER;
    delete env.FERRY_NOW;
    if (options.now !== undefined) env.FERRY_NOW = String(options.now);
    return env;
  }

  run(args: string[], options: { now?: number; env?: Record<string, string> } = {}): Promise<Run> {
    return runToEnd(process.execPath, [this.cli, ...args], this.environment(options));
  }

  get licenseFile(): string {
    return join(this.home, 'license.json');
  }

  license(): LicenseState {
    return JSON.parse(readFileSync(this.licenseFile, 'utf8')) as LicenseState;
  }

  hasLicense(): boolean {
    return existsSync(this.licenseFile);
  }

  spooledKinds(): string[] {
    const file = join(this.home, 'usage-spool.jsonl');
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { kind: string }).kind);
  }
}
