/**
 * CSV as RFC 4180 has it: CRLF line ends, a field quoted only when it holds a comma, a quote, CR or
 * LF (quotes doubled). Deterministic, so that a report rebuilt from its rows is byte-identical.
 */
export function csvField(value: string | number): string {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function csvLine(values: (string | number)[]): string {
  return `${values.map(csvField).join(',')}\r\n`;
}
