/**
 * Whether the single executable's code cache was taken (server/releases/sea/main.cjs sets it
 * before the bundle runs): `accepted`, `rejected` (V8 compiled as it went: slower starts), or null
 * outside the single executable. For `-vv`.
 */
export function codeCacheState(): 'accepted' | 'rejected' | null {
  const state: unknown = (globalThis as Record<symbol, unknown>)[Symbol.for('ferry.codeCache')];
  return state === 'accepted' || state === 'rejected' ? state : null;
}

/** The `-vv` line for codeCacheState, or null when there is nothing to say. */
export function codeCacheNote(): string | null {
  switch (codeCacheState()) {
    case 'accepted':
      return 'compiled code from the executable\'s code cache';
    case 'rejected':
      return 'the executable\'s code cache does not fit this Node\'s V8 flags (NODE_OPTIONS?): compiling as it runs';
    default:
      return null;
  }
}
