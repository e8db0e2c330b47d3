/**
 * Charts as plain inline SVG: no scripts, no fonts to fetch, nothing loaded at view time.
 * A bar chart for the run's overview, and a suite's time series: stacked panels (requests per
 * second, latency, tokens) on one shared time axis, with windows (the IdP outage, a certificate
 * rotation) drawn as labelled bands across every panel. Grid lines and tick texts carry
 * `data-grid`: the report's check allows them (thin lines, small text) above bands and labels.
 */
export interface Bar {
  label: string;
  value: number;
}

export const escapeXml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

export function barChartSvg(title: string, bars: Bar[], unit: string): string {
  const max = Math.max(1, ...bars.map((b) => b.value));
  const rowHeight = 28;
  const top = 30;
  const width = 960;
  const labelWidth = 500;
  const rows = bars
    .map((b, i) => {
      const w = Math.round(((width - labelWidth - 110) * b.value) / max);
      const y = top + i * rowHeight;
      // About 7 px a character at 13 px: longer labels are cut, in full on hover.
      const shown = b.label.length > 68 ? `${b.label.slice(0, 67)}…` : b.label;
      return (
        `<text x="0" y="${y + 18}"><title>${escapeXml(b.label)}</title>${escapeXml(shown)}</text>` +
        `<rect x="${labelWidth}" y="${y + 5}" width="${w}" height="18" fill="#0072b2"/>` +
        `<text x="${labelWidth + w + 6}" y="${y + 18}">${b.value.toLocaleString('en-US')} ${escapeXml(unit)}</text>`
      );
    })
    .join('\n');
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${top + bars.length * rowHeight + 8}" ` +
    `font-family="sans-serif" font-size="13" role="img" aria-label="${escapeXml(title)}">\n` +
    `<rect width="100%" height="100%" fill="#fff"/>\n<text x="0" y="18" font-weight="bold">${escapeXml(title)}</text>\n${rows}\n</svg>\n`
  );
}

/** One line: points as [seconds on the shared axis, value]; `null` breaks it (no data there). */
export interface Series {
  /** Machine-readable name (data-series), e.g. "rps:API direct (baseline)". */
  id: string;
  color: string;
  dashed?: boolean;
  /** Drawn as steps (a cumulative count), not straight segments. */
  step?: boolean;
  points: ([number, number] | null)[];
}

export interface Panel {
  /** Machine-readable name (data-panel): "rps", "latency", "tokens". */
  id: string;
  title: string;
  series: Series[];
  /** Shown instead of the plot when no series has a point. */
  empty?: string;
  /** Whole numbers (a count): no ticks between them. */
  counts?: boolean;
}

/** A window on the time axis, in seconds. */
export interface Band {
  kind: string;
  label: string;
  from: number;
  to: number;
}

export interface LegendEntry {
  label: string;
  color: string;
  dashed?: boolean;
  /** A shaded swatch (a band) instead of a line. */
  band?: boolean;
}

export const BAND_COLORS: Record<string, string> = { outage: '#d55e00', rotation: '#6a3d9a' };

const WIDTH = 960;
const LEFT = 72;
const RIGHT = 24;
const PLOT_W = WIDTH - LEFT - RIGHT;
const PANEL_H = 150;
const PANEL_GAP = 58;
const LEGEND_ROW = 20;

/** About `count` round tick values from 0 to at least `max` (steps of 1, 2 or 5 × 10^n, at least `minStep`). */
export function niceTicks(max: number, count = 4, minStep = 0): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = Math.max(max / count, minStep);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const tickText = (v: number): string =>
  Math.abs(v) >= 1000 ? v.toLocaleString('en-US') : String(Number(v.toPrecision(3)));

const fmt = (n: number): string => n.toFixed(1);

/**
 * A series as one path: a new subpath after each break, so a line never bridges a gap; a point
 * alone between breaks shows as a dot (round caps on a zero-length segment).
 */
function seriesPath(s: Series, x: (t: number) => number, y: (v: number) => number): string {
  const d: string[] = [];
  let previous: [number, number] | null = null;
  let segment: string[] = [];
  const flush = (): void => {
    if (segment.length === 1) segment.push('h0');
    d.push(...segment);
    segment = [];
  };
  for (const p of s.points) {
    if (p === null) {
      flush();
      previous = null;
      continue;
    }
    const [t, v] = p;
    if (previous === null) segment.push(`M${fmt(x(t))},${fmt(y(v))}`);
    else {
      if (s.step) segment.push(`L${fmt(x(t))},${fmt(y(previous[1]))}`);
      segment.push(`L${fmt(x(t))},${fmt(y(v))}`);
    }
    previous = p;
  }
  flush();
  return (
    `<path data-series="${escapeXml(s.id)}" fill="none" stroke="${s.color}" stroke-width="2.2" ` +
    `stroke-linejoin="round" stroke-linecap="round"${s.dashed ? ' stroke-dasharray="6 4"' : ''} d="${d.join(' ')}"/>`
  );
}

function legendSvg(entries: LegendEntry[], top: number): string {
  const columnWidth = PLOT_W / 2;
  return entries
    .map((e, i) => {
      const x = LEFT + (i % 2) * columnWidth;
      const y = top + Math.floor(i / 2) * LEGEND_ROW;
      const swatch = e.band
        ? `<rect x="${x}" y="${y - 10}" width="28" height="12" fill="${e.color}" fill-opacity="0.22" stroke="${e.color}"/>`
        : `<line x1="${x}" y1="${y - 4}" x2="${x + 28}" y2="${y - 4}" stroke="${e.color}" stroke-width="3"${e.dashed ? ' stroke-dasharray="6 4"' : ''}/>`;
      return `<g data-legend="">${swatch}<text x="${x + 36}" y="${y}">${escapeXml(e.label)}</text></g>`;
    })
    .join('\n');
}

/**
 * A suite's time series: `panels` stacked on one time axis from 0 to `spanSeconds`, `bands`
 * shaded across each panel (the label on the first), and a legend on top.
 */
export function timeSeriesSvg(opts: {
  title: string;
  spanSeconds: number;
  panels: Panel[];
  bands: Band[];
  legend: LegendEntry[];
}): string {
  const span = Math.max(1, opts.spanSeconds);
  const x = (t: number): number => LEFT + (PLOT_W * Math.min(Math.max(t, 0), span)) / span;
  const legendTop = 44;
  const panelsTop = legendTop + Math.ceil(opts.legend.length / 2) * LEGEND_ROW + 16;
  const xTicks = niceTicks(span, 10).filter((t) => t <= span);
  const parts: string[] = [
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="0" y="20" font-size="16" font-weight="bold">${escapeXml(opts.title)}</text>`,
    legendSvg(opts.legend, legendTop),
  ];
  opts.panels.forEach((panel, i) => {
    const top = panelsTop + i * (PANEL_H + PANEL_GAP) + 22;
    const max = Math.max(0, ...panel.series.flatMap((s) => s.points.map((p) => p?.[1] ?? 0)));
    const yTicks = niceTicks(max, 4, panel.counts ? 1 : 0);
    const yMax = yTicks.at(-1)!;
    const y = (v: number): number => top + PANEL_H - (PANEL_H * v) / yMax;
    const drawn = panel.series.filter((s) => s.points.some((p) => p !== null));
    parts.push(
      `<g data-panel="${escapeXml(panel.id)}">`,
      `<text x="${LEFT}" y="${top - 8}" font-weight="bold">${escapeXml(panel.title)}</text>`,
      `<rect data-plot-area="" x="${LEFT}" y="${top}" width="${PLOT_W}" height="${PANEL_H}" fill="#fafafa" stroke="#999"/>`,
      ...opts.bands.map((b) => {
        const color = BAND_COLORS[b.kind] ?? '#777';
        const from = x(b.from);
        const width = Math.max(2, x(b.to) - from);
        return (
          `<rect data-marker="${escapeXml(b.kind)}" x="${fmt(from)}" y="${top}" width="${fmt(width)}" height="${PANEL_H}" ` +
          `fill="${color}" fill-opacity="0.16" stroke="${color}" stroke-opacity="0.6"><title>${escapeXml(b.label)}</title></rect>` +
          (i === 0
            ? `<text data-marker-label="${escapeXml(b.kind)}" x="${fmt(from + 4)}" y="${top + 14}" fill="${color}" font-weight="bold">${escapeXml(b.label)}</text>`
            : '')
        );
      }),
      ...yTicks.map(
        (v) =>
          `<line data-grid="" x1="${LEFT}" x2="${LEFT + PLOT_W}" y1="${fmt(y(v))}" y2="${fmt(y(v))}" stroke="#ddd"/>` +
          `<text data-grid="" x="${LEFT - 6}" y="${fmt(y(v) + 4)}" text-anchor="end">${tickText(v)}</text>`,
      ),
      ...xTicks.map(
        (t) =>
          `<line data-grid="" x1="${fmt(x(t))}" x2="${fmt(x(t))}" y1="${top + PANEL_H}" y2="${top + PANEL_H + 5}" stroke="#555"/>` +
          `<text data-grid="" x="${fmt(x(t))}" y="${top + PANEL_H + 18}" text-anchor="middle">${tickText(t)}</text>`,
      ),
      `<text x="${LEFT + PLOT_W}" y="${top + PANEL_H + 34}" text-anchor="end" fill="#555">seconds since the suite started</text>`,
      ...drawn.map((s) => seriesPath(s, x, y)),
      drawn.length === 0 && panel.empty
        ? `<text x="${LEFT + PLOT_W / 2}" y="${top + PANEL_H / 2}" text-anchor="middle" fill="#777">${escapeXml(panel.empty)}</text>`
        : '',
      `</g>`,
    );
  });
  const height = panelsTop + opts.panels.length * (PANEL_H + PANEL_GAP) + 16;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" data-chart="timeline" width="${WIDTH}" height="${height}" ` +
    `viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12" role="img" aria-label="${escapeXml(opts.title)}">\n` +
    parts.filter(Boolean).join('\n') +
    '\n</svg>\n'
  );
}
