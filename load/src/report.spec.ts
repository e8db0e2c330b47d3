import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoadResult, TimelinePoint } from './http-load';
import { PROFILES } from './profiles';
import { HARNESS_LABEL, writeHtmlReport, type K6RunRecord, type ReportManifest } from './report';
import type { SuiteResult } from './suite-context';
import { niceTicks } from './svg-chart';

const dir = mkdtempSync(join(tmpdir(), 'certflow-report-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const T0 = Date.UTC(2026, 10, 30, 4, 0, 0);

/** A measurement of `seconds` full seconds starting `offsetMs` after T0, `rate` requests a second. */
function measured(offsetMs: number, seconds: number, rate: number): LoadResult {
  const timeline: TimelinePoint[] = Array.from({ length: seconds }, (_, second) => ({
    second,
    requests: rate + second * 10,
    failures: 0,
    p50: 1 + second / 10,
    p99: 4 + second,
  }));
  return {
    url: 'https://localhost:1/orders',
    connections: 8,
    durationMs: seconds * 1000,
    requests: timeline.reduce((n, p) => n + p.requests, 0),
    requestsPerSecond: rate,
    statuses: { '200': 1 },
    errors: {},
    latencyMs: { p50: 1, p90: 2, p99: 4, max: 9, mean: 1.2 },
    startedAt: T0 + offsetMs,
    timeline,
  };
}

const samples = (n: number, at: (i: number) => number) =>
  Array.from({ length: n }, (_, i) => ({ atMs: T0 + i * 500, issued: at(i) }));

const outage: SuiteResult = {
  suite: 'idp-outage',
  description: 'calls while the IdP is down <for real>',
  measurements: [{ name: 'through the gateway', result: measured(0, 3, 5000) }],
  figures: {},
  broken: [],
  markers: [{ label: 'IdP outage', kind: 'outage', startMs: T0 + 1000, endMs: T0 + 2000 }],
  tokenSamples: samples(7, () => 40),
};
const rotation: SuiteResult = {
  suite: 'rotation-under-load',
  description: 'cert rotate under load',
  measurements: [{ name: 'facade & rotation', result: measured(200, 4, 900) }],
  figures: { 'rotation took (ms)': 812 },
  broken: ['p99 1200 ms > 1000 ms'],
  markers: [{ label: 'cert rotate', kind: 'rotation', startMs: T0 + 1500, endMs: T0 + 2300 }],
  // One token while the load runs, one more for the suite's check after it.
  tokenSamples: samples(11, (i) => (i < 2 ? 40 : i < 10 ? 41 : 42)),
};
const cached: SuiteResult = {
  suite: 'cached-calls',
  description: 'two facades',
  measurements: [
    { name: 'replica <1>', result: measured(0, 3, 700) },
    { name: 'replica <2>', result: measured(0, 3, 650) },
  ],
  figures: {},
  broken: [],
  tokenSamples: samples(7, (i) => 41 + Math.min(i, 1)),
};

/** Each suite's section of the report, by its data-suite attribute. */
function sections(html: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const m of html.matchAll(/<section [^>]*data-suite="([^"]+)"[^>]*>([\s\S]*?)<\/section>/g))
    found.set(m[1]!, m[2]!);
  return found;
}

const attr = (el: string, name: string): number => Number(new RegExp(` ${name}="([^"]+)"`).exec(el)![1]);
/** The paths of a section whose series id starts with `series`: their `d`. */
const paths = (section: string, series: string): string[] =>
  [...section.matchAll(new RegExp(`<path data-series="${series}[^"]*"[^>]* d="([^"]*)"`, 'g'))].map(
    (m) => m[1]!,
  );
/** How many points each of those paths draws. */
const pointCount = (section: string, series: string): number[] =>
  paths(section, series).map((d) => d.match(/-?[\d.]+,-?[\d.]+/g)?.length ?? 0);

/** Every band of `kind` in a section, each as [left, right] against its panel's plot area. */
function bands(section: string, kind: string): { inside: boolean }[] {
  return [...section.matchAll(/<g data-panel="[^"]+">[\s\S]*?<\/g>/g)].flatMap(([panel]) => {
    const area = /<rect data-plot-area=""[^>]*>/.exec(panel)![0];
    const [ax, aw] = [attr(area, 'x'), attr(area, 'width')];
    return [...panel.matchAll(new RegExp(`<rect data-marker="${kind}"[^>]*>`, 'g'))].map(([band]) => ({
      inside:
        attr(band, 'x') >= ax && attr(band, 'x') + attr(band, 'width') <= ax + aw && attr(band, 'width') > 0,
    }));
  });
}

describe('writeHtmlReport', () => {
  const k6Runs: K6RunRecord[] = [
    {
      script: 'cached-calls.js',
      engine: 'harness',
      engineVersion: 'certflow k6 harness (not k6) 0.1',
      passed: true,
      summaryFile: 'load/results/k6-cached-calls.smoke.json',
      figures: { http_reqs: 1200 },
      broken: [],
    },
  ];
  const html = readFileSync(writeHtmlReport(dir, PROFILES.smoke, [outage, cached, rotation], k6Runs), 'utf8');
  const bySuite = sections(html);

  it('gives every suite a section with its time series: req/s, p50, p99 and the token count, ≥ 2 points each', () => {
    expect([...bySuite.keys()]).toEqual(['idp-outage', 'cached-calls', 'rotation-under-load']);
    for (const [suite, section] of bySuite) {
      const measurements = suite === 'cached-calls' ? 2 : 1;
      expect(section).toContain('data-chart="timeline"');
      for (const series of ['rps:', 'p50:', 'p99:']) {
        expect(pointCount(section, series)).toHaveLength(measurements);
        for (const n of pointCount(section, series)) expect(n).toBeGreaterThanOrEqual(2);
      }
      expect(pointCount(section, 'tokens')[0]).toBeGreaterThanOrEqual(2);
    }
  });

  it('draws the outage and the rotation as bands inside each panel’s plot area, labelled', () => {
    expect(bands(bySuite.get('idp-outage')!, 'outage')).toEqual(Array(3).fill({ inside: true }));
    expect(bands(bySuite.get('rotation-under-load')!, 'rotation')).toEqual(Array(3).fill({ inside: true }));
    expect(bySuite.get('rotation-under-load')).toContain('>cert rotate</text>');
    expect(bySuite.get('rotation-under-load')).toContain('1 by the end of the load, 2 in all');
    expect(bySuite.get('idp-outage')).toContain('every 0.5 s): 0 in all');
    expect(bands(bySuite.get('cached-calls')!, 'outage')).toEqual([]);
  });

  it('shows no band for a suite whose markers are missing, and says when the token count was not read', () => {
    const stripped = { ...outage, markers: undefined, tokenSamples: undefined };
    const sub = mkdtempSync(join(dir, 'stripped-'));
    const section = sections(readFileSync(writeHtmlReport(sub, PROFILES.smoke, [stripped]), 'utf8')).get(
      'idp-outage',
    )!;
    expect(bands(section, 'outage')).toEqual([]);
    expect(pointCount(section, 'tokens')).toEqual([]);
    expect(section).toContain('token count was not read');
  });

  it('breaks latency lines where a second had no answer, and keeps the short last bucket in every series', () => {
    const result = measured(0, 4, 100);
    // Second 1: every request failed without an answer. The last bucket lasts 0.5 s, half of it failures.
    result.timeline![1] = { second: 1, requests: 30, failures: 30, p50: 0, p99: 0 };
    result.timeline![3] = { second: 3, requests: 80, failures: 40, p50: 2, p99: 9 };
    result.durationMs = 3_500;
    const gappy: SuiteResult = { ...outage, measurements: [{ name: 'gappy', result }], markers: [] };
    const sub = mkdtempSync(join(dir, 'gappy-'));
    const section = sections(readFileSync(writeHtmlReport(sub, PROFILES.smoke, [gappy]), 'utf8')).get(
      'idp-outage',
    )!;
    for (const key of ['p50:', 'p99:']) {
      expect(pointCount(section, key)).toEqual([3]);
      expect(paths(section, key)[0]!.match(/M/g)).toHaveLength(2);
    }
    expect(pointCount(section, 'rps:')).toEqual([4]);
    expect(pointCount(section, 'failures:')).toEqual([4]);
    // Per second of the bucket's real length: 80 requests in 0.5 s are 160 a second (the first second: 100).
    const area = /<rect data-plot-area=""[^>]*>/.exec(section)![0];
    const bottom = attr(area, 'y') + attr(area, 'height');
    const ys = paths(section, 'rps:')[0]!
      .match(/-?[\d.]+,-?[\d.]+/g)!
      .map((p) => bottom - Number(p.split(',')[1]));
    expect(ys[3]! / ys[0]!).toBeCloseTo(1.6, 2);
    expect(section).toContain('the last, 0.2–1.2 s, per its real length');
  });

  it('escapes names and keeps the verdicts and the table', () => {
    expect(html).not.toContain('<1>');
    expect(html).toContain('replica &lt;1&gt;');
    expect(html).toContain('&lt;for real&gt;');
    expect(html).toMatch(
      /<b>rotation-under-load<\/b><\/a>: <span class="bad">FAILED<\/span> p99 1200 ms &gt; 1000 ms/,
    );
    expect(html).toMatch(/<td>cached-calls<\/td><td>replica &lt;2&gt;<\/td><td>650<\/td>/);
  });

  it('labels harness runs of the k6 scripts loudly as not k6', () => {
    expect(html).toContain(`<tr data-engine="harness" class="harness-row"><td>cached-calls.js</td>`);
    expect(html).toMatch(/<section id="idp-outage" data-suite="idp-outage" data-started-at="\d+">/);
    expect(html).toContain(HARNESS_LABEL.replace("'", '&#39;'));
    expect(html).toContain('not k6 figures');
  });

  it('writes beside the report a manifest of the run: its id (also in the page), suites with their load start, k6 rows', () => {
    const manifest = JSON.parse(
      readFileSync(join(dir, 'report.smoke.manifest.json'), 'utf8'),
    ) as ReportManifest;
    expect(html).toContain(`<html lang="en" data-run-id="${manifest.runId}">`);
    expect(manifest.runId).toMatch(/^[0-9a-f-]{36}$/);
    expect(manifest.suites).toEqual(
      [outage, cached, rotation].map((r) => ({
        suite: r.suite,
        startedAt: Math.min(...r.measurements.map((m) => m.result.startedAt!)),
      })),
    );
    expect(manifest.k6).toEqual([{ script: 'cached-calls.js', engine: 'harness' }]);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

describe('niceTicks', () => {
  it('gives round ticks from 0 past the maximum, whole numbers for counts', () => {
    expect(niceTicks(3831)).toEqual([0, 1000, 2000, 3000, 4000]);
    expect(niceTicks(0.8)).toEqual([0, 0.2, 0.4, 0.6, 0.8]);
    expect(niceTicks(2)).toEqual([0, 0.5, 1, 1.5, 2]);
    expect(niceTicks(2, 4, 1)).toEqual([0, 1, 2]);
    expect(niceTicks(0)).toEqual([0, 1]);
  });
});
