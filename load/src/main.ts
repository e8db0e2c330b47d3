/**
 * certflow load suites: `--profile smoke` (seconds, part of npm test) or `--profile full`
 * (npm run load); `--suite NAME` (repeatable) to run some (always in SUITES order). Starts the whole stack in a
 * temporary state directory, gets the partner's token once (as a cached client would), runs
 * each suite, writes JSON summaries and an HTML report to load/results/, and exits 1 when a
 * threshold breaks.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { launchStackProcess, requestPartnerToken } from '@certflow/stack';
import type { LoadResult } from './http-load';
import { PROFILES, type Profile } from './profiles';
import { SUITES } from './suites';
import type { SuiteResult } from './suite-context';
import { formatFigure, writeHtmlReport, writeJsonSummary } from './report';
import { reportK6Missing } from './k6';

const USAGE = `usage: node load/dist/main.js [--profile smoke|full] [--suite ${Object.keys(SUITES).join('|')}]...`;

function line(name: string, r: LoadResult): string {
  return (
    `  ${name.padEnd(30)} ${String(r.requestsPerSecond).padStart(7)} req/s  ` +
    `p50 ${r.latencyMs.p50.toFixed(2)} ms  p99 ${r.latencyMs.p99.toFixed(2)} ms  ` +
    `${r.requests} requests, statuses ${JSON.stringify(r.statuses)}` +
    (Object.keys(r.errors).length ? `, errors ${JSON.stringify(r.errors)}` : '')
  );
}

async function main(): Promise<number> {
  let values;
  try {
    values = parseArgs({
      options: { profile: { type: 'string', default: 'smoke' }, suite: { type: 'string', multiple: true } },
      strict: true,
    }).values;
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const profile: Profile | undefined = PROFILES[values.profile as Profile['name']];
  const requested = values.suite ?? Object.keys(SUITES);
  const unknown = requested.filter((s) => !(s in SUITES));
  const suites = Object.keys(SUITES).filter((s) => requested.includes(s));
  if (!profile || unknown.length) {
    console.error(
      `${profile ? `unknown suite ${unknown.join(', ')}` : `unknown profile '${values.profile}'`}\n${USAGE}`,
    );
    return 2;
  }
  const resultsDir = resolve(__dirname, '..', 'results');
  mkdirSync(resultsDir, { recursive: true });

  const stateDir = mkdtempSync(join(tmpdir(), 'certflow-load-'));
  const stack = await launchStackProcess(stateDir);
  const results: SuiteResult[] = [];
  try {
    const ctx = {
      file: stack.file,
      token: await requestPartnerToken(stack.file),
      ca: readFileSync(stack.file.caCertificatePath),
      profile,
      resultsDir,
      k6NotRun: [] as string[],
    };
    console.log(
      `load (${profile.name}): ${profile.connections} connections, ${profile.durationMs / 1000} s per measurement`,
    );
    for (const name of suites) {
      const result = await SUITES[name]!(ctx);
      results.push(result);
      console.log(`${name}: ${result.description}`);
      for (const m of result.measurements) console.log(line(m.name, m.result));
      for (const [k, v] of Object.entries(result.figures)) console.log(`  ${k}: ${formatFigure(v)}`);
      writeJsonSummary(resultsDir, profile, result);
    }
    if (ctx.k6NotRun.length) reportK6Missing(ctx.k6NotRun);
  } finally {
    await stack.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
  console.log(`report: ${writeHtmlReport(resultsDir, profile, results)}`);
  const broken = results.flatMap((r) => r.broken.map((b) => `${r.suite}: ${b}`));
  if (broken.length) {
    console.error(`\nFAILED thresholds:\n  ${broken.join('\n  ')}`);
    return 1;
  }
  console.log('all thresholds hold');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
