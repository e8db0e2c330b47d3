/**
 * certflow load suites: `--profile smoke` (seconds, part of npm test) or `--profile full`
 * (npm run load); `--suite NAME` (repeatable) to run some (always in SUITES order). Starts the whole stack in a
 * temporary state directory, gets the partner's token once (as a cached client would), runs
 * each suite, writes JSON summaries and an HTML report to load/results/, and exits 1 when a
 * threshold breaks.
 *
 * `--engine certflow` (default): certflow's suites, then the k6 scripts of load/k6 — by k6 when
 * it is on the PATH; in the smoke profile without k6, by certflow's k6 harness (NOT k6, and
 * said so), so that the scripts cannot rot; in the full profile without k6 they are reported
 * as not run. `--engine k6`: only the k6 scripts, by k6 (exit 2 when k6 is missing).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { launchStackProcess, requestPartnerToken } from '@certflow/stack';
import type { LoadResult } from './http-load';
import { PROFILES, type Profile } from './profiles';
import { SUITES } from './suites';
import type { SuiteContext, SuiteResult } from './suite-context';
import { formatFigure, writeHtmlReport, writeJsonSummary, type K6RunRecord } from './report';
import { K6_INSTALL_HINT, k6Version, killEnginesNow, reportK6Missing, type Engine } from './k6';
import { K6_SUITES, runK6Suites } from './k6-suites';
import { HARNESS_VERSION } from './k6-harness/protocol';

const USAGE = `usage: node load/dist/main.js [--profile smoke|full] [--engine certflow|k6] [--suite ${Object.keys(SUITES).join('|')}]...`;

/** Which engine runs the k6 scripts in this run, if any; says so loudly. */
function k6EngineFor(profile: Profile, engineOption: string, k6: string | undefined): Engine | undefined {
  if (k6) return 'k6';
  if (engineOption === 'certflow' && profile.name === 'smoke') {
    const line = '#'.repeat(78);
    console.log(
      `\n${line}\n## k6 is not installed: the k6 scripts of load/k6 run on certflow's k6 HARNESS,\n` +
        `## which is NOT k6. It implements the part of the k6 API the scripts use (load/k6/README.md)\n` +
        `## so that they cannot rot; its figures are not k6 figures.\n${line}`,
    );
    return 'harness';
  }
  return undefined;
}

function line(name: string, r: LoadResult): string {
  return (
    `  ${name.padEnd(30)} ${String(r.requestsPerSecond).padStart(7)} req/s  ` +
    `p50 ${r.latencyMs.p50.toFixed(2)} ms  p99 ${r.latencyMs.p99.toFixed(2)} ms  ` +
    `${r.requests} requests, statuses ${JSON.stringify(r.statuses)}` +
    (Object.keys(r.errors).length ? `, errors ${JSON.stringify(r.errors)}` : '')
  );
}

/** How long an abandoned suite may take to clean up (facades, the HSM partner) before the stack stops. */
const SUITE_CLEANUP_MS = 30_000;

/**
 * SIGINT and SIGTERM stop the run: the current suite sees `signal` abort (a k6 engine gets one
 * SIGINT), main waits a bounded time for its cleanup, then stops the stack and removes its
 * state. A second signal runs `now` (which must be synchronous: kill and remove) and exits.
 */
function stopOnSignals(now: () => void) {
  const controller = new AbortController();
  const onSignal = (name: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      console.error(`\nload: second ${name}: killing the stack and the k6 engine, removing the state`);
      now();
      process.exit(130);
    }
    console.error(`\nload: ${name}: stopping the current suite, then the stack (again to exit at once)`);
    controller.abort(`stopped by ${name}`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const aborted = new Promise<never>((_, reject) =>
    controller.signal.addEventListener('abort', () => reject(new Error(String(controller.signal.reason)))),
  );
  aborted.catch(() => undefined);
  return {
    signal: controller.signal,
    /** `work`, or a rejection as soon as a signal arrives. */
    race: <T>(work: Promise<T>): Promise<T> => Promise.race([work, aborted]),
    dispose(): void {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/** Kills a process group (the stack's) at once; it may be gone already. */
function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** Resolves when `work` settles or after `ms`, whichever comes first. */
async function settled(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  await Promise.race([
    work.then(
      () => undefined,
      () => undefined,
    ),
    late,
  ]);
  clearTimeout(timer);
}

async function main(): Promise<number> {
  let values;
  try {
    values = parseArgs({
      options: {
        profile: { type: 'string', default: 'smoke' },
        engine: { type: 'string', default: 'certflow' },
        suite: { type: 'string', multiple: true },
      },
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
  if (values.engine !== 'certflow' && values.engine !== 'k6') {
    console.error(`unknown engine '${values.engine}'\n${USAGE}`);
    return 2;
  }
  const k6Suites = K6_SUITES.filter((s) => suites.includes(s));
  let k6: string | undefined;
  try {
    k6 = k6Suites.length ? k6Version() : undefined;
  } catch (err) {
    console.error((err as Error).message);
    return 2;
  }
  if (values.engine === 'k6' && !k6) {
    console.error(`--engine k6: k6 is not on the PATH; ${K6_INSTALL_HINT}.`);
    return 2;
  }
  const certflowSuites = values.engine === 'certflow' ? suites : [];
  const resultsDir = resolve(__dirname, '..', 'results');
  mkdirSync(resultsDir, { recursive: true });

  const stateDir = mkdtempSync(join(tmpdir(), 'certflow-load-'));
  let stack: Awaited<ReturnType<typeof launchStackProcess>> | undefined;
  const stopped = stopOnSignals(() => {
    killEnginesNow();
    if (stack) killGroup(stack.pid);
    rmSync(stateDir, { recursive: true, force: true });
  });
  const results: SuiteResult[] = [];
  let k6Runs: K6RunRecord[] = [];
  /** The suite under way, awaited (bounded) after a signal so that its cleanup runs before the stack stops. */
  let current: Promise<unknown> | undefined;
  try {
    // Its own process group: a terminal's Ctrl+C reaches the runner only, which stops it last.
    stack = await launchStackProcess(stateDir, undefined, [], { ownProcessGroup: true });
    stopped.signal.throwIfAborted();
    const ctx: SuiteContext = {
      signal: stopped.signal,
      file: stack.file,
      token: await requestPartnerToken(stack.file),
      ca: readFileSync(stack.file.caCertificatePath),
      profile,
      resultsDir,
    };
    console.log(
      `load (${profile.name}): ${profile.connections} connections, ${profile.durationMs / 1000} s per measurement`,
    );
    for (const name of certflowSuites) {
      const suite = SUITES[name]!(ctx);
      current = suite;
      const result = await stopped.race(suite);
      results.push(result);
      console.log(`${name}: ${result.description}`);
      for (const m of result.measurements) console.log(line(m.name, m.result));
      for (const [k, v] of Object.entries(result.figures)) console.log(`  ${k}: ${formatFigure(v)}`);
      writeJsonSummary(resultsDir, profile, result);
    }
    const engine = k6Suites.length ? k6EngineFor(profile, values.engine, k6) : undefined;
    if (engine) {
      const started = performance.now();
      // A signal reaches the engine as SIGINT (it then runs teardown() and handleSummary()).
      k6Runs = await runK6Suites(
        ctx,
        k6Suites,
        engine,
        engine === 'k6' ? k6! : HARNESS_VERSION,
        stopped.signal,
      );
      stopped.signal.throwIfAborted();
      console.log(`k6 scripts (${engine}): ${((performance.now() - started) / 1000).toFixed(1)} s`);
    } else if (k6Suites.length) reportK6Missing(k6Suites.map((s) => `${s}.js`));
  } catch (err) {
    if (!stopped.signal.aborted) throw err;
    if (current) await settled(current, SUITE_CLEANUP_MS);
  } finally {
    await stack?.stop(); // faults off with it: the emulator's faults live in the stack
    rmSync(stateDir, { recursive: true, force: true });
    stopped.dispose();
  }
  if (stopped.signal.aborted) {
    console.error(`load: ${String(stopped.signal.reason)}; the stack is stopped, no report written`);
    return 130;
  }
  console.log(`report: ${writeHtmlReport(resultsDir, profile, results, k6Runs)}`);
  const broken = [
    ...results.flatMap((r) => r.broken.map((b) => `${r.suite}: ${b}`)),
    ...k6Runs.flatMap((k) => k.broken.map((b) => `${k.script} (${k.engineVersion}): ${b}`)),
  ];
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
