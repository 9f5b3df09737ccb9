/**
 * The terminal bar's line, laid out for the terminal's width: the figures first, then the bar in
 * what is left (up to BAR.max cells), then the current file's name (its end, which tells files
 * apart) when there is room. A line never goes past the last column: a terminal would wrap it (or
 * cut it, with wrapping off as cli-progress sets it), and each redraw would leave a line behind
 * or lose the figures. Pure, so each width is tested without a terminal.
 */

export const BAR = {
  /** Cells of the bar itself on a wide terminal. */
  max: 40,
  /** Below this the bar says nothing: shorter figures are tried, then the bar is left out. */
  min: 8,
  /** The name shows only when the bar keeps at least this many cells beside it. */
  besideName: 20,
  /** The name is cut to this many characters, and left out below `minName`. */
  maxName: 30,
  minName: 8,
} as const;

export interface BarState {
  /** 0..1 */
  progress: number;
  /** `42% 1.00 MiB/3.00 MiB 1.2 MiB/s 0:02 left 0/1`, without the name. */
  figures: string;
  /** The same, shorter, for a narrow terminal: `42% 1.2 MiB/s 0:02`. */
  short: string;
  /** The file now moving, already printable (may be empty). */
  name: string;
}

/** The line for a terminal `columns` wide: at most that many characters. */
export function barLine(state: BarState, columns: number): string {
  const width = Math.max(10, columns);
  let figures = state.figures;
  if ([...figures].length + 1 + BAR.min > width) figures = state.short;
  const figureChars = [...figures];
  if (figureChars.length + 1 + BAR.min > width) return figureChars.slice(0, width).join('');
  const room = width - figureChars.length - 1;
  const chars = [...state.name];
  const nameRoom = Math.min(chars.length, BAR.maxName, room - BAR.besideName - 1);
  const showName = chars.length > 0 && nameRoom >= Math.min(BAR.minName, chars.length);
  const nameText = !showName ? '' : chars.length <= nameRoom ? state.name : `…${chars.slice(chars.length - nameRoom + 1).join('')}`;
  const size = Math.min(BAR.max, room - (showName ? [...nameText].length + 1 : 0));
  const filled = Math.round(Math.min(1, Math.max(0, state.progress)) * size);
  const bar = `${'█'.repeat(filled)}${'░'.repeat(size - filled)}`;
  return `${bar} ${figures}${showName ? ` ${nameText}` : ''}`;
}
