/** Plain-text tables with aligned columns, and the number formats the bench prints. */

export interface Column {
  title: string;
  align?: 'left' | 'right';
}

export function formatTable(columns: Column[], rows: string[][]): string {
  const widths = columns.map((c, i) => Math.max(c.title.length, ...rows.map((r) => (r[i] ?? '').length)));
  const cell = (text: string, i: number) => {
    const width = widths[i]!;
    return columns[i]!.align === 'right' ? text.padStart(width) : text.padEnd(width);
  };
  const line = (cells: string[]) => columns.map((_, i) => cell(cells[i] ?? '', i)).join('  ').trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(columns.map((c) => c.title)), rule, ...rows.map(line)].join('\n');
}

/** 12,345 */
export function count(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** 12,345.6 for rates. */
export function rate(n: number): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });
}

/** Milliseconds with two decimals. */
export function ms(n: number): string {
  return Number.isFinite(n) ? n.toFixed(2) : '-';
}

export function seconds(msElapsed: number): string {
  return `${(msElapsed / 1000).toFixed(1)} s`;
}
