export * from './duration.js';
export * from './fingerprint.js';
export * from './key.js';
export * from './policy.js';
export * from './token.js';
export * from './trust.js';
export * from './certificate.js';
export * from './usage-chain.js';
