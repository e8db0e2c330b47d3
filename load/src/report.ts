/** Writes each suite's summary as JSON and all of a run's suites as one HTML page with a chart. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Profile } from './profiles';
import type { SuiteResult } from './suite-context';
import { barChartSvg } from './svg-chart';

/**
 * A suite's figure as text: integers as they are, others to two decimals, and small fractions
 * (signatures per 1000 calls in the full profile) to two significant digits instead of 0.01.
 */
export function formatFigure(v: number): string {
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) < 0.1 ? v.toPrecision(2) : v.toFixed(2);
}

const escape = (s: string): string =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

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

export function writeHtmlReport(resultsDir: string, profile: Profile, results: SuiteResult[]): string {
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
    .map(
      (r) =>
        `<li><b>${escape(r.suite)}</b>: ${r.broken.length ? `<span class="bad">FAILED</span> ${escape(r.broken.join('; '))}` : '<span class="ok">thresholds hold</span>'}` +
        Object.entries(r.figures)
          .map(([k, v]) => ` — ${escape(k)} ${formatFigure(v)}`)
          .join('') +
        '</li>',
    )
    .join('\n');
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>certflow load report (${profile.name})</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,td:nth-child(2){text-align:left}.bad{color:#b00}.ok{color:#070}</style>
</head><body>
<h1>certflow load report: ${profile.name} profile</h1>
<p>${new Date().toISOString()} · ${profile.connections} connections · ${profile.durationMs / 1000} s per measurement · thresholds: failures ≤ ${profile.thresholds.maxFailureRate * 100}%, p99 ≤ ${profile.thresholds.maxP99Ms} ms</p>
<ul>${verdicts}</ul>
${barChartSvg(
  'requests per second',
  results.flatMap((r) =>
    r.measurements.map((m) => ({ label: `${r.suite}: ${m.name}`, value: m.result.requestsPerSecond })),
  ),
  'req/s',
)}
<table><thead><tr><th>suite</th><th>measurement</th><th>req/s</th><th>p50 ms</th><th>p99 ms</th><th>requests</th><th>statuses</th><th>errors</th></tr></thead>
<tbody>
${rows}
</tbody></table>
</body></html>
`;
  const path = join(resultsDir, `report.${profile.name}.html`);
  writeFileSync(path, html);
  return path;
}
