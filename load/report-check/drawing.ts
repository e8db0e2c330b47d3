/// <reference lib="dom" />
/**
 * What the report's check compares: what a suite's JSON summary says should be drawn (points on
 * the shared time axis, bands), and what Chromium actually draws (screen coordinates after every
 * transform, with the computed styles that decide whether a reader sees it).
 */
import type { Page } from '@playwright/test';
import type { LoadResult } from '../src/http-load';
import type { SuiteResult } from '../src/suite-context';
import { niceTicks } from '../src/svg-chart';

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
  elements: { subpaths: [number, number][][]; hidden: string | null }[];
}

/** What Chromium draws for the bands of a kind in each panel of a suite's chart. */
export interface DrawnBands {
  area: Box;
  bands: (Box & { hidden: string | null })[];
}

/**
 * Why `el` is not seen when painted with `paint` (fill or stroke): hidden, transparent along its
 * ancestors, no paint, or near-white on the plot's near-white background. Null when it is seen.
 * (Serialised into the page: no closures.)
 */
const hiddenReasonSource = `(el, paint, minOpacity) => {
  let opacity = 1;
  for (let e = el; e; e = e.parentElement) {
    const cs = getComputedStyle(e);
    if (cs.display === 'none') return 'display: none on ' + e.tagName;
    opacity *= Number(cs.opacity);
  }
  const cs = getComputedStyle(el);
  if (cs.visibility !== 'visible') return 'visibility: ' + cs.visibility;
  const color = cs.getPropertyValue(paint);
  if (!color || color === 'none') return paint + ': none';
  opacity *= Number(cs.getPropertyValue(paint + '-opacity') || 1);
  if (paint === 'stroke' && !(parseFloat(cs.strokeWidth) > 0)) return 'stroke-width ' + cs.strokeWidth;
  const rgba = (color.match(/[\\d.]+/g) || []).map(Number);
  if (rgba.length >= 4) opacity *= rgba[3];
  if (opacity < minOpacity) return 'opacity ' + opacity.toFixed(3);
  if (rgba.length >= 3 && rgba.slice(0, 3).every((c) => c > 235)) return 'drawn in white (' + color + ')';
  const box = el.getBoundingClientRect();
  if (box.width === 0 && box.height === 0) return 'nothing drawn (empty box)';
  return null;
}`;

type HiddenReason = (el: Element, paint: string, minOpacity: number) => string | null;

/** Defines the page's `certflowHidden` (hiddenReasonSource) for the readers below; call once a page is open. */
export async function installReaders(page: Page): Promise<void> {
  await page.evaluate(`window.certflowHidden = ${hiddenReasonSource}`);
}

const panelSelector = (suite: string, panel: string) =>
  `section[data-suite="${suite}"] svg[data-chart="timeline"] g[data-panel="${panel}"]`;

/** Reads the elements drawing series `id` in a panel of a suite's chart. */
export async function drawnSeries(
  page: Page,
  suite: string,
  panel: string,
  id: string,
): Promise<DrawnSeries> {
  const found = await page.locator(panelSelector(suite, panel)).evaluateAll((panels, id) => {
    const hidden = (window as unknown as { certflowHidden: HiddenReason }).certflowHidden;
    return panels.map((p) => {
      const a = p.querySelector('[data-plot-area]')!.getBoundingClientRect();
      const elements = [...p.querySelectorAll('[data-series]')]
        .filter((e) => e.getAttribute('data-series') === id)
        .map((e) => {
          const ctm = (e as SVGGraphicsElement).getScreenCTM()!;
          const d = e.getAttribute('d') ?? '';
          const subpaths = d
            .split('M')
            .filter((s) => s.trim())
            .map((seg) =>
              [...seg.matchAll(/(-?[\d.]+),(-?[\d.]+)/g)].map(([, x, y]) => {
                const q = new DOMPoint(Number(x), Number(y)).matrixTransform(ctm);
                return [q.x, q.y] as [number, number];
              }),
            );
          return { subpaths, hidden: hidden(e, 'stroke', 0.2) };
        });
      return { area: { left: a.left, right: a.right, top: a.top, bottom: a.bottom }, elements };
    });
  }, id);
  if (found.length !== 1) throw new Error(`${suite}: ${found.length} "${panel}" panels (expected 1)`);
  return found[0]!;
}

/** Reads the bands of `kind` in every panel of a suite's chart. */
export function drawnBands(page: Page, suite: string, kind: string): Promise<DrawnBands[]> {
  return page
    .locator(`section[data-suite="${suite}"] svg[data-chart="timeline"] g[data-panel]`)
    .evaluateAll((panels, kind) => {
      const hidden = (window as unknown as { certflowHidden: HiddenReason }).certflowHidden;
      const box = (r: DOMRect) => ({ left: r.left, right: r.right, top: r.top, bottom: r.bottom });
      return panels.map((p) => ({
        area: box(p.querySelector('[data-plot-area]')!.getBoundingClientRect()),
        bands: [...p.querySelectorAll('[data-marker]')]
          .filter((b) => b.getAttribute('data-marker') === kind)
          .map((b) => ({ ...box(b.getBoundingClientRect()), hidden: hidden(b, 'fill', 0.08) })),
      }));
    }, kind);
}

/** Why a label (HTML or SVG text) is not seen, or null. */
export function hiddenLabel(page: Page, selector: string): Promise<(string | null)[]> {
  return page.locator(selector).evaluateAll((els) => {
    const hidden = (window as unknown as { certflowHidden: HiddenReason }).certflowHidden;
    return els.map((e) => hidden(e, e instanceof SVGElement ? 'fill' : 'color', 0.5));
  });
}
