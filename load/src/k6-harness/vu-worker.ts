/**
 * One VU (or the setup/teardown/handleSummary context, VU 0): loads the script as an ES module
 * through the harness's module hooks, then runs what the main thread asks, one command at a time.
 */
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { bindVu, flush, flushSometimes, record, setInitContext, stopRequested } from './k6-api';
import { README_HINT, type FromWorker, type ToWorker } from './protocol';

interface Script {
  default?: (data: unknown) => void;
  options?: Record<string, unknown>;
  setup?: () => unknown;
  teardown?: (data: unknown) => void;
  handleSummary?: (data: unknown) => Record<string, string>;
}

const { script, vuId, replyPort, signals, shared } = workerData as {
  script: string;
  vuId: number;
  replyPort: MessagePort;
  signals: SharedArrayBuffer;
  /** [0]: iterations started so far, across VUs (for `iterations`). */
  shared: SharedArrayBuffer;
};

const vu = { id: vuId, iteration: 0, replyPort, signals: new Int32Array(signals) };
bindVu(vu);
Object.defineProperties(globalThis, {
  __ENV: { value: { ...process.env }, writable: false },
  __VU: { get: () => vu.id },
  __ITER: { get: () => vu.iteration },
});
register(pathToFileURL(join(__dirname, 'loader-hooks.js')));

const post = (msg: FromWorker) => parentPort!.postMessage(msg);
const describe = (err: unknown): string =>
  err instanceof Error ? (err.stack ?? err.message) : `${String(err)} (thrown, not an Error)`;

/**
 * setup()'s data as k6 passes it to the VUs: JSON. A value JSON cannot hold (a function, a
 * BigInt, a symbol) is an error, as k6's "error marshaling setup() data to JSON", not dropped.
 */
function toJson(value: unknown): unknown {
  const text = JSON.stringify(value ?? null, (key, v: unknown) => {
    if (typeof v === 'function' || typeof v === 'symbol' || typeof v === 'bigint')
      throw new Error(`error marshaling setup() data to JSON: '${key || '(the data)'}' is a ${typeof v}`);
    return v;
  });
  return JSON.parse(text) as unknown;
}

let loaded: Script | undefined;
const mod = (): Script => loaded!;

const iterationErrors = new Map<string, number>();
function logIterationError(err: unknown): void {
  const text = describe(err);
  const seen = iterationErrors.get(text) ?? 0;
  iterationErrors.set(text, seen + 1);
  if (seen < 3) console.error(`VU ${vu.id}, iteration ${vu.iteration}: ${text}`);
}

function run(data: unknown, endAt: number, iterations: number): void {
  const counter = new Int32Array(shared);
  for (;;) {
    if (stopRequested() || Date.now() >= endAt) return;
    if (iterations > 0 && Atomics.add(counter, 0, 1) >= iterations) return;
    const t0 = performance.now();
    try {
      mod().default!(data);
    } catch (err) {
      // k6 logs an exception in an iteration and goes on with the next one.
      logIterationError(err);
    }
    record('iterations', 'counter', 1);
    record('iteration_duration', 'trend', performance.now() - t0);
    flushSometimes();
    vu.iteration++;
  }
}

async function execute(msg: ToWorker): Promise<unknown> {
  switch (msg.cmd) {
    case 'init':
      setInitContext(true);
      try {
        loaded = (await import(pathToFileURL(script).href)) as Script;
      } catch (err) {
        const e = err as Error;
        if (/does not provide an export named/.test(e.message))
          throw new Error(`${e.message} — ${README_HINT}\n${e.stack ?? ''}`);
        throw e;
      } finally {
        setInitContext(false);
      }
      if (typeof loaded.default !== 'function')
        throw new Error(`${script} has no default function (k6 needs one for its VUs)`);
      return {
        options: loaded.options ?? {},
        setup: typeof loaded.setup === 'function',
        teardown: typeof loaded.teardown === 'function',
        handleSummary: typeof loaded.handleSummary === 'function',
      };
    case 'setup':
      return toJson(mod().setup?.());
    case 'run':
      return run(msg.data, msg.endAt, msg.iterations);
    case 'teardown':
      return mod().teardown?.(msg.data);
    case 'summary':
      return mod().handleSummary?.(msg.data);
  }
}

parentPort!.on('message', (msg: ToWorker) => {
  void execute(msg)
    .then((value) => {
      flush();
      // May throw (a value that cannot be cloned): then the command fails, below.
      post({ t: 'done', value: value ?? null });
    })
    .catch((err: unknown) => {
      flush();
      post({ t: 'done', error: describe(err) });
    });
});
