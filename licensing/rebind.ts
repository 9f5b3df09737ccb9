/**
 * The statement a machine signs with its device key to move its activation to a new fingerprint
 * (a kernel upgrade, a VM move or WSL changed its machine id). It names the activation, both
 * fingerprints and a challenge the server issued for this one move, so a signature proves nothing
 * but this move, once: the server hands out each challenge once and forgets it when it is used.
 */
export const REBIND_STATEMENT_VERSION = 'ferry-rebind/v1';

export interface RebindStatement {
  activationId: number;
  fromFingerprint: string;
  toFingerprint: string;
  challenge: string;
}

/** The exact bytes that are signed (UTF-8): one field a line, so no field can run into the next. */
export function rebindStatement({ activationId, fromFingerprint, toFingerprint, challenge }: RebindStatement): string {
  return [REBIND_STATEMENT_VERSION, String(activationId), fromFingerprint, toFingerprint, challenge].join('\n');
}
