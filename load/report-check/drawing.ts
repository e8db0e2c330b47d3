/// <reference lib="dom" />
/**
 * What the report's check compares: what a suite's JSON summary says should be drawn (points on
 * the shared time axis, bands), and what Chromium actually draws (screen coordinates after every
 * transform, judged by what Chromium paints: in-page.ts).
 */
import type { Page } from '@playwright/test';
import type { LoadResult } from '../src/http-load';
import type { SuiteResult } from '../src/suite-context';
import { niceTicks } from '../src/svg-chart';
import { installInPage, type InPage, type Point } from './in-page';

/** A suite's JSON summary, as the runner writes it next to the report. */
export type Summary = SuiteResult & { profile?: string };

/** A point the chart should draw: epoch ms and value; `null` where the line must break. */
export type Expected = { atMs: number; value: number } | null;

/** The time axis of a suite's chart: from its first event (load, token reading, marker) to its last. */
export function axisOf(s: Summary): { t0: number; spanMs: number } {
  const runs = s.measurements.map((m) => m.result);
  const starts = [
    ...runs.map((r) => r.startedAt!),
    ...(s.tokenSamples ?? []).map((t) => t.atMs),
    ...(s.markers ?? []).map((m) => m.startMs),
  ];
  const ends = [
    ...runs.map((r) => r.startedAt! + r.durationMs),
    ...(s.tokenSamples ?? []).map((t) => t.atMs),
    ...(s.markers ?? []).map((m) => m.endMs),
  ];
  const t0 = Math.min(...starts);
  return { t0, spanMs: Math.max(1000, Math.max(...ends) - t0) };
}

/** The buckets of a measurement with their real length (the last runs to the end of the load) and middle. */
function buckets(r: LoadResult) {
  const timeline = r.timeline ?? [];
  return timeline.map((p, i) => {
    const length = Math.max(1, i === timeline.length - 1 ? r.durationMs - p.second * 1000 : 1000);
    return { ...p, length, atMs: r.startedAt! + p.second * 1000 + length / 2 };
  });
}

/** The points of a measurement's series: rps, failures (per second of each bucket's real length), p50, p99. */
export function expectedSeries(r: LoadResult, kind: 'rps' | 'failures' | 'p50' | 'p99'): Expected[] {
  return buckets(r).map((b) => {
    if (kind === 'rps') return { atMs: b.atMs, value: Math.round((b.requests * 1000) / b.length) };
    if (kind === 'failures') return { atMs: b.atMs, value: Math.round((b.failures * 1000) / b.length) };
    return b.p50 > 0 ? { atMs: b.atMs, value: b[kind] } : null;
  });
}

/** The top of a panel's value axis: the round tick the chart puts above the largest value of its series. */
export function panelTop(s: Summary, panel: 'rps' | 'latency' | 'tokens'): number {
  const values =
    panel === 'tokens'
      ? expectedTokens(s)
      : s.measurements.flatMap(({ result }) =>
          (panel === 'rps' ? (['rps', 'failures'] as const) : (['p50', 'p99'] as const)).flatMap((k) =>
            expectedSeries(result, k),
          ),
        );
  const max = Math.max(0, ...values.map((v) => v?.value ?? 0));
  return niceTicks(max, 4, panel === 'tokens' ? 1 : 0).at(-1)!;
}

/** The token count as steps from the first reading: each reading holds until the next. */
export function expectedTokens(s: Summary): Expected[] {
  const samples = s.tokenSamples ?? [];
  const first = samples[0]?.issued ?? 0;
  return samples.flatMap((t, i) => [
    ...(i > 0 ? [{ atMs: t.atMs, value: samples[i - 1]!.issued - first }] : []),
    { atMs: t.atMs, value: t.issued - first },
  ]);
}

export interface Box {
  left: number;
  right: number;
  top: number;
  bottom: number;
}

/** What Chromium draws for a series in a panel: each element's subpaths in screen pixels, and why it is not seen (if so). */
export interface DrawnSeries {
  area: Box;
  elements: { subpaths: Point[][]; hidden: string | null }[];
}

/** What Chromium draws for the bands of a kind in each panel of a suite's chart. */
export interface DrawnBands {
  area: Box;
  bands: (Box & { hidden: string | null })[];
}

/** Installs the in-page readers (in-page.ts) and makes the viewport hold the whole page, so every point can be hit-tested. */
export async function installReaders(page: Page): Promise<void> {
  await page.evaluate(installInPage);
  const untestable = await page.evaluate(() =>
    (window as unknown as { certflow: InPage }).certflow.untestable(),
  );
  if (untestable.length)
    throw new Error(
      `the report hides ${untestable.length} things from hit-testing: ${untestable.slice(0, 3).join('; ')}`,
    );
  const height = await page.evaluate(() => document.documentElement.scrollHeight);
  await page.setViewportSize({ width: page.viewportSize()!.width, height: Math.min(height + 10, 30_000) });
}

const panelSelector = (suite: string, panel: string) =>
  `section[data-suite="${suite}"] svg[data-chart="timeline"] g[data-panel="${panel}"]`;

/** Series strokes must stand out from the plot's fill (WCAG contrast; the palette's lightest is 2.1). */
const MIN_SERIES_CONTRAST = 1.8;
/** A band's translucent fill must differ from the plot's (the outage's is 1.2, the rotation's 1.3). */
const MIN_BAND_CONTRAST = 1.1;

/**
 * Reads the elements drawing series `id` in a panel of a suite's chart, as Chromium draws them:
 * computed `d`, styles, contrast against the plot's fill, and hit-tests at each point (a dash gap
 * is looked past along the line): one covered point, a solid line missing at a point, or a dashed
 * one found at fewer than half of a run's points makes it hidden).
 */
export async function drawnSeries(
  page: Page,
  suite: string,
  panel: string,
  id: string,
): Promise<DrawnSeries> {
  const found = await page.locator(panelSelector(suite, panel)).evaluateAll(
    (panels, [id, minContrast]) => {
      const cf = (window as unknown as { certflow: InPage }).certflow;
      return panels.map((p) => {
        const plot = p.querySelector('[data-plot-area]')!;
        const a = plot.getBoundingClientRect();
        const elements = [...p.querySelectorAll('[data-series]')]
          .filter((e) => e.getAttribute('data-series') === id)
          .map((e) => {
            const subpaths = cf.subpaths(e as SVGGraphicsElement);
            const why = (): string | null => {
              const hidden = cf.hidden(e, 'stroke', 0.2);
              if (hidden) return hidden;
              const contrast = cf.contrast(e, 'stroke', plot);
              if (contrast < minContrast) return `contrast ${contrast.toFixed(2)} against the plot's fill`;
              for (const s of subpaths) {
                const along = s.map((q, i) => {
                  const r = s[i + 1] ?? s[i - 1] ?? q;
                  const len = Math.hypot(r[0] - q[0], r[1] - q[1]) || 1;
                  return [(r[0] - q[0]) / len, (r[1] - q[1]) / len] as Point;
                });
                const hits = cf.hits(e, s, along);
                if (typeof hits === 'string') return hits;
                // A dashed line may leave a point in a gap even after looking along it; a solid one may not.
                const needed =
                  getComputedStyle(e).strokeDasharray === 'none' ? s.length : Math.ceil(s.length / 2);
                if (hits < needed) return `found at ${hits} of ${s.length} points of a run`;
              }
              return null;
            };
            return { subpaths, hidden: why() };
          });
        return { area: { left: a.left, right: a.right, top: a.top, bottom: a.bottom }, elements };
      });
    },
    [id, MIN_SERIES_CONTRAST] as const,
  );
  if (found.length !== 1) throw new Error(`${suite}: ${found.length} "${panel}" panels (expected 1)`);
  return found[0]!;
}

/** Reads the bands of `kind` in every panel of a suite's chart: seen, distinct from the plot, topmost over a 3×3 grid inside them. */
export function drawnBands(page: Page, suite: string, kind: string): Promise<DrawnBands[]> {
  return page.locator(`section[data-suite="${suite}"] svg[data-chart="timeline"] g[data-panel]`).evaluateAll(
    (panels, [kind, minContrast]) => {
      const cf = (window as unknown as { certflow: InPage }).certflow;
      const box = (r: DOMRect) => ({ left: r.left, right: r.right, top: r.top, bottom: r.bottom });
      return panels.map((p) => {
        const plot = p.querySelector('[data-plot-area]')!;
        return {
          area: box(plot.getBoundingClientRect()),
          bands: [...p.querySelectorAll('[data-marker]')]
            .filter((b) => b.getAttribute('data-marker') === kind)
            .map((b) => {
              const r = b.getBoundingClientRect();
              const why = (): string | null => {
                const hidden = cf.hidden(b, 'fill', 0.08);
                if (hidden) return hidden;
                const contrast = cf.contrast(b, 'fill', plot);
                if (contrast < minContrast) return `contrast ${contrast.toFixed(2)} against the plot's fill`;
                const grid = [0.2, 0.5, 0.8].flatMap((fx) =>
                  [0.2, 0.5, 0.8].map((fy) => [r.left + fx * r.width, r.top + fy * r.height] as Point),
                );
                const hits = cf.hits(b, grid);
                if (typeof hits === 'string') return hits;
                return hits < 5 ? `topmost at ${hits} of 9 points` : null;
              };
              return { ...box(r), hidden: why() };
            }),
        };
      });
    },
    [kind, MIN_BAND_CONTRAST] as const,
  );
}

/** Why a label (HTML or SVG text) is not seen, or null: styles, inside the page, topmost along its middle. */
export function hiddenLabel(page: Page, selector: string): Promise<(string | null)[]> {
  return page.locator(selector).evaluateAll((els) => {
    const cf = (window as unknown as { certflow: InPage }).certflow;
    return els.map((e) => {
      const hidden = cf.hidden(e, e instanceof SVGElement ? 'fill' : 'color', 0.5);
      if (hidden) return hidden;
      const r = e.getBoundingClientRect();
      const hits = cf.hits(
        e,
        [0.15, 0.5, 0.85].map((f) => [r.left + f * r.width, r.top + r.height / 2] as Point),
      );
      if (typeof hits === 'string') return hits;
      return hits < 2 ? `topmost at ${hits} of 3 points along it` : null;
    });
  });
}
