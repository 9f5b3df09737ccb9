import { createHash, randomBytes } from 'node:crypto';

/**
 * License keys: 25 characters of Crockford base32 in five groups, `7K3QD-M0ZP4-…`. The first 24
 * carry 120 random bits; the last is a Luhn mod 32 check character, so that a mistyped character
 * or two swapped neighbours are caught on the customer's machine before any request is made.
 * Crockford's alphabet has no I, L, O or U; when read back, I and L count as 1 and O as 0.
 */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const BASE = ALPHABET.length;
const RANDOM_CHARS = 24;
const GROUP = 5;

export class KeyFormatError extends Error {
  override readonly name = 'KeyFormatError';
}

function codePoint(ch: string): number {
  const value = ALPHABET.indexOf(ch);
  if (value < 0) throw new KeyFormatError(`license keys do not contain "${ch}"`);
  return value;
}

/** Luhn mod N over the alphabet: the sum with the check character included is 0 mod 32. */
function luhnSum(chars: string, doubleFirstFromRight: boolean): number {
  let sum = 0;
  let double = doubleFirstFromRight;
  for (let i = chars.length - 1; i >= 0; i--) {
    let addend = codePoint(chars[i]!) * (double ? 2 : 1);
    addend = Math.floor(addend / BASE) + (addend % BASE);
    sum += addend;
    double = !double;
  }
  return sum % BASE;
}

function checkCharacter(body: string): string {
  return ALPHABET[(BASE - luhnSum(body, true)) % BASE]!;
}

function group(chars: string): string {
  return chars.match(new RegExp(`.{1,${GROUP}}`, 'g'))!.join('-');
}

/** A new random key, grouped for reading. */
export function generateKey(random: (size: number) => Buffer = randomBytes): string {
  const bytes = random(RANDOM_CHARS);
  let body = '';
  for (const byte of bytes) body += ALPHABET[byte & 31];
  return group(body + checkCharacter(body));
}

/**
 * Reads a key as a person typed it (any case, spaces or dashes anywhere, O for 0, I or L for 1) and
 * returns it in canonical grouped form. Throws KeyFormatError with the reason otherwise.
 */
export function parseKey(text: string): string {
  const chars = text
    .toUpperCase()
    .replace(/[\s-]/g, '')
    .replace(/O/g, '0')
    .replace(/[IL]/g, '1');
  if (chars.length !== RANDOM_CHARS + 1) {
    throw new KeyFormatError(`a license key has ${RANDOM_CHARS + 1} characters, this one has ${chars.length}`);
  }
  for (const ch of chars) codePoint(ch);
  if (luhnSum(chars, false) !== 0) {
    throw new KeyFormatError('the key is mistyped: its check character does not match');
  }
  return group(chars);
}

/**
 * What the server stores and looks keys up by. Keys are secrets, so the table holds only this digest;
 * 120 random bits need no slow hash, a plain SHA-256 cannot be reversed or guessed.
 */
export function keyDigest(canonicalKey: string): Buffer {
  return createHash('sha256').update(canonicalKey).digest();
}

/** The last group, shown to people to tell their keys apart. */
export function keyHint(canonicalKey: string): string {
  return canonicalKey.slice(-GROUP);
}
