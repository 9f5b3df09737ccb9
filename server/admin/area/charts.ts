/**
 * Charts as inline SVG, drawn on the server: they need no JavaScript, pass the admin area's strict
 * CSP (presentation attributes only, no style attributes) and scale to the width of a phone. Each
 * has a `<title>` and `<desc>` that a screen reader announces; the pages also offer the numbers as
 * a table.
 */

export interface Point {
  /** `YYYY-MM-DD`, UTC. */
  day: string;
  value: number;
}

export interface Series {
  name: string;
  points: Point[];
}

export interface Bar {
  label: string;
  value: number;
}

interface ChartText {
  /** Unique on the page: the ids of the title and description derive from it. */
  id: string;
  title: string;
  description: string;
}

/** Colours that stay apart for the common colour blindnesses; the second series is also dashed. */
const PALETTE = ['#1f5fbf', '#c2410c', '#2f7d32', '#7b3fa0'] as const;
const DASHES = [null, '6 4', '2 3', '10 3 2 3'] as const;
const INK = '#1d2330';
const GRID = '#d9dde5';
const MUTED = '#5b6475';
const FONT = 'font-family="system-ui, sans-serif" font-size="12"';

/** The viewBox size: on a 360 px phone the 12-unit text is still 9 px high. */
const WIDTH = 480;
const DAY_MS = 86_400_000;

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const round = (n: number) => Math.round(n * 10) / 10;
const formatNumber = new Intl.NumberFormat('en').format;
const formatDay = new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'short', timeZone: 'UTC' }).format;
const formatDayWithYear = new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC' }).format;

/**
 * Round tick values from 0 to at least `max`: steps of 1, 2 or 5 times a power of ten, about
 * `count` of them. Counts are whole numbers, so the step is never below 1.
 */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const rough = max / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough) ?? 10 * power);
  const ticks: number[] = [];
  for (let v = 0; v < max + step; v += step) {
    ticks.push(v);
    if (v >= max) break;
  }
  return ticks;
}

function open(text: ChartText, height: number): string {
  return (
    `<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${height}" role="img" ` +
    `aria-labelledby="${text.id}-title ${text.id}-desc" preserveAspectRatio="xMidYMid meet" ${FONT} fill="${INK}">` +
    `<title id="${text.id}-title">${escapeXml(text.title)}</title><desc id="${text.id}-desc">${escapeXml(text.description)}</desc>`
  );
}

function legend(series: Series[], x: number, y: number): string {
  let out = '';
  let at = x;
  series.forEach((s, i) => {
    const dash = DASHES[i % DASHES.length];
    out +=
      `<g class="legend-item"><line x1="${at}" y1="${y - 4}" x2="${at + 22}" y2="${y - 4}" stroke="${PALETTE[i % PALETTE.length]}" stroke-width="3"${dash ? ` stroke-dasharray="${dash}"` : ''}/>` +
      `<text x="${at + 28}" y="${y}">${escapeXml(s.name)}</text></g>`;
    at += 28 + s.name.length * 6.5 + 18;
  });
  return out;
}

/**
 * Values over days, one line per series, on a time axis (a day without a value leaves a gap in
 * time, not a kink at the wrong place). Returns the SVG element as markup.
 */
export function lineChart(text: ChartText & { series: Series[] }): string {
  const height = 260;
  const margin = { left: 52, right: 16, top: 34, bottom: 30 };
  const plotWidth = WIDTH - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const days = text.series.flatMap((s) => s.points.map((p) => Date.parse(`${p.day}T00:00:00Z`)));
  const first = Math.min(...days);
  const last = Math.max(...days);
  const span = Math.max(last - first, DAY_MS);
  const ticks = niceTicks(Math.max(0, ...text.series.flatMap((s) => s.points.map((p) => p.value))));
  const top = ticks[ticks.length - 1]!;
  const x = (time: number) => round(margin.left + (days.length && last > first ? ((time - first) / span) * plotWidth : plotWidth / 2));
  const y = (value: number) => round(margin.top + plotHeight - (value / top) * plotHeight);

  let out = open(text, height);
  out += legend(text.series, margin.left, 16);
  // The value axis: grid lines with their values.
  out += '<g class="axis y-axis">';
  for (const tick of ticks) {
    out += `<line x1="${margin.left}" x2="${WIDTH - margin.right}" y1="${y(tick)}" y2="${y(tick)}" stroke="${GRID}"/>`;
    out += `<text x="${margin.left - 6}" y="${y(tick) + 4}" text-anchor="end" fill="${MUTED}">${formatNumber(tick)}</text>`;
  }
  out += '</g>';
  // The time axis: about five dates, the year on the first when the range spans a new year.
  out += `<g class="axis x-axis"><line x1="${margin.left}" x2="${WIDTH - margin.right}" y1="${y(0)}" y2="${y(0)}" stroke="${MUTED}"/>`;
  if (days.length) {
    const labels = last > first ? 5 : 1;
    const spansYears = new Date(first).getUTCFullYear() !== new Date(last).getUTCFullYear();
    const seen = new Set<string>();
    for (let i = 0; i < labels; i++) {
      const time = labels === 1 ? first : first + Math.round(((last - first) * i) / (labels - 1) / DAY_MS) * DAY_MS;
      const label = (i === 0 && spansYears ? formatDayWithYear : formatDay)(new Date(time));
      if (seen.has(label)) continue;
      seen.add(label);
      const anchor = labels === 1 ? 'middle' : i === 0 ? 'start' : i === labels - 1 ? 'end' : 'middle';
      out += `<line x1="${x(time)}" x2="${x(time)}" y1="${y(0)}" y2="${y(0) + 4}" stroke="${MUTED}"/>`;
      out += `<text x="${x(time)}" y="${height - 10}" text-anchor="${anchor}" fill="${MUTED}">${escapeXml(label)}</text>`;
    }
  }
  out += '</g>';
  // The lines; with few points, a dot on each, with its value for a pointer to hover over.
  text.series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length];
    const dash = DASHES[i % DASHES.length];
    const points = [...s.points].sort((a, b) => a.day.localeCompare(b.day));
    const coordinates = points.map((p) => `${x(Date.parse(`${p.day}T00:00:00Z`))},${y(p.value)}`);
    out += `<g class="series" data-series="${escapeXml(s.name)}">`;
    out += `<polyline points="${coordinates.join(' ')}" fill="none" stroke="${colour}" stroke-width="2.5" stroke-linejoin="round"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`;
    if (points.length <= 62) {
      points.forEach((p, j) => {
        const [cx, cy] = coordinates[j]!.split(',');
        out += `<circle cx="${cx}" cy="${cy}" r="3" fill="${colour}"><title>${escapeXml(`${s.name}, ${formatDayWithYear(new Date(`${p.day}T00:00:00Z`))}: ${formatNumber(p.value)}`)}</title></circle>`;
      });
    }
    out += '</g>';
  });
  return `${out}</svg>`;
}

/**
 * One bar per label, value written at its end. Horizontal bars keep long labels (country names)
 * readable on a narrow screen; vertical ones suit a few short buckets (a histogram).
 */
export function barChart(text: ChartText & { bars: Bar[]; orientation: 'horizontal' | 'vertical' }): string {
  const ticks = niceTicks(Math.max(0, ...text.bars.map((b) => b.value)), 4);
  const top = ticks[ticks.length - 1]!;
  const colour = PALETTE[0];
  if (text.orientation === 'horizontal') {
    const row = 24;
    const margin = { left: 150, right: 48, top: 8, bottom: 28 };
    const height = margin.top + text.bars.length * row + margin.bottom;
    const plotWidth = WIDTH - margin.left - margin.right;
    const x = (value: number) => round(margin.left + (value / top) * plotWidth);
    const axisY = margin.top + text.bars.length * row;
    let out = open(text, height);
    out += '<g class="axis x-axis">';
    for (const tick of ticks) {
      out += `<line x1="${x(tick)}" x2="${x(tick)}" y1="${margin.top}" y2="${axisY}" stroke="${GRID}"/>`;
      out += `<text x="${x(tick)}" y="${axisY + 18}" text-anchor="middle" fill="${MUTED}">${formatNumber(tick)}</text>`;
    }
    out += '</g>';
    text.bars.forEach((bar, i) => {
      const top = margin.top + i * row;
      const label = bar.label.length > 22 ? `${bar.label.slice(0, 21)}…` : bar.label;
      out +=
        `<g class="bar"><title>${escapeXml(`${bar.label}: ${formatNumber(bar.value)}`)}</title>` +
        `<text x="${margin.left - 8}" y="${top + 16}" text-anchor="end">${escapeXml(label)}</text>` +
        `<rect x="${margin.left}" y="${top + 4}" width="${Math.max(round(x(bar.value) - margin.left), bar.value > 0 ? 1 : 0)}" height="${row - 8}" fill="${colour}"/>` +
        `<text x="${x(bar.value) + 6}" y="${top + 16}" fill="${MUTED}">${formatNumber(bar.value)}</text></g>`;
    });
    out += `<line x1="${margin.left}" x2="${margin.left}" y1="${margin.top}" y2="${axisY}" stroke="${MUTED}"/>`;
    return `${out}</svg>`;
  }

  const height = 240;
  const margin = { left: 52, right: 16, top: 20, bottom: 30 };
  const plotWidth = WIDTH - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const y = (value: number) => round(margin.top + plotHeight - (value / top) * plotHeight);
  const slot = plotWidth / Math.max(1, text.bars.length);
  let out = open(text, height);
  out += '<g class="axis y-axis">';
  for (const tick of ticks) {
    out += `<line x1="${margin.left}" x2="${WIDTH - margin.right}" y1="${y(tick)}" y2="${y(tick)}" stroke="${GRID}"/>`;
    out += `<text x="${margin.left - 6}" y="${y(tick) + 4}" text-anchor="end" fill="${MUTED}">${formatNumber(tick)}</text>`;
  }
  out += '</g>';
  text.bars.forEach((bar, i) => {
    const centre = margin.left + slot * (i + 0.5);
    const barWidth = Math.min(56, slot * 0.6);
    out +=
      `<g class="bar"><title>${escapeXml(`${bar.label}: ${formatNumber(bar.value)}`)}</title>` +
      `<rect x="${round(centre - barWidth / 2)}" y="${y(bar.value)}" width="${round(barWidth)}" height="${round(y(0) - y(bar.value))}" fill="${colour}"/>` +
      `<text x="${round(centre)}" y="${y(bar.value) - 5}" text-anchor="middle" fill="${MUTED}">${formatNumber(bar.value)}</text>` +
      `<text x="${round(centre)}" y="${height - 10}" text-anchor="middle">${escapeXml(bar.label)}</text></g>`;
  });
  out += `<line x1="${margin.left}" x2="${WIDTH - margin.right}" y1="${y(0)}" y2="${y(0)}" stroke="${MUTED}"/>`;
  return `${out}</svg>`;
}
