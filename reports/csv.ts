/**
 * CSV as RFC 4180 has it: CRLF line ends, a field quoted only when it holds a comma, a quote, CR or
 * LF (quotes doubled). Deterministic, so that a report rebuilt from its rows is byte-identical.
 */
export function csvField(value: string | number): string {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/**
 * A cell a spreadsheet would run as a formula (OWASP "CSV injection": it starts with = + - @, a tab
 * or CR), made plain text by a leading single quote. `=HYPERLINK(…)` as an organisation's name
 * then shows as itself instead of a link.
 */
export function neutraliseFormula(text: string): string {
  return /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
}

export function csvLine(values: (string | number)[], options: { neutraliseFormulas?: boolean } = {}): string {
  const cells = options.neutraliseFormulas ? values.map((v) => (typeof v === 'string' ? neutraliseFormula(v) : v)) : values;
  return `${cells.map(csvField).join(',')}\r\n`;
}
