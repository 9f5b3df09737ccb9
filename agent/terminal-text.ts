/**
 * Text that came from elsewhere (a file name, an SFTP server's error message, a path on the
 * command line) on its way to a person's terminal. A terminal obeys what it is sent: an escape
 * sequence in a file name can retitle the window, clear the screen or move the cursor, a newline
 * or carriage return can forge a line of a listing, and a bidi override makes `report<U+202E>txt.exe`
 * show as `reportexe.txt`. So every such text is shown through `printable`, which writes what a
 * terminal would act on as JavaScript-style escapes:
 *
 *   the backslash itself                     `\\`
 *   LF, CR, TAB                              `\n`, `\r`, `\t`
 *   other C0 controls (ESC…), DEL, C1        `\x1b`, `\x7f`, `\x9b`: two hex digits of the code point
 *   bidi marks, embeddings, overrides and    `\u061c`, `\u200e`, `\u200f`, `\u202a`…`\u202e`,
 *   isolates; line/paragraph separators;     `\u2066`…`\u2069`, `\u2028`, `\u2029`,
 *   a surrogate without its pair             `\ud800`…`\udfff`
 *
 * The result reads back unambiguously: every backslash in it starts an escape, so a name that
 * really holds the four characters `\x1b` shows as `\\x1b`. Everything else (letters of any
 * script, spaces, symbols) is kept, so ordinary names look as they are. JSON output keeps the
 * exact text instead: see `jsonLine`.
 */

const NAMED: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

// C0, DEL, C1; Arabic letter mark, LRM/RLM; the embeddings and overrides; line and paragraph
// separators; the isolates; a surrogate without its pair (the `u` flag matches only those).
const UNSAFE = /[\\\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]/gu;

function escapeOne(char: string): string {
  const named = NAMED[char];
  if (named) return named;
  const code = char.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** `text` with everything a terminal would act on (and `\`) escaped: safe to print for a person. */
export function printable(text: string): string {
  return text.replace(UNSAFE, escapeOne);
}

// What JSON.stringify leaves raw of UNSAFE (it escapes C0, `\` and lone surrogates itself).
const JSON_UNSAFE = /[\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

/**
 * One line of JSON output, with the exact text: JSON.stringify escapes the C0 controls, but leaves
 * DEL, the C1 controls, the bidi controls and U+2028/U+2029 as they are. Those are escaped too
 * (`\u009b`), so that JSON read on a terminal is as harmless as the rest, and a reader that splits
 * lines by Unicode line breaks (JavaScript's own, many editors) does not cut an object in two.
 */
export function jsonLine(value: unknown): string {
  return JSON.stringify(value).replace(JSON_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
