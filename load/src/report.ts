/**
 * Writes each suite's summary as JSON, and all of a run's suites as one HTML page: verdicts, a
 * time-series chart per suite (requests per second, p50/p99 latency, the emulator's count of
 * tokens issued, the outage and rotation windows), the k6 runs, and a table of every figure.
 */
import { randomUUID } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadResult } from './http-load';
import type { Profile } from './profiles';
import type { SuiteResult } from './suite-context';
import { BAND_COLORS, barChartSvg, escapeXml as escape, timeSeriesSvg, type Series } from './svg-chart';

/** A k6 script's run (by k6, or by certflow's harness standing in for it), as K's runner records it. */
export interface K6RunRecord {
  script: string;
  engine: 'k6' | 'harness';
  engineVersion: string;
  passed: boolean;
  summaryFile: string;
  figures: Record<string, number>;
  broken: string[];
}

export const HARNESS_LABEL = "certflow's k6 harness — not k6";

/**
 * What a run put in its report, written next to it (report.<profile>.manifest.json): the report's
 * check reads it to require that the page shows this run, all of it and nothing else.
 */
export interface ReportManifest {
  runId: string;
  profile: string;
  /** Each suite of the run, in the report's order, with its load's start (epoch ms; null: none recorded). */
  suites: { suite: string; startedAt: number | null }[];
  /** One per k6 table row, in order. */
  k6: { script: string; engine: 'k6' | 'harness' }[];
}

/** The earliest start of a suite's measurements (epoch ms), or null when none recorded one. */
export function loadStart(r: SuiteResult): number | null {
  const started = Math.min(...r.measurements.flatMap((m) => m.result.startedAt ?? []));
  return Number.isFinite(started) ? started : null;
}

/** Writes `text` to `path` whole or not at all: a temporary file beside it, then a rename. */
function writeAtomically(path: string, text: string): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, path);
}

/**
 * A suite's figure as text: integers as they are, others to two decimals, and small fractions
 * (signatures per 1000 calls in the full profile) to two significant digits instead of 0.01.
 */
export function formatFigure(v: number): string {
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) < 0.1 ? v.toPrecision(2) : v.toFixed(2);
}

export function writeJsonSummary(resultsDir: string, profile: Profile, result: SuiteResult): string {
  const path = join(resultsDir, `${result.suite}.${profile.name}.json`);
  const summary = {
    ...result,
    profile: profile.name,
    thresholds: profile.thresholds,
    at: new Date().toISOString(),
  };
  writeFileSync(path, JSON.stringify(summary, null, 2) + '\n');
  return path;
}

/** Colour-blind-safe (Okabe–Ito), one per measurement of a suite. */
const PALETTE = ['#0072b2', '#e69f00', '#009e73', '#cc79a7', '#56b4e9', '#7f7f00'];
const TOKEN_COLOR = '#222222';
const FAILURE_COLOR = '#c00000';

type Timed = LoadResult & Required<Pick<LoadResult, 'startedAt' | 'timeline'>>;
const timed = (r: LoadResult): r is Timed => r.startedAt !== undefined && r.timeline !== undefined;

/** A suite's time-series chart on one axis from its first event (load, token reading, marker) to its last. */
export function suiteChartSvg(r: SuiteResult): string {
  const runs = r.measurements.flatMap((m, i) =>
    timed(m.result) ? [{ name: m.name, result: m.result, color: PALETTE[i % PALETTE.length]! }] : [],
  );
  const samples = r.tokenSamples ?? [];
  const markers = r.markers ?? [];
  const starts = [
    ...runs.map((m) => m.result.startedAt),
    ...samples.map((s) => s.atMs),
    ...markers.map((m) => m.startMs),
  ];
  if (starts.length === 0) return '<p class="missing">No timeline was recorded for this suite.</p>';
  const t0 = Math.min(...starts);
  const ends = [
    ...runs.map((m) => m.result.startedAt + m.result.durationMs),
    ...samples.map((s) => s.atMs),
    ...markers.map((m) => m.endMs),
  ];
  const sec = (ms: number): number => (ms - t0) / 1000;
  /** A bucket's real length (the last one runs to the end of the load) and its middle on the axis. */
  const bucketSpan = (run: Timed, second: number) => {
    const isLast = second === run.timeline.length - 1;
    const length = Math.max(1, isLast ? run.durationMs - second * 1000 : 1000);
    return { length, mid: sec(run.startedAt + second * 1000 + length / 2) };
  };

  const rps: Series[] = [];
  const latency: Series[] = [];
  for (const { name, result, color } of runs) {
    // Every bucket, the last one too, in every series: rates are per second of its real length.
    const perSecond = (n: number, second: number): number =>
      Math.round((n * 1000) / bucketSpan(result, second).length);
    rps.push({
      id: `rps:${name}`,
      color,
      points: result.timeline.map((p) => [bucketSpan(result, p.second).mid, perSecond(p.requests, p.second)]),
    });
    if (result.timeline.some((p) => p.failures > 0))
      rps.push({
        id: `failures:${name}`,
        color: FAILURE_COLOR,
        dashed: true,
        points: result.timeline.map((p) => [
          bucketSpan(result, p.second).mid,
          perSecond(p.failures, p.second),
        ]),
      });
    // A bucket without an answer has no latency: the line breaks there instead of bridging it.
    for (const [key, dashed] of [['p50', false] as const, ['p99', true] as const])
      latency.push({
        id: `${key}:${name}`,
        color,
        dashed,
        points: result.timeline.map((p) => (p.p50 > 0 ? [bucketSpan(result, p.second).mid, p[key]] : null)),
      });
  }
  const first = samples[0]?.issued ?? 0;
  const tokens: Series = {
    id: 'tokens',
    color: TOKEN_COLOR,
    step: true,
    points: samples.map((s) => [sec(s.atMs), s.issued - first]),
  };
  const hasFailures = rps.some((s) => s.id.startsWith('failures:'));
  // Suites check tokens after the load too (e.g. that the new certificate gets one): say which came first.
  const loadEnd = Math.max(...runs.map((m) => m.result.startedAt + m.result.durationMs));
  const byLoadEnd = samples.filter((s) => s.atMs <= loadEnd).at(-1);
  const total = samples.length ? samples.at(-1)!.issued - first : 0;
  const tokenCount =
    byLoadEnd && byLoadEnd.issued - first !== total
      ? `${byLoadEnd.issued - first} by the end of the load, ${total} in all`
      : `${total} in all`;

  return timeSeriesSvg({
    title: `${r.suite}: over time`,
    spanSeconds: (Math.max(...ends) - t0) / 1000,
    legend: [
      ...runs.map((m) => ({ label: m.name, color: m.color })),
      { label: 'p50 latency (solid)', color: '#555' },
      { label: 'p99 latency (dashed)', color: '#555', dashed: true },
      ...(hasFailures ? [{ label: 'failed requests per second', color: FAILURE_COLOR, dashed: true }] : []),
      { label: 'API tokens issued to the partner (emulator)', color: TOKEN_COLOR },
      ...markers.map((m) => ({
        label: `${m.label}: ${((m.endMs - m.startMs) / 1000).toFixed(1)} s`,
        color: BAND_COLORS[m.kind]!,
        band: true,
      })),
    ],
    bands: markers.map((m) => ({ kind: m.kind, label: m.label, from: sec(m.startMs), to: sec(m.endMs) })),
    panels: [
      {
        id: 'rps',
        title: 'Requests per second (1-second buckets; the last, 0.2–1.2 s, per its real length)',
        series: rps,
        empty: 'no timeline',
      },
      {
        id: 'latency',
        title: 'Latency per 1-second bucket, ms (p50 solid, p99 dashed; gaps: no answer in that second)',
        series: latency,
        empty: 'no timeline',
      },
      {
        id: 'tokens',
        title: samples.length
          ? `API tokens issued to the partner, cumulative (emulator's /metrics every 0.5 s): ${tokenCount}`
          : 'API tokens the emulator issued to the partner',
        series: [tokens],
        counts: true,
        empty: 'the emulator’s token count was not read',
      },
    ],
  });
}

const verdict = (broken: string[]): string =>
  broken.length
    ? `<span class="bad">FAILED</span> ${escape(broken.join('; '))}`
    : '<span class="ok">thresholds hold</span>';

function suiteSection(r: SuiteResult): string {
  const figures = Object.entries(r.figures)
    .map(([k, v]) => `<li>${escape(k)}: <b>${formatFigure(v)}</b></li>`)
    .join('');
  // The run's identity: the check of the report judges it against this run's JSON summary only.
  const started = loadStart(r);
  const run = started === null ? '' : ` data-started-at="${started}"`;
  return `<section id="${escape(r.suite)}" data-suite="${escape(r.suite)}"${run}>
<h2>${escape(r.suite)}</h2>
<p>${escape(r.description)}</p>
<p>${verdict(r.broken)}</p>
${figures ? `<ul class="figures">${figures}</ul>` : ''}
${suiteChartSvg(r)}
</section>`;
}

function k6Table(runs: K6RunRecord[] | undefined): string {
  if (!runs?.length) return '<p>No k6 script ran in this run.</p>';
  const rows = runs
    .map((k) => {
      const engine =
        k.engine === 'k6'
          ? `k6 <small>${escape(k.engineVersion)}</small>`
          : `<span class="harness">${escape(HARNESS_LABEL)}</span><br><small>${escape(k.engineVersion)}</small>`;
      const figures = Object.entries(k.figures)
        .map(([n, v]) => `${escape(n)}: <b>${formatFigure(v)}</b>`)
        .join('<br>');
      return (
        `<tr data-engine="${escape(k.engine)}"${k.engine === 'harness' ? ' class="harness-row"' : ''}><td>${escape(k.script)}</td><td>${engine}</td>` +
        `<td>${k.passed ? '<span class="ok">passed</span>' : '<span class="bad">FAILED</span>'}</td>` +
        `<td>${figures}</td><td>${escape(k.broken.join('; '))}</td><td>${escape(k.summaryFile)}</td></tr>`
      );
    })
    .join('\n');
  return `<p>Rows marked <span class="harness">${escape(HARNESS_LABEL)}</span> ran the script on certflow's stand-in for k6, which keeps the scripts from rotting; their figures are <b>not k6 figures</b>.</p>
<table class="k6"><thead><tr><th>script</th><th>engine</th><th>result</th><th>figures (by the row's engine)</th><th>broken</th><th>summary</th></tr></thead>
<tbody>
${rows}
</tbody></table>`;
}

const STYLE = `body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1000px;padding:0 1rem;color:#222}
h2{margin-top:2.5rem;border-top:1px solid #ccc;padding-top:1rem}table{border-collapse:collapse;margin:1rem 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}td:first-child,td:nth-child(2){text-align:left}
.bad{color:#b00;font-weight:bold}.ok{color:#070;font-weight:bold}.figures{columns:2;font-size:.9rem}
.harness{background:#fff3b0;color:#6b3a00;font-weight:bold;padding:0 .3em;border:1px solid #c90}.missing{color:#b00}
table.k6 td,table.k6 th{text-align:left}small{color:#555}
svg{display:block;max-width:100%;height:auto}`;

export function writeHtmlReport(
  resultsDir: string,
  profile: Profile,
  results: SuiteResult[],
  k6Runs?: K6RunRecord[],
): string {
  const rows = results
    .flatMap((r) =>
      r.measurements.map(
        (m) =>
          `<tr><td>${escape(r.suite)}</td><td>${escape(m.name)}</td><td>${m.result.requestsPerSecond}</td>` +
          `<td>${m.result.latencyMs.p50}</td><td>${m.result.latencyMs.p99}</td><td>${m.result.requests}</td>` +
          `<td>${escape(JSON.stringify(m.result.statuses))}</td><td>${escape(JSON.stringify(m.result.errors))}</td></tr>`,
      ),
    )
    .join('\n');
  const verdicts = results
    .map((r) => `<li><a href="#${escape(r.suite)}"><b>${escape(r.suite)}</b></a>: ${verdict(r.broken)}</li>`)
    .join('\n');
  const runId = randomUUID();
  const html = `<!doctype html>
<html lang="en" data-run-id="${runId}"><head><meta charset="utf-8"><title>certflow load report (${escape(profile.name)})</title>
<style>${STYLE}</style>
</head><body>
<h1>certflow load report: ${escape(profile.name)} profile</h1>
<p>${new Date().toISOString()} · ${profile.connections} connections · ${profile.durationMs / 1000} s per measurement · thresholds: failures ≤ ${profile.thresholds.maxFailureRate * 100}%, p99 ≤ ${profile.thresholds.maxP99Ms} ms</p>
<ul>${verdicts}</ul>
${barChartSvg(
  'Requests per second, whole measurement',
  results.flatMap((r) =>
    r.measurements.map((m) => ({ label: `${r.suite}: ${m.name}`, value: m.result.requestsPerSecond })),
  ),
  'req/s',
)}
${results.map(suiteSection).join('\n')}
<h2>k6 scripts</h2>
${k6Table(k6Runs)}
<h2>All measurements</h2>
<table><thead><tr><th>suite</th><th>measurement</th><th>req/s</th><th>p50 ms</th><th>p99 ms</th><th>requests</th><th>statuses</th><th>errors</th></tr></thead>
<tbody>
${rows}
</tbody></table>
</body></html>
`;
  const manifest: ReportManifest = {
    runId,
    profile: profile.name,
    suites: results.map((r) => ({ suite: r.suite, startedAt: loadStart(r) })),
    k6: (k6Runs ?? []).map((k) => ({ script: k.script, engine: k.engine })),
  };
  const path = join(resultsDir, `report.${profile.name}.html`);
  writeAtomically(path, html);
  writeAtomically(
    join(resultsDir, `report.${profile.name}.manifest.json`),
    JSON.stringify(manifest, null, 2) + '\n',
  );
  return path;
}
