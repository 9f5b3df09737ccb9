import assert from 'node:assert/strict';
import { generateKey, keyDigest, KeyFormatError, keyHint, parseKey } from '../licensing/index.js';

describe('license keys', () => {
  it('reads back every generated key as itself', () => {
    for (let i = 0; i < 500; i++) {
      const key = generateKey();
      assert.match(key, /^[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){4}$/);
      assert.equal(parseKey(key), key);
    }
  });

  it('accepts a key typed in lower case, without dashes, with O for 0 and I or L for 1', () => {
    const key = generateKey(() => Buffer.alloc(24, 0)); // all zeros: 0000…
    const typed = key.toLowerCase().replace(/-/g, ' ').replace(/0/g, 'o');
    assert.equal(parseKey(typed), key);
    const withOnes = generateKey(() => Buffer.alloc(24, 1));
    assert.equal(parseKey(withOnes.replace(/1/g, 'l')), withOnes);
  });

  it('catches every single mistyped character before any request is made', () => {
    const key = generateKey();
    const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
    const chars = key.replace(/-/g, '');
    for (let position = 0; position < chars.length; position++) {
      for (const wrong of alphabet) {
        if (wrong === chars[position]) continue;
        const typo = chars.slice(0, position) + wrong + chars.slice(position + 1);
        assert.throws(() => parseKey(typo), KeyFormatError, `typo at ${position} (${wrong}) passed`);
      }
    }
  });

  it('catches two neighbouring characters swapped', () => {
    let caught = 0;
    let tried = 0;
    for (let n = 0; n < 50; n++) {
      const chars = generateKey().replace(/-/g, '');
      for (let i = 0; i + 1 < chars.length; i++) {
        if (chars[i] === chars[i + 1]) continue;
        tried++;
        const swapped = chars.slice(0, i) + chars[i + 1] + chars[i] + chars.slice(i + 2);
        try {
          parseKey(swapped);
        } catch {
          caught++;
        }
      }
    }
    // Luhn mod 32 misses only the swap of the two characters whose values sum to 31 (e.g. 0 and Z).
    assert.ok(caught / tried > 0.95, `caught ${caught} of ${tried}`);
  });

  it('says why a key is refused: length, a character keys never have', () => {
    assert.throws(() => parseKey('ABCDE-FGHJK'), /25 characters, this one has 10/);
    assert.throws(() => parseKey('ABCDE-FGHJK-MNPQR-STVWX-YZ01U'), /do not contain "U"/);
  });

  it('keeps only a digest and a hint of a key, never the key', () => {
    const key = generateKey();
    assert.equal(keyDigest(key).length, 32);
    assert.equal(keyHint(key), key.slice(-5));
    assert.notEqual(keyDigest(key).toString('hex'), keyDigest(generateKey()).toString('hex'));
  });
});
