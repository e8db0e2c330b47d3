/**
 * The part of k6's JavaScript API the harness implements, as it runs inside a VU worker. The
 * loader hooks (loader-hooks.ts) map `import … from 'k6/…'` onto `modules` below; a property a
 * script reads that is not here throws an error naming it. Each item follows the k6 page listed
 * in load/k6/README.md.
 */
import { parentPort, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import {
  README_HINT,
  durationMs,
  type ExpectedStatuses,
  type FromWorker,
  type HttpAnswer,
  type HttpCall,
} from './protocol';
import { addSample, emptyAggregate, type Aggregate, type MetricType } from './metrics';

interface VuState {
  id: number;
  iteration: number;
  replyPort: MessagePort;
  /** [0]: the main thread's answer flag; [1]: set to 1 when the run must stop. */
  signals: Int32Array;
}

let vu: VuState | undefined;
/**
 * True while the script's module code runs (the init context). k6 refuses requests, metric adds
 * checks and groups there (js/modules/k6/http, internal/js/modules/k6/metrics, js/modules/k6): the
 * script fails with exit 107, as here.
 */
let initContext = false;

export function setInitContext(on: boolean): void {
  initContext = on;
}

function refuseInInit(what: string): void {
  if (initContext) throw new Error(`${what} in the init context is not supported`);
}
/** Samples since the last flush, aggregated (one message per flush, not per sample). */
const pending = new Map<string, { type: MetricType; agg: Aggregate }>();
const pendingChecks = new Map<string, [passes: number, fails: number]>();
let lastFlush = performance.now();
const FLUSH_EVERY_MS = 200;

export function bindVu(state: VuState): void {
  vu = state;
}

function post(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(msg, transfer);
}

/** Sends the samples aggregated so far to the main thread. */
export function flush(): void {
  lastFlush = performance.now();
  if (!pending.size && !pendingChecks.size) return;
  const metrics = [...pending].map(([name, p]): [string, Aggregate] => [
    name,
    p.agg.values ? { ...p.agg, values: p.agg.values.slice(0, p.agg.n) } : p.agg,
  ]);
  const checks = [...pendingChecks].map(([name, [passes, fails]]): [string, number, number] => [
    name,
    passes,
    fails,
  ]);
  pending.clear();
  pendingChecks.clear();
  post(
    { t: 'samples', metrics, checks },
    metrics.flatMap(([, a]) => (a.values ? [a.values.buffer as ArrayBuffer] : [])),
  );
}

/** Flushes when the last flush is FLUSH_EVERY_MS old (a VU's loop calls it after each iteration). */
export function flushSometimes(): void {
  if (performance.now() - lastFlush >= FLUSH_EVERY_MS) flush();
}

export function record(name: string, type: MetricType, value: number): void {
  let p = pending.get(name);
  if (!p) pending.set(name, (p = { type, agg: emptyAggregate(type) }));
  addSample(type, p.agg, value);
}

function state(): VuState {
  if (!vu) throw new Error('k6 API used before the harness bound a VU');
  return vu;
}

export const stopRequested = (): boolean => Atomics.load(state().signals, 1) === 1;

/** Only the listed properties exist; anything else is a clear error instead of `undefined`. */
function strict<T extends object>(module: string, api: T): T {
  return new Proxy(api, {
    get(target, prop, receiver) {
      if (typeof prop === 'symbol' || prop in target || prop === 'then')
        return Reflect.get(target, prop, receiver);
      throw new Error(`${module}: '${prop}' is not implemented by ${README_HINT}`);
    },
  });
}

// ---- k6 -------------------------------------------------------------------------------------

function check<T>(value: T, sets: Record<string, (v: T) => boolean>): boolean {
  refuseInInit('Using check()');
  let all = true;
  for (const [name, fn] of Object.entries(sets)) {
    const ok = Boolean(fn(value));
    const c = pendingChecks.get(name) ?? [0, 0];
    c[ok ? 0 : 1]++;
    pendingChecks.set(name, c);
    all &&= ok;
  }
  return all;
}

function sleep(seconds: number): void {
  // Wakes early when the run is stopped (SIGINT), as k6 interrupts a sleeping VU.
  Atomics.wait(state().signals, 1, 0, seconds * 1000);
}

function fail(message?: string): never {
  throw new Error(message ?? 'fail() called');
}

function group<R>(_name: string, fn: () => R): R {
  refuseInInit('Using group()');
  return fn();
}

// ---- k6/http --------------------------------------------------------------------------------

interface Params {
  headers?: Record<string, string>;
  tags?: Record<string, string>;
  timeout?: string | number;
  responseCallback?: ExpectedStatuses;
}

const DEFAULT_EXPECTED: ExpectedStatuses = { statuses: [], ranges: [{ min: 200, max: 399 }] };

function expectedStatuses(...args: (number | { min: number; max: number })[]): ExpectedStatuses {
  return {
    statuses: args.filter((a): a is number => typeof a === 'number'),
    ranges: args.filter((a): a is { min: number; max: number } => typeof a === 'object'),
  };
}

const PARAMS = new Set(['headers', 'tags', 'timeout', 'responseCallback']);

/** A value at a dotted path (`a.b.0`), the subset of k6's gjson selectors the scripts use. */
function select(value: unknown, path: string): unknown {
  return path
    .split('.')
    .reduce<unknown>(
      (v, key) => (v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined),
      value,
    );
}

function request(method: string, url: string, body?: string | null, given?: Params | null) {
  refuseInInit('Making http requests');
  const params = given ?? {};
  for (const key of Object.keys(params))
    if (!PARAMS.has(key)) throw new Error(`k6/http params.${key} is not implemented by ${README_HINT}`);
  if (body !== undefined && body !== null && typeof body !== 'string')
    throw new Error(`k6/http: only string bodies are implemented by ${README_HINT}`);
  const call: HttpCall = {
    method: method.toUpperCase(),
    url: String(url),
    headers: params.headers ?? {},
    timeoutMs: params.timeout === undefined ? 60_000 : durationMs(params.timeout, 'params.timeout'),
    expected: params.responseCallback ?? DEFAULT_EXPECTED,
    ...(body === undefined || body === null ? {} : { body }),
  };
  const s = state();
  flushSometimes();
  Atomics.store(s.signals, 0, 0);
  post({ t: 'http', call });
  let message: { message: HttpAnswer } | undefined;
  while (!(message = receiveMessageOnPort(s.replyPort))) Atomics.wait(s.signals, 0, 0, 1000);
  const a = message.message;
  return strict('k6/http Response', {
    status: a.status,
    body: a.body,
    headers: a.headers,
    error: a.error,
    error_code: a.errorCode,
    url: call.url,
    timings: strict('k6/http Response.timings', { duration: a.durationMs }),
    json(selector?: string): unknown {
      const parsed: unknown = JSON.parse(a.body);
      return selector === undefined ? parsed : select(parsed, selector);
    },
  });
}

// ---- k6/metrics -----------------------------------------------------------------------------

function metricClass(type: MetricType) {
  return class {
    constructor(
      readonly name: string,
      isTime = false,
    ) {
      if (!/^[A-Za-z0-9_]{1,128}$/.test(name)) throw new Error(`k6/metrics: invalid metric name '${name}'`);
      post({ t: 'def', name, type, isTime: type === 'trend' && isTime });
    }
    add(value: number | boolean): void {
      refuseInInit('Adding to metrics');
      record(this.name, type, Number(value));
    }
  };
}

// ---- k6/execution ---------------------------------------------------------------------------

const test = strict('k6/execution test', {
  fail(message?: string): void {
    console.error(`test.fail: ${message ?? 'the test was marked as failed'}`);
    post({ t: 'fail', message: message ?? 'test.fail() called' });
  },
});

export const modules: Record<string, Record<string, unknown>> = {
  k6: strict('k6', { check, fail, group, sleep }),
  'k6/http': strict('k6/http', {
    get: (url: string, params?: Params | null) => request('GET', url, null, params),
    post: (url: string, body?: string | null, params?: Params | null) => request('POST', url, body, params),
    request,
    expectedStatuses,
  }),
  'k6/metrics': strict('k6/metrics', {
    Counter: metricClass('counter'),
    Gauge: metricClass('gauge'),
    Rate: metricClass('rate'),
    Trend: metricClass('trend'),
  }),
  'k6/execution': strict('k6/execution', { test }),
};
