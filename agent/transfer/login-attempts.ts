/**
 * What a login offered, for the line that says why it was refused (shown without -v too) and for
 * `-v`. SSH tells a client only which methods may continue after a failure, never why a key or a
 * password was refused, so "refused" is all there is to say of each one; what is worth saying is
 * which were tried, which were not (and why), and what the server accepts. Descriptions name key
 * files and public fingerprints, and where a password came from: never a secret.
 */

export interface Attempt {
  /** The SSH method name: publickey (keys and ssh-agent), password. */
  method: string;
  /** `key ~/.ssh/id_ed25519 (ssh-ed25519 SHA256:…)`, `ssh-agent`, `password from FERRY_PASSWORD`. */
  what: string;
}

export class LoginAttempts {
  /** The methods the server accepts, from its answer to "none"; null before it has answered. */
  accepted: string[] | null = null;
  readonly tried: Attempt[] = [];
  /** Ways ferry had that the server does not accept (`key … (publickey)`). */
  readonly notAccepted: string[] = [];
  /** Keys that could not be used (`key … (encrypted, no passphrase)`). */
  readonly unusable: string[] = [];

  /**
   * `tried publickey (key …; ssh-agent), password (from FERRY_PASSWORD); the server accepts
   * publickey, password`, or `nothing` when nothing was offered (the caller says what to do).
   */
  describe(nothingToOffer: string): string {
    const parts: string[] = [];
    if (this.tried.length > 0) {
      const byMethod = new Map<string, string[]>();
      for (const { method, what } of this.tried) byMethod.set(method, [...(byMethod.get(method) ?? []), what]);
      parts.push(`tried ${[...byMethod].map(([method, whats]) => `${method} (${whats.join('; ')})`).join(', ')}`);
    } else if (this.notAccepted.length === 0) {
      parts.push(nothingToOffer);
    }
    if (this.accepted) parts.push(`the server accepts ${this.accepted.join(', ') || 'no method'}`);
    if (this.notAccepted.length > 0) parts.push(`not offered, the server does not accept it: ${this.notAccepted.join(', ')}`);
    if (this.unusable.length > 0) parts.push(`not usable: ${this.unusable.join(', ')}`);
    return parts.join('; ');
  }
}
