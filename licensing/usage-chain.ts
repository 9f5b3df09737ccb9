import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';

/**
 * Signed, hash-chained usage events (issue 14): the agent signs each trial usage event with its
 * device key (agent/device-key.ts) and names the previous event's hash, so that the server can tell
 * an honest installation's one unbroken history from edited, replayed, cloned (forked) or back-dated
 * reports. Shared by the agent (which makes events) and the server (which checks them).
 *
 * The canonical bytes of an event, which are signed and hashed, are the UTF-8 of
 *
 *     JSON.stringify(["ferry-usage-event/1", activationId, counter, prev, at, locale, kind])
 *
 * a JSON array (no whitespace) in exactly that order: the activation id (an integer, from the
 * token's `aid`), the counter (1, 2, 3… per device key and activation), `prev` (base64url SHA-256 of
 * the previous event's canonical bytes), then the three reported fields as sent. JSON.stringify
 * writes each string and integer one way only, so both sides make the same bytes from the same
 * values. `hash` = SHA-256(canonical bytes); `sig` = Ed25519(device key, canonical bytes), base64url.
 * The first event's `prev` is the genesis value:
 *
 *     SHA-256(UTF-8 of JSON.stringify(["ferry-usage-genesis/1", activationId, devicePublicKey]))
 *
 * which ties the chain to one activation and one key: a new key (a remade home) starts a new chain.
 */

export const USAGE_EVENT_DOMAIN = 'ferry-usage-event/1';
export const USAGE_GENESIS_DOMAIN = 'ferry-usage-genesis/1';

/** A SHA-256, base64url without padding. */
export const CHAIN_HASH_PATTERN = '^[A-Za-z0-9_-]{43}$';
/** An Ed25519 signature (64 bytes), base64url without padding. */
export const CHAIN_SIGNATURE_PATTERN = '^[A-Za-z0-9_-]{86}$';

/** What a usage event reports: the fields of an unsigned event (agents from before device keys). */
export interface ReportedUse {
  /** ISO time with milliseconds, as the agent's clock said. */
  at: string;
  locale: string;
  kind: string;
}

/** A signed usage event as it is spooled and sent: the reported fields, its place in the chain, its signature. */
export interface ChainedUse extends ReportedUse {
  counter: number;
  prev: string;
  sig: string;
}

export function chainGenesis(activationId: number, devicePublicKey: string): string {
  return sha256(JSON.stringify([USAGE_GENESIS_DOMAIN, activationId, devicePublicKey]));
}

export function canonicalUsageBytes(activationId: number, event: Omit<ChainedUse, 'sig'>): Buffer {
  return Buffer.from(JSON.stringify([USAGE_EVENT_DOMAIN, activationId, event.counter, event.prev, event.at, event.locale, event.kind]), 'utf8');
}

/** The event's hash: what the next event names as `prev`. */
export function usageEventHash(activationId: number, event: Omit<ChainedUse, 'sig'>): string {
  return createHash('sha256').update(canonicalUsageBytes(activationId, event)).digest('base64url');
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('base64url');
}

/** The raw 32-byte Ed25519 public key (as activations.device_key holds it) as a key object. */
export function ed25519PublicKey(raw: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
}

/** Whether `sig` is the device key's signature of the event's canonical bytes. */
export function verifyUsageSignature(publicKey: KeyObject, activationId: number, event: ChainedUse): boolean {
  try {
    return verify(null, canonicalUsageBytes(activationId, event), publicKey, Buffer.from(event.sig, 'base64url'));
  } catch {
    return false;
  }
}
