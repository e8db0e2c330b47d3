/**
 * Opens the smoke profile's load report in Chromium, as a reader would (a file, nothing from the
 * network), and checks that it shows the run that wrote it, all of it: the run's manifest
 * (report.smoke.manifest.json: run id, suites, k6 records) must match the page's run id, its
 * sections and its k6 rows exactly. For every suite, its JSON summary of the same run gives each
 * series' points and each band's window, and the check finds them where Chromium paints them,
 * within a one-second bucket, seen (drawing.ts, in-page.ts). Harness rows carry the not-k6
 * label, seen. Saves a full-page screenshot next to the report.
 *
 * LOAD_RESULTS_DIR points it at another results directory (default: load/results).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect, test, type Page } from '@playwright/test';
import { HARNESS_LABEL, type ReportManifest } from '../src/report';
import {
  axisOf,
  drawnBands,
  drawnSeries,
  expectedSeries,
  expectedTokens,
  hiddenLabel,
  installReaders,
  panelTop,
  type Box,
  type Expected,
  type Summary,
} from './drawing';

const resultsDir = resolve(process.env.LOAD_RESULTS_DIR ?? join(__dirname, '..', 'results'));
const reportPath = join(resultsDir, 'report.smoke.html');

/** The suites (when the report shows them) whose charts must mark a window, and those where the token count is the point. */
const MARKED: Record<string, 'outage' | 'rotation'> = {
  'idp-outage': 'outage',
  'rotation-under-load-pkcs11': 'rotation',
  'rotation-under-load': 'rotation',
};
const TOKENS_DRAWN = ['cached-calls', ...Object.keys(MARKED)];

async function open(page: Page): Promise<void> {
  if (!existsSync(reportPath))
    throw new Error(
      `${reportPath} is missing: run the smoke profile first (npx nx run load:build && node load/dist/main.js --profile smoke)`,
    );
  await page.goto(pathToFileURL(reportPath).href);
  await installReaders(page);
}

const manifestPath = join(resultsDir, 'report.smoke.manifest.json');

/** The run's manifest, written beside the report by the run: the page must show this run, all of it, nothing else. */
function manifest(): ReportManifest {
  if (!existsSync(manifestPath))
    throw new Error(
      `${manifestPath} is missing: the report is not from a run of this runner (run the smoke profile again)`,
    );
  return JSON.parse(readFileSync(manifestPath, 'utf8')) as ReportManifest;
}

/**
 * The run's suites, each with its JSON summary of the same run: the page's run id is the
 * manifest's, its sections are the manifest's suites (in order, with their load start, no
 * other), and each summary's load start is the manifest's.
 */
async function suitesOfRun(page: Page): Promise<Summary[]> {
  const run = manifest();
  expect(await page.locator('html').getAttribute('data-run-id'), `${reportPath}: run id`).toBe(run.runId);
  const sections = await page
    .locator('section[data-suite]')
    .evaluateAll((s) => s.map((e) => ({ suite: e.dataset.suite!, startedAt: e.dataset.startedAt ?? null })));
  expect(sections, `${reportPath}: its suites against the run's (${manifestPath})`).toEqual(
    run.suites.map((s) => ({ suite: s.suite, startedAt: s.startedAt === null ? null : String(s.startedAt) })),
  );
  expect(sections.length, `${reportPath} shows no suite`).toBeGreaterThan(0);
  return run.suites.map(({ suite, startedAt }) => {
    const file = join(resultsDir, `${suite}.smoke.json`);
    if (!existsSync(file)) throw new Error(`the run ran ${suite}, but ${file} is missing`);
    const summary = JSON.parse(readFileSync(file, 'utf8')) as Summary;
    const started = Math.min(...summary.measurements.map((m) => m.result.startedAt ?? Infinity));
    if (summary.suite !== suite || summary.profile !== 'smoke' || started !== startedAt)
      throw new Error(
        `${file} is not from the run in the report (its ${summary.suite} load started ${new Date(started).toISOString()}, ` +
          `the run's ${startedAt === null ? 'at no recorded time' : new Date(startedAt).toISOString()}): run the smoke profile again`,
      );
    return summary;
  });
}

/** Screen x of an instant on a suite's axis inside a plot area; and one bucket (1 s) in pixels. */
function xScale(summary: Summary, area: Box) {
  const { t0, spanMs } = axisOf(summary);
  const pxPerMs = (area.right - area.left) / spanMs;
  return { x: (atMs: number) => area.left + (atMs - t0) * pxPerMs, bucket: 1000 * pxPerMs };
}

/**
 * Checks that `expected` is drawn by one visible element of series `id`: one subpath per
 * unbroken run, each point within a bucket of its time, heights proportional to the values.
 */
async function expectDrawn(
  page: Page,
  summary: Summary,
  panel: 'rps' | 'latency' | 'tokens',
  id: string,
  expected: Expected[],
) {
  const what = `${summary.suite}: ${id}`;
  const { area, elements } = await drawnSeries(page, summary.suite, panel, id);
  expect(elements.length, `${what}: elements drawing it`).toBe(1);
  const [{ subpaths, hidden }] = elements as [(typeof elements)[0]];
  expect(hidden, `${what} is not seen`).toBeNull();
  const runs: { atMs: number; value: number }[][] = [[]];
  for (const p of expected) {
    if (p) runs.at(-1)!.push(p);
    else if (runs.at(-1)!.length) runs.push([]);
  }
  const want = runs.filter((r) => r.length);
  expect(
    subpaths.map((s) => s.length),
    `${what}: points per unbroken run`,
  ).toEqual(want.map((r) => r.length));
  const { x, bucket } = xScale(summary, area);
  const points = subpaths.flat();
  const values = want.flat();
  const height = area.bottom - area.top;
  const top = panelTop(summary, panel);
  values.forEach((v, i) => {
    const [px, py] = points[i]!;
    expect(
      Math.abs(px - x(v.atMs)),
      `${what}: point ${i} at ${px}, its time at ${x(v.atMs)}`,
    ).toBeLessThanOrEqual(bucket);
    expect(py, `${what}: point ${i} inside the plot area`).toBeGreaterThanOrEqual(area.top - 1);
    expect(py, `${what}: point ${i} inside the plot area`).toBeLessThanOrEqual(area.bottom + 1);
    const wantHeight = (height * v.value) / top;
    expect(
      Math.abs(area.bottom - py - wantHeight),
      `${what}: point ${i} (value ${v.value}) drawn at height ${area.bottom - py}, expected ${wantHeight}`,
    ).toBeLessThanOrEqual(2 + 0.01 * height);
  });
}

test.beforeEach(async ({ page }) => open(page));

test('every suite in the report draws its measured requests per second, failures and latency where they belong', async ({
  page,
}) => {
  for (const summary of await suitesOfRun(page)) {
    for (const { name, result } of summary.measurements) {
      expect(result.timeline?.length, `${summary.suite}: ${name} has no timeline`).toBeGreaterThan(0);
      await expectDrawn(page, summary, 'rps', `rps:${name}`, expectedSeries(result, 'rps'));
      if (result.timeline!.some((p) => p.failures > 0))
        await expectDrawn(page, summary, 'rps', `failures:${name}`, expectedSeries(result, 'failures'));
      for (const key of ['p50', 'p99'] as const)
        await expectDrawn(page, summary, 'latency', `${key}:${name}`, expectedSeries(result, key));
    }
  }
});

test('outage and rotation windows are shaded in every panel where the run recorded them', async ({
  page,
}) => {
  for (const summary of await suitesOfRun(page)) {
    const markers = summary.markers ?? [];
    const kind = MARKED[summary.suite];
    if (kind)
      expect(
        markers.filter((m) => m.kind === kind).length,
        `${summary.suite}: ${kind} markers in its JSON`,
      ).toBe(1);
    for (const k of new Set(markers.map((m) => m.kind))) {
      const windows = markers.filter((m) => m.kind === k).sort((a, b) => a.startMs - b.startMs);
      const panels = await drawnBands(page, summary.suite, k);
      expect(panels.length, `${summary.suite}: chart panels`).toBe(3);
      for (const { area, bands } of panels) {
        const { x, bucket } = xScale(summary, area);
        const what = `${summary.suite}: ${k} band`;
        expect(bands.length, `${what}s in a panel`).toBe(windows.length);
        bands
          .sort((a, b) => a.left - b.left)
          .forEach((band, i) => {
            const w = windows[i]!;
            expect(band.hidden, `${what} is not seen`).toBeNull();
            expect(
              Math.abs(band.left - x(w.startMs)),
              `${what}: starts at ${band.left}, the window at ${x(w.startMs)}`,
            ).toBeLessThanOrEqual(bucket);
            expect(
              Math.abs(band.right - x(w.endMs)),
              `${what}: ends at ${band.right}, the window at ${x(w.endMs)}`,
            ).toBeLessThanOrEqual(bucket);
            expect(
              Math.abs(band.top - area.top) + Math.abs(band.bottom - area.bottom),
              `${what}: spans the plot's height`,
            ).toBeLessThanOrEqual(2);
          });
      }
      expect(
        await hiddenLabel(page, `section[data-suite="${summary.suite}"] [data-marker-label="${k}"]`),
        `${summary.suite}: ${k} label`,
      ).toEqual(windows.map(() => null));
    }
  }
});

test('the emulator’s token count is drawn as read; harness rows say they are not k6; the page is saved', async ({
  page,
}) => {
  for (const summary of await suitesOfRun(page)) {
    const samples = summary.tokenSamples ?? [];
    if (TOKENS_DRAWN.includes(summary.suite))
      expect(samples.length, `${summary.suite}: token readings in its JSON`).toBeGreaterThanOrEqual(2);
    if (samples.length) await expectDrawn(page, summary, 'tokens', 'tokens', expectedTokens(summary));
  }
  const rows = await page.locator('table.k6 tbody tr').evaluateAll((trs) =>
    trs.map((tr) => ({
      script: tr.querySelector('td')?.textContent ?? '',
      engine: tr.getAttribute('data-engine'),
      text: tr.textContent ?? '',
      labels: tr.querySelectorAll('.harness').length,
    })),
  );
  expect(
    rows.map((r) => ({ script: r.script, engine: r.engine })),
    `k6 table rows against the run's k6 records (${manifestPath})`,
  ).toEqual(manifest().k6);
  for (const [i, row] of rows.entries()) {
    const what = `k6 table row ${i + 1} (${row.text.slice(0, 60)})`;
    if (row.engine === 'k6')
      expect(row.text, `${what} says k6 but names the harness`).not.toMatch(/harness/i);
    else {
      expect(row.text, `${what}: the not-k6 label`).toContain(HARNESS_LABEL);
      expect(row.labels, `${what}: the not-k6 label`).toBe(1);
    }
  }
  expect(
    await hiddenLabel(page, 'table.k6 tr[data-engine="harness"] .harness'),
    'harness labels seen',
  ).toEqual(rows.filter((r) => r.engine === 'harness').map(() => null));
  await page.screenshot({ path: join(resultsDir, 'report.smoke.png'), fullPage: true });
});
