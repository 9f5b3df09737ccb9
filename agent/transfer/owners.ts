/**
 * Who owns a remote entry. SFTP v3 attributes carry numbers only (uid, gid); the names are in the
 * `longname` that a folder listing gives with each entry, a line the server formats "as `ls -l`
 * would" (the draft says no more). Servers differ in it: OpenSSH writes the link count and
 * padded columns, others leave the count out or pad otherwise, some send the bare file name.
 *
 * The longname is the server's text: it is read only where it agrees with the attributes that came
 * with it (the permission string with the mode, the size column with the size), so that a line of
 * another shape, or one forged to look like something else, yields no names rather than wrong
 * ones. Whatever is taken still goes through `printable` before a terminal.
 */

export interface Owners {
  owner: string;
  group: string;
}

// `-rwxr-xr-x`, with a trailing ACL or security-context mark (`+`, `.`, `@`) as GNU ls writes it.
const MODE_COLUMN = /^[-dlcbpsD?]([-r][-w][-xsS][-r][-w][-xsS][-r][-w][-xtT])[.+@]?$/;

/** Whether a permission string says the same as the mode's permission bits. */
function sameBits(column: string, mode: number): boolean {
  const bits = MODE_COLUMN.exec(column)?.[1];
  if (!bits) return false;
  for (let i = 0; i < 9; i++) {
    const set = (mode & (1 << (8 - i))) !== 0;
    // s and t are the execute bit with setuid/setgid/sticky; S and T the same without execute.
    if (set !== /[rwxst]/.test(bits[i]!)) return false;
  }
  return true;
}

/**
 * Owner and group from a longname, or null when it does not read as `mode [links] owner group
 * size …` with the mode and size the attributes have.
 */
export function ownersFromLongname(longname: string | undefined, attrs: { mode: number; size: number | bigint }): Owners | null {
  if (!longname) return null;
  const columns = longname.trimStart().split(/\s+/, 6);
  if (columns.length < 5 || !sameBits(columns[0]!, attrs.mode)) return null;
  const size = String(attrs.size);
  // With the link count (OpenSSH, GNU ls): mode links owner group size; without it: mode owner group size.
  if (/^\d+$/.test(columns[1]!) && columns[4] === size) return { owner: columns[2]!, group: columns[3]! };
  if (columns[3] === size) return { owner: columns[1]!, group: columns[2]! };
  return null;
}
