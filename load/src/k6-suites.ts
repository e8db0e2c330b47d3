/**
 * The k6 scripts of load/k6, one per suite k6 can drive, run against the running stack by k6 or
 * by certflow's k6 harness. certflow starts and stops what a script needs (a partner facade, the
 * IdP outage's admin token, `cert rotate` in the middle of rotation-under-load); the script
 * only drives the load and judges it with its thresholds. Each run gives a K6RunRecord and
 * leaves next to the script's summary (`k6-<suite>.<profile>.json`, handleSummary's JSON) an
 * `k6-<suite>.<profile>.engine.json`: that record, which names the engine that produced it.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { GraphClient, NO_FAULTS, readEmulatorInfo } from '@certflow/entra-emulator';
import { servedApi, stackPartner } from '@certflow/stack';
import type { LoadResult } from './http-load';
import { MIN_TOKEN_LIFETIME_MS } from './cached-calls';
import { describeExit, runK6Script, type Engine } from './k6';
import { startPartnerFacade, tokensIssuedToPartner } from './partner-facade';
import type { K6RunRecord } from './report';
import { rotationUnderLoad, type LoadDriver } from './rotation-under-load';
import { partnerTokenForm, type SuiteContext } from './suite-context';

export interface Summary {
  metrics: Record<string, { values: Record<string, number>; thresholds?: Record<string, { ok: boolean }> }>;
  state?: { testRunDurationMs?: number };
}

export interface Outcome {
  code: number;
  /** Problems the runner found beyond the script's own verdict (e.g. the rotation's checks). */
  broken?: string[];
  figures?: Record<string, number>;
  /** Judge by the summary's thresholds, not the exit code (a run stopped with SIGINT). */
  byThresholds?: boolean;
  /** The user stopped the run (SIGINT/SIGTERM to the runner): whatever it measured, it is no pass. */
  interrupted?: boolean;
}

type Run = (env: Record<string, string>, signal?: AbortSignal) => Promise<number>;

/** The settings every script reads (load/k6/lib/profile.js), from the profile: one source of truth. */
function profileEnv(ctx: SuiteContext, summaryFile: string): Record<string, string> {
  const { connections, durationMs, thresholds } = ctx.profile;
  return {
    PROFILE_VUS: String(connections),
    PROFILE_DURATION_MS: String(durationMs),
    PROFILE_MAX_P99_MS: String(thresholds.maxP99Ms),
    PROFILE_MAX_FAILURE_RATE: String(thresholds.maxFailureRate),
    SSL_CERT_FILE: ctx.file.caCertificatePath,
    K6_SUMMARY_FILE: summaryFile,
  };
}

async function tokenEnv(ctx: SuiteContext): Promise<Record<string, string>> {
  return { TOKEN_ENDPOINT: ctx.file.emulator.tokenEndpoint, TOKEN_FORM: await partnerTokenForm(ctx) };
}

const gatewayEnv = (ctx: SuiteContext) => ({ GATEWAY_URL: ctx.file.gateway.url, ACCESS_TOKEN: ctx.token });

function readSummary(file: string): Summary | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Summary;
  } catch {
    return undefined;
  }
}

/** A LoadResult from a k6 summary (no timeline: k6 keeps no per-second series in it). */
export function loadResultFromSummary(url: string, vus: number, s: Summary): LoadResult {
  const v = (metric: string, key: string) => s.metrics[metric]?.values[key] ?? 0;
  const requests = v('http_reqs', 'count');
  const failed = Math.round(requests * v('http_req_failed', 'rate'));
  return {
    url,
    connections: vus,
    durationMs: s.state?.testRunDurationMs ?? 0,
    requests,
    requestsPerSecond: Math.round(v('http_reqs', 'rate')),
    statuses: { '200': requests - failed, ...(failed ? { 'failed (http_req_failed)': failed } : {}) },
    errors: {},
    latencyMs: {
      p50: v('http_req_duration', 'med'),
      p90: v('http_req_duration', 'p(90)'),
      p99: v('http_req_duration', 'p(99)'),
      max: v('http_req_duration', 'max'),
      mean: v('http_req_duration', 'avg'),
    },
  };
}

const SCRIPTS: Record<string, (ctx: SuiteContext, run: Run) => Promise<Outcome>> = {
  'token-endpoint': async (ctx, run) => ({ code: await run(await tokenEnv(ctx)) }),
  'gateway-throughput': async (ctx, run) => ({ code: await run(gatewayEnv(ctx)) }),
  'idp-outage': async (ctx, run) => {
    const graph = await GraphClient.connect(readEmulatorInfo(ctx.file.stateDir));
    try {
      return {
        code: await run({
          ...gatewayEnv(ctx),
          ...(await tokenEnv(ctx)),
          EMULATOR_URL: ctx.file.emulator.url,
          // The emulator's admin API takes an admin Graph token (tools/entra-emulator/src/admin-api.ts).
          EMULATOR_ADMIN_TOKEN: await graph.accessToken(),
        }),
      };
    } finally {
      await graph.setFaults(NO_FAULTS); // whatever the script did or did not do
      graph.close();
    }
  },
  'cached-calls': async (ctx, run) => {
    const before = await tokensIssuedToPartner(ctx.file, ctx.ca);
    const facade = await startPartnerFacade(ctx.file, 'k6');
    let code: number;
    try {
      code = await run({
        FACADE_URL: facade.url,
        EMULATOR_URL: ctx.file.emulator.url,
        PARTNER_CLIENT_ID: stackPartner(ctx.file).appId,
        API_CLIENT_ID: servedApi(ctx.file).appId,
        MIN_TOKEN_LIFETIME_MS: String(MIN_TOKEN_LIFETIME_MS),
      });
    } finally {
      await facade.stop();
    }
    const issued = (await tokensIssuedToPartner(ctx.file, ctx.ca)) - before;
    return { code, figures: { 'API tokens issued to the partner (facade start included)': issued } };
  },
  'rotation-under-load': async (ctx, run) => {
    let code = 0;
    const drive: LoadDriver = async (url, { durationMs, signal }) => {
      code = await run(
        { FACADE_URL: url.replace(/\/call\/orders$/, ''), PROFILE_DURATION_MS: String(durationMs) },
        signal,
      ).catch(() => -1); // the engine did not start: no summary, reported below
      // Never rejects (the rotation is under way meanwhile): a run without a summary measured
      // nothing, which the suite's thresholds and this record report.
      const summary = readSummary(summaryPath(ctx, 'rotation-under-load')) ?? { metrics: {} };
      return loadResultFromSummary(url, ctx.profile.connections, summary);
    };
    const result = await rotationUnderLoad(ctx, drive);
    // Stopped with SIGINT on purpose: exit 105 is expected, the thresholds judge the load.
    return { code, broken: result.broken, figures: result.figures, byThresholds: true };
  },
};

export const K6_SUITES = Object.keys(SCRIPTS);

const summaryPath = (ctx: SuiteContext, suite: string) =>
  join(ctx.resultsDir, `k6-${suite}.${ctx.profile.name}.json`);

/**
 * What broke in a script's run, from its summary and exit code: every failed threshold, no
 * summary, no request at all (a run that measured nothing does not pass), and the exit code
 * when it says more than the thresholds (test.fail() is 110 even when thresholds failed too).
 */
export function judge(summary: Summary | undefined, summaryFile: string, outcome: Outcome): string[] {
  const broken: string[] = [];
  const failedThresholds = Object.entries(summary?.metrics ?? {}).flatMap(([metric, m]) =>
    Object.entries(m.thresholds ?? {})
      .filter(([, t]) => !t.ok)
      .map(([expr]) => `threshold ${metric} '${expr}' failed`),
  );
  if (!summary) broken.push(`no summary was written to ${summaryFile}`);
  else if (!((summary.metrics.http_reqs?.values.count ?? 0) > 0))
    broken.push('the script made no request (http_reqs count 0): it measured nothing');
  broken.push(...failedThresholds);
  if (!outcome.byThresholds) {
    const exit = describeExit(outcome.code);
    if (exit && !(outcome.code === 99 && failedThresholds.length)) broken.push(exit);
  } else if (outcome.code !== 0 && outcome.code !== 105 && outcome.code !== 99) {
    broken.push(describeExit(outcome.code)!);
  }
  broken.push(...(outcome.broken ?? []));
  if (outcome.interrupted && !broken.includes(describeExit(105)!))
    broken.push('stopped by a signal: the run did not finish');
  return broken;
}

/** The figures a record takes from its summary (publish.ts checks a record's against its summary). */
export function summaryFigures(summary: Summary | undefined): Record<string, number> {
  const m = summary?.metrics ?? {};
  const value = (metric: string, key: string) => m[metric]?.values[key];
  return Object.fromEntries(
    Object.entries({
      requests: value('http_reqs', 'count'),
      'req/s': value('http_reqs', 'rate'),
      'p50 (ms)': value('http_req_duration', 'med'),
      'p99 (ms)': value('http_req_duration', 'p(99)'),
      'checks passed (rate)': value('checks', 'rate'),
    }).filter((e): e is [string, number] => typeof e[1] === 'number'),
  );
}

/** Runs the k6 script of each of `suites` (in K6_SUITES order) with `engine`; one record each. */
export async function runK6Suites(
  ctx: SuiteContext,
  suites: string[],
  engine: Engine,
  engineVersion: string,
  stop?: AbortSignal,
): Promise<K6RunRecord[]> {
  const records: K6RunRecord[] = [];
  for (const suite of K6_SUITES.filter((s) => suites.includes(s))) {
    if (stop?.aborted) break;
    const script = `${suite}.js`;
    const summaryFile = summaryPath(ctx, suite);
    const engineFile = summaryFile.replace(/\.json$/, '.engine.json');
    rmSync(summaryFile, { force: true });
    rmSync(engineFile, { force: true });
    const run: Run = (env, signal) =>
      runK6Script(
        engine,
        script,
        { ...profileEnv(ctx, summaryFile), ...env },
        signal && stop ? AbortSignal.any([signal, stop]) : (signal ?? stop),
      );
    console.log(`\nk6 script ${script} (engine: ${engineVersion})`);
    const broken: string[] = [];
    let outcome: Outcome = { code: -1 };
    try {
      outcome = await SCRIPTS[suite]!(ctx, run);
    } catch (err) {
      broken.push(`the runner failed around the script: ${(err as Error).message}`);
    }
    const summary = readSummary(summaryFile);
    broken.push(...judge(summary, summaryFile, { ...outcome, interrupted: stop?.aborted ?? false }));
    const figures = { ...summaryFigures(summary), ...outcome.figures };
    const record: K6RunRecord = {
      script,
      engine,
      engineVersion,
      passed: broken.length === 0,
      summaryFile: relative(join(__dirname, '..', '..'), summaryFile),
      figures,
      broken,
    };
    writeFileSync(engineFile, `${JSON.stringify({ ...record, at: new Date().toISOString() }, null, 2)}\n`);
    console.log(`${script} (${engineVersion}): ${record.passed ? 'passed' : `FAILED: ${broken.join('; ')}`}`);
    records.push(record);
  }
  return records;
}
