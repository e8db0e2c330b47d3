/**
 * Runs a k6 script the way `k6 run` does for the subset in load/k6/README.md: init, setup() in
 * VU 0, `vus` VUs (worker threads) iterating the default function for `duration` (or until
 * `iterations` are done, or SIGINT), teardown(), thresholds, handleSummary(). Exit codes as k6's:
 * 0, 99 thresholds failed, 104 invalid options, 105 stopped by a signal, 107 script error,
 * 110 test.fail() (https://grafana.com/docs/k6/latest/javascript-api/k6-execution/#test-fail).
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MessageChannel, Worker } from 'node:worker_threads';
import { failed, httpClient } from './http';
import { MetricStore, checkPercentile, type ThresholdOutcome } from './metrics';
import { README_HINT, durationMs, type FromWorker, type ToWorker } from './protocol';

export const EXIT = {
  ok: 0,
  thresholds: 99,
  invalidConfig: 104,
  externalAbort: 105,
  scriptException: 107,
  markedFailed: 110,
} as const;

const OPTIONS = new Set(['vus', 'duration', 'iterations', 'thresholds', 'summaryTrendStats']);

class ScriptError extends Error {}

interface Vu {
  worker: Worker;
  signals: Int32Array;
  send(msg: ToWorker): Promise<unknown>;
}

interface Options {
  vus: number;
  durationMs: number;
  iterations: number;
  thresholds: Record<string, string[]>;
  summaryTrendStats?: string[];
}

function parseOptions(raw: Record<string, unknown>): Options {
  for (const key of Object.keys(raw))
    if (!OPTIONS.has(key)) throw new Error(`option '${key}' is not implemented by ${README_HINT}`);
  const vus = raw.vus ?? 1;
  if (!Number.isInteger(vus) || (vus as number) < 1)
    throw new Error(`option vus '${String(vus)}' is not a positive integer`);
  const iterations = raw.iterations ?? 0;
  if (!Number.isInteger(iterations) || (iterations as number) < 0)
    throw new Error(`option iterations '${String(iterations)}' is not a whole number`);
  const thresholds: Record<string, string[]> = {};
  for (const [metric, list] of Object.entries((raw.thresholds ?? {}) as Record<string, unknown>)) {
    if (!Array.isArray(list) || list.some((t) => typeof t !== 'string'))
      throw new Error(
        `thresholds.${metric}: only arrays of expression strings are implemented by ${README_HINT}`,
      );
    thresholds[metric] = list as string[];
  }
  const stats = raw.summaryTrendStats;
  if (stats !== undefined && (!Array.isArray(stats) || stats.some((t) => typeof t !== 'string')))
    throw new Error('option summaryTrendStats is not an array of strings');
  for (const stat of (stats ?? []) as string[]) checkPercentile(stat, 'option summaryTrendStats');
  return {
    vus: vus as number,
    // k6: with iterations and no duration, the run may take up to 10 minutes; with neither,
    // it runs one iteration.
    durationMs: raw.duration !== undefined ? durationMs(raw.duration, 'option duration') : 600_000,
    iterations: raw.duration === undefined && !iterations ? 1 : (iterations as number),
    thresholds,
    ...(raw.summaryTrendStats ? { summaryTrendStats: raw.summaryTrendStats as string[] } : {}),
  };
}

export async function runScript(
  scriptPath: string,
  log: (line: string) => void = console.log,
): Promise<number> {
  const script = resolve(scriptPath);
  const store = new MetricStore();
  const http = httpClient();
  const shared = new SharedArrayBuffer(4);
  const vus: Vu[] = [];
  const markedFailed: string[] = [];
  let interrupted = false;
  let transportErrors = 0;

  function spawn(vuId: number): Vu {
    const { port1, port2 } = new MessageChannel();
    const signalBuffer = new SharedArrayBuffer(8);
    const signals = new Int32Array(signalBuffer);
    const worker = new Worker(join(__dirname, 'vu-worker.js'), {
      workerData: { script, vuId, replyPort: port2, signals: signalBuffer, shared },
      transferList: [port2],
    });
    let waiting: { resolve: (v: unknown) => void; reject: (e: Error) => void } | undefined;
    worker.on('message', (msg: FromWorker) => {
      switch (msg.t) {
        case 'def':
          return store.define(msg.name, msg.type, msg.isTime);
        case 'samples':
          for (const [name, aggregate] of msg.metrics) store.merge(name, aggregate);
          for (const [name, passes, fails] of msg.checks) store.check(name, passes, fails);
          return;
        case 'fail':
          markedFailed.push(msg.message);
          return;
        case 'http':
          void http.send(msg.call).then((a) => {
            if (a.error && transportErrors++ < 5) log(`request failed: ${a.error}`);
            store.add('http_reqs', 1);
            store.add('http_req_duration', a.durationMs);
            store.add('http_req_failed', failed(msg.call, a) ? 1 : 0);
            port1.postMessage(a);
            Atomics.store(signals, 0, 1);
            Atomics.notify(signals, 0);
          });
          return;
        case 'done': {
          const w = waiting;
          waiting = undefined;
          if (msg.error !== undefined) w?.reject(new ScriptError(msg.error));
          else w?.resolve(msg.value);
          return;
        }
      }
    });
    worker.on('error', (err) => waiting?.reject(new ScriptError(err.stack ?? err.message)));
    // A worker that dies mid-command must not leave the run waiting for an answer forever.
    worker.on('exit', (code) => waiting?.reject(new ScriptError(`VU ${vuId} stopped (exit ${code})`)));
    const vu: Vu = {
      worker,
      signals,
      send: (msg) =>
        new Promise((res, rej) => {
          waiting = { resolve: res, reject: rej };
          worker.postMessage(msg);
        }),
    };
    vus.push(vu);
    return vu;
  }

  const stop = () => {
    for (const vu of vus) {
      Atomics.store(vu.signals, 1, 1);
      Atomics.notify(vu.signals, 1);
    }
  };
  // k6 handles SIGTERM as SIGINT: the VUs stop, teardown() and handleSummary() run, exit 105.
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) {
      log(`second ${signal}: stopping at once`);
      process.exit(EXIT.externalAbort);
    }
    interrupted = true;
    log(`${signal}: stopping the VUs gracefully, then teardown() and handleSummary()`);
    stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const control = spawn(0);
  let code: number = EXIT.ok;
  const errors: string[] = [];
  let started = Date.now();
  let data: unknown;
  let exported: {
    setup: boolean;
    teardown: boolean;
    handleSummary: boolean;
    options: Record<string, unknown>;
  };
  let options: Options;
  try {
    try {
      exported = (await control.send({ cmd: 'init' })) as typeof exported;
    } catch (err) {
      log(`script error in the init context: ${(err as Error).message}`);
      return EXIT.scriptException;
    }
    try {
      options = parseOptions(exported.options);
      store.evaluate(options.thresholds, 0); // names every metric and expression now, as k6 does
    } catch (err) {
      log(`invalid options: ${(err as Error).message}`);
      return EXIT.invalidConfig;
    }
    // k6 initialises every VU before the run's clock starts (MarkStarted), then runs setup().
    const workers = Array.from({ length: options.vus }, (_, i) => spawn(i + 1));
    try {
      await Promise.all(workers.map((w) => w.send({ cmd: 'init' })));
    } catch (err) {
      log(`script error in the init context: ${(err as Error).message}`);
      return EXIT.scriptException;
    }
    started = Date.now();
    let setupOk = true;
    try {
      if (exported.setup) data = await control.send({ cmd: 'setup' });
    } catch (err) {
      errors.push(`setup() threw: ${(err as Error).message}`);
      setupOk = false;
    }
    if (setupOk && !interrupted) {
      store.add('vus', workers.length);
      store.add('vus_max', workers.length);
      const endAt = Date.now() + options.durationMs;
      await Promise.all(
        workers.map((w) => w.send({ cmd: 'run', data, endAt, iterations: options.iterations })),
      );
      await Promise.all(workers.map((w) => w.worker.terminate()));
      try {
        if (exported.teardown) await control.send({ cmd: 'teardown', data });
      } catch (err) {
        errors.push(`teardown() threw: ${(err as Error).message}`);
      }
    }
    const testRunMs = Date.now() - started;
    const outcomes = store.evaluate(options.thresholds, testRunMs);
    const summary = store.summary({
      durationMs: testRunMs,
      outcomes,
      ...(options.summaryTrendStats ? { trendStats: options.summaryTrendStats } : {}),
    });
    printThresholds(outcomes, log);
    if (exported.handleSummary) {
      try {
        const out = (await control.send({ cmd: 'summary', data: summary })) as Record<string, string> | null;
        for (const [target, text] of Object.entries(out ?? {})) {
          if (target === 'stdout') process.stdout.write(text);
          else if (target === 'stderr') process.stderr.write(text);
          else writeFileSync(target, text);
        }
      } catch (err) {
        // k6 logs this and keeps the run's exit code (internal/cmd/run.go).
        log(`failed to handle the end-of-test summary: ${(err as Error).message}`);
      }
    }
    for (const e of errors) log(e);
    // k6's order (internal/cmd/run.go): a signal, then the run's error, test.fail(), thresholds.
    if (interrupted) code = EXIT.externalAbort;
    else if (errors.length) code = EXIT.scriptException;
    else if (markedFailed.length) code = EXIT.markedFailed;
    else if (outcomes.some((o) => !o.ok)) code = EXIT.thresholds;
    return code;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await Promise.all(vus.map((v) => v.worker.terminate()));
    http.close();
  }
}

function printThresholds(outcomes: ThresholdOutcome[], log: (line: string) => void): void {
  for (const o of outcomes)
    log(`  ${o.ok ? '✓' : '✗'} ${o.metric} '${o.expr}' (actual ${Number(o.actual.toFixed(3))})`);
}
