/**
 * Opens the smoke profile's load report in Chromium, as a reader would (a file, nothing from the
 * network), and checks that what the charts claim to show is drawn: every suite of the run (the
 * JSON summaries next to the report) has a time series with data points, the IdP outage and the
 * certificate rotations are marked inside the plot area, and the emulator's token count is drawn
 * where caching is the point. Saves a full-page screenshot next to the report.
 *
 * LOAD_RESULTS_DIR points it at another results directory (default: load/results).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect, test, type Page } from '@playwright/test';

const resultsDir = resolve(process.env.LOAD_RESULTS_DIR ?? join(__dirname, '..', 'results'));
const reportPath = join(resultsDir, 'report.smoke.html');

/** The suites whose charts must mark a window, and those where the token count is the point. */
const MARKED: Record<string, 'outage' | 'rotation'> = {
  'idp-outage': 'outage',
  'rotation-under-load-pkcs11': 'rotation',
  'rotation-under-load': 'rotation',
};
const TOKENS_DRAWN = ['cached-calls', ...Object.keys(MARKED)];

interface Summary {
  suite: string;
  measurements: { name: string; result: { timeline?: unknown[] } }[];
  markers?: { kind: string }[];
}

/** The suite summaries the smoke run wrote next to the report (k6 and bench files are not suite summaries). */
function summaries(): Summary[] {
  return readdirSync(resultsDir)
    .filter((f) => f.endsWith('.smoke.json'))
    .map((f) => JSON.parse(readFileSync(join(resultsDir, f), 'utf8')) as Summary & { profile?: string })
    .filter((s) => typeof s.suite === 'string' && Array.isArray(s.measurements) && s.profile === 'smoke');
}

async function open(page: Page): Promise<void> {
  if (!existsSync(reportPath))
    throw new Error(
      `${reportPath} is missing: run the smoke profile first (npx nx run load:build && node load/dist/main.js --profile smoke)`,
    );
  await page.goto(pathToFileURL(reportPath).href);
}

/** How many points each of a section's polylines matching `selector` has, drawn with a visible extent. */
function drawnPoints(page: Page, suite: string, selector: string): Promise<number[]> {
  return page
    .locator(`section[data-suite="${suite}"] svg[data-chart="timeline"] ${selector}`)
    .evaluateAll((lines) =>
      lines.map((l) => {
        const box = l.getBoundingClientRect();
        const points = (l.getAttribute('points') ?? '').trim().split(/\s+/).filter(Boolean);
        return box.width > 0 ? points.length : 0;
      }),
    );
}

test.beforeEach(async ({ page }) => open(page));

test('every suite of the run has a time series of requests per second and latency, with points drawn', async ({
  page,
}) => {
  const expected = summaries();
  expect(expected.length, `no suite summaries (*.smoke.json) in ${resultsDir}`).toBeGreaterThan(0);
  const inReport = await page
    .locator('section[data-suite]')
    .evaluateAll((s) => s.map((e) => e.dataset.suite));
  expect(inReport.sort()).toEqual(expected.map((s) => s.suite).sort());
  for (const summary of expected) {
    const withTimeline = summary.measurements.filter((m) => Array.isArray(m.result.timeline));
    expect(withTimeline.length, `${summary.suite}: measurements without a timeline`).toBe(
      summary.measurements.length,
    );
    for (const series of ['rps:', 'p50:', 'p99:']) {
      const points = await drawnPoints(page, summary.suite, `polyline[data-series^="${series}"]`);
      expect(points.length, `${summary.suite}: ${series} lines`).toBe(summary.measurements.length);
      for (const n of points)
        expect(n, `${summary.suite}: points of a ${series} line`).toBeGreaterThanOrEqual(2);
    }
  }
});

test('the IdP outage and both certificate rotations are shaded inside every plot area of their suite', async ({
  page,
}) => {
  const bySuite = new Map(summaries().map((s) => [s.suite, s]));
  for (const [suite, kind] of Object.entries(MARKED)) {
    expect(
      bySuite.get(suite)?.markers?.filter((m) => m.kind === kind).length,
      `${suite}: ${kind} markers in its JSON`,
    ).toBe(1);
    const bands = await page
      .locator(`section[data-suite="${suite}"] svg[data-chart="timeline"] [data-panel]`)
      .evaluateAll(
        (panels, kind) =>
          panels.map((panel) => {
            const area = panel.querySelector('[data-plot-area]')!.getBoundingClientRect();
            return [...panel.querySelectorAll(`[data-marker="${kind}"]`)].map((band) => {
              const b = band.getBoundingClientRect();
              return b.width >= 1 &&
                b.left >= area.left - 0.5 &&
                b.right <= area.right + 0.5 &&
                b.top >= area.top - 0.5 &&
                b.bottom <= area.bottom + 0.5
                ? 'inside'
                : `outside (${b.left}–${b.right} vs ${area.left}–${area.right})`;
            });
          }),
        kind,
      );
    expect(bands.length, `${suite}: chart panels`).toBeGreaterThanOrEqual(3);
    for (const panel of bands) expect(panel, `${suite}: ${kind} band per panel`).toEqual(['inside']);
    await expect(page.locator(`section[data-suite="${suite}"] [data-marker-label="${kind}"]`)).toBeVisible();
  }
});

test('the emulator’s token count is drawn for cached-calls, idp-outage and the rotations; the page is saved', async ({
  page,
}) => {
  for (const suite of TOKENS_DRAWN) {
    const points = await drawnPoints(page, suite, 'polyline[data-series="tokens"]');
    expect(points.length, `${suite}: token series`).toBe(1);
    expect(points[0], `${suite}: token readings drawn`).toBeGreaterThanOrEqual(2);
  }
  await page.screenshot({ path: join(resultsDir, 'report.smoke.png'), fullPage: true });
});
