/**
 * The harness's metric store: k6's four metric types, the thresholds the scripts use, and the
 * summary object k6 hands to handleSummary (legacy shape: `metrics.<name>.{type, contains,
 * values, thresholds}`, `root_group.checks`, `state.testRunDurationMs`).
 * https://grafana.com/docs/k6/latest/using-k6/metrics/ and
 * https://grafana.com/docs/k6/latest/using-k6/thresholds/
 */
import { HARNESS_VERSION } from './protocol';

export type MetricType = 'counter' | 'gauge' | 'rate' | 'trend';

/**
 * A metric's samples, aggregated as they arrive (the VU workers send such aggregates on a
 * timer, not one message per sample): counters and rates as sums, gauges as last/min/max,
 * trends as every value in a Float64Array (k6 keeps every trend value too, for exact percentiles).
 */
export interface Aggregate {
  /** samples seen */
  n: number;
  /** counter: sum; rate: non-zero samples; gauge: last value; trend: sum */
  sum: number;
  min: number;
  max: number;
  /** trend only: the values, `n` of them used */
  values?: Float64Array;
}

export const emptyAggregate = (type: MetricType): Aggregate => ({
  n: 0,
  sum: 0,
  min: Infinity,
  max: -Infinity,
  ...(type === 'trend' ? { values: new Float64Array(16) } : {}),
});

/** Adds one sample to `a` (in a VU worker or in the main thread). */
export function addSample(type: MetricType, a: Aggregate, value: number): void {
  if (type === 'rate') a.sum += value !== 0 ? 1 : 0;
  else if (type === 'gauge') a.sum = value;
  else a.sum += value;
  if (type === 'trend') {
    if (a.n === a.values!.length) {
      const grown = new Float64Array(a.values!.length * 2);
      grown.set(a.values!);
      a.values = grown;
    }
    a.values![a.n] = value;
  }
  a.min = Math.min(a.min, value);
  a.max = Math.max(a.max, value);
  a.n++;
}

/** Merges `b` (a worker's aggregate since its last flush) into `a`. */
export function mergeAggregate(type: MetricType, a: Aggregate, b: Aggregate): void {
  if (b.n === 0) return;
  if (type === 'gauge') a.sum = b.sum;
  else a.sum += b.sum;
  if (type === 'trend') {
    const need = a.n + b.n;
    if (need > a.values!.length) {
      const grown = new Float64Array(Math.max(need, a.values!.length * 2));
      grown.set(a.values!.subarray(0, a.n));
      a.values = grown;
    }
    a.values!.set(b.values!.subarray(0, b.n), a.n);
  }
  a.min = Math.min(a.min, b.min);
  a.max = Math.max(a.max, b.max);
  a.n += b.n;
}

interface Metric extends Aggregate {
  type: MetricType;
  isTime: boolean;
}

/** The metrics every run reports, as k6 declares them. */
const BUILT_IN: Record<string, { type: MetricType; isTime?: boolean }> = {
  http_reqs: { type: 'counter' },
  http_req_duration: { type: 'trend', isTime: true },
  http_req_failed: { type: 'rate' },
  checks: { type: 'rate' },
  iterations: { type: 'counter' },
  iteration_duration: { type: 'trend', isTime: true },
  vus: { type: 'gauge' },
  vus_max: { type: 'gauge' },
};

const DEFAULT_TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)'];

/**
 * The aggregation methods k6 accepts in a threshold, per metric type (k6's
 * metrics/metric_type.go, supportedAggregationMethods); anything else is an invalid threshold.
 */
export const THRESHOLD_AGGREGATES: Record<MetricType, string> = {
  counter: 'count, rate',
  gauge: 'value',
  rate: 'rate',
  trend: 'avg, min, max, med, p(N)',
};

function thresholdAggregateOk(type: MetricType, agg: string): boolean {
  if (type === 'trend' && /^p\(\d+(?:\.\d+)?\)$/.test(agg)) return true;
  return THRESHOLD_AGGREGATES[type].split(', ').includes(agg);
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  // k6 interpolates between the two nearest ranks.
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo);
}

/** One aggregate of a metric: count, rate, passes, fails, avg, min, max, med, value, p(N). */
function aggregate(m: Metric, name: string, durationMs: number, sorted?: Float64Array): number {
  const empty = m.n === 0;
  switch (m.type) {
    case 'counter':
      if (name === 'count') return m.sum;
      if (name === 'rate') return durationMs > 0 ? m.sum / (durationMs / 1000) : 0;
      break;
    case 'rate':
      if (name === 'rate') return empty ? 0 : m.sum / m.n;
      if (name === 'passes') return m.sum;
      if (name === 'fails') return m.n - m.sum;
      break;
    case 'gauge':
      if (name === 'value') return empty ? 0 : m.sum;
      if (name === 'min') return empty ? 0 : m.min;
      if (name === 'max') return empty ? 0 : m.max;
      break;
    case 'trend': {
      if (name === 'count') return m.n;
      if (name === 'avg') return empty ? 0 : m.sum / m.n;
      if (name === 'min') return empty ? 0 : m.min;
      if (name === 'max') return empty ? 0 : m.max;
      const s = sorted ?? m.values!.slice(0, m.n).sort();
      if (name === 'med') return percentile(s, 50);
      const p = /^p\((\d+(?:\.\d+)?)\)$/.exec(name);
      if (p) return percentile(s, Number(p[1]));
      break;
    }
  }
  throw new Error(`the aggregate '${name}' does not exist for the ${m.type} metric (see load/k6/README.md)`);
}

const OPERATORS: Record<string, (a: number, b: number) => boolean> = {
  '<': (a, b) => a < b,
  '<=': (a, b) => a <= b,
  '>': (a, b) => a > b,
  '>=': (a, b) => a >= b,
  '==': (a, b) => a === b,
  '===': (a, b) => a === b,
  '!=': (a, b) => a !== b,
};

/** `p(99)<1000` → its parts; throws naming the expression when it is not one the harness knows. */
export function parseThreshold(expr: string): { agg: string; op: string; value: number } {
  const m = /^\s*([a-z]+|p\(\d+(?:\.\d+)?\))\s*(<=|>=|===|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$/.exec(expr);
  if (!m)
    throw new Error(`threshold '${expr}' is not '<aggregate> <operator> <number>' (see load/k6/README.md)`);
  checkPercentile(m[1]!, `threshold '${expr}'`);
  return { agg: m[1]!, op: m[2]!, value: Number(m[3]) };
}

/** k6 refuses a percentile outside 0..100 ("malformed percentile value") in thresholds and summaryTrendStats. */
export function checkPercentile(agg: string, where: string): void {
  const p = /^p\((.*)\)$/.exec(agg);
  if (p && !(Number(p[1]) >= 0 && Number(p[1]) <= 100))
    throw new Error(`${where}: malformed percentile value '${p[1]}' (k6 takes 0 to 100)`);
}

export interface ThresholdOutcome {
  metric: string;
  expr: string;
  ok: boolean;
  actual: number;
}

export class MetricStore {
  private readonly metrics = new Map<string, Metric>();
  readonly checks = new Map<string, { passes: number; fails: number }>();

  constructor() {
    for (const [name, def] of Object.entries(BUILT_IN)) this.define(name, def.type, def.isTime ?? false);
  }

  define(name: string, type: MetricType, isTime: boolean): void {
    const existing = this.metrics.get(name);
    if (existing && existing.type !== type)
      throw new Error(`metric '${name}' is already a ${existing.type}, not a ${type}`);
    if (!existing) this.metrics.set(name, { type, isTime, ...emptyAggregate(type) });
  }

  private metric(name: string): Metric {
    const m = this.metrics.get(name);
    if (!m) throw new Error(`metric '${name}' was never declared`);
    return m;
  }

  add(name: string, value: number): void {
    const m = this.metric(name);
    addSample(m.type, m, value);
  }

  /** A worker's aggregate of `name` since its last flush. */
  merge(name: string, a: Aggregate): void {
    const m = this.metric(name);
    mergeAggregate(m.type, m, a);
  }

  check(name: string, passes: number, fails: number): void {
    const c = this.checks.get(name) ?? { passes: 0, fails: 0 };
    c.passes += passes;
    c.fails += fails;
    this.checks.set(name, c);
    this.merge('checks', { n: passes + fails, sum: passes, min: fails ? 0 : 1, max: passes ? 1 : 0 });
  }

  /**
   * Every threshold, checked before the run (`durationMs` 0) and evaluated at its end, as k6
   * does: a threshold on a metric nobody declared, or with an aggregation k6 does not support
   * for the metric's type, is an error. A metric without samples is evaluated on zeros, except
   * a Rate, whose thresholds then pass (k6's thresholds.go leaves out an empty Rate).
   */
  evaluate(thresholds: Record<string, string[]>, durationMs: number): ThresholdOutcome[] {
    return Object.entries(thresholds).flatMap(([metric, exprs]) => {
      const m = this.metrics.get(metric);
      if (!m)
        throw new Error(
          `threshold on '${metric}': no such metric (sub-metrics like name{tag:value} are not implemented; see load/k6/README.md)`,
        );
      return exprs.map((expr) => {
        const { agg, op, value } = parseThreshold(expr);
        if (!thresholdAggregateOk(m.type, agg))
          throw new Error(
            `threshold '${expr}' on '${metric}': k6 does not support '${agg}' on a ${m.type} metric (it supports ${THRESHOLD_AGGREGATES[m.type]})`,
          );
        const actual = aggregate(m, agg, durationMs);
        const ok = (m.type === 'rate' && m.n === 0) || OPERATORS[op]!(actual, value);
        return { metric, expr, ok, actual };
      });
    });
  }

  /** k6's handleSummary data object, for the metrics that have samples or thresholds. */
  summary(opts: {
    durationMs: number;
    trendStats?: string[];
    outcomes: ThresholdOutcome[];
  }): Record<string, unknown> {
    const trendStats = opts.trendStats ?? DEFAULT_TREND_STATS;
    const metrics: Record<string, unknown> = {};
    for (const [name, m] of this.metrics) {
      const own = opts.outcomes.filter((o) => o.metric === name);
      if (m.n === 0 && own.length === 0) continue;
      const sorted = m.type === 'trend' ? m.values!.slice(0, m.n).sort() : undefined;
      const keys =
        m.type === 'counter'
          ? ['count', 'rate']
          : m.type === 'rate'
            ? ['rate', 'passes', 'fails']
            : m.type === 'gauge'
              ? ['value', 'min', 'max']
              : trendStats;
      const values = Object.fromEntries(keys.map((k) => [k, aggregate(m, k, opts.durationMs, sorted)]));
      metrics[name] = {
        type: m.type,
        contains: m.isTime ? 'time' : 'default',
        values,
        ...(own.length ? { thresholds: Object.fromEntries(own.map((o) => [o.expr, { ok: o.ok }])) } : {}),
      };
    }
    return {
      // Not part of k6's summary data: says which program made these figures.
      certflowHarness: HARNESS_VERSION,
      root_group: {
        name: '',
        path: '',
        id: 'd41d8cd98f00b204e9800998ecf8427e',
        groups: [],
        checks: [...this.checks].map(([name, c]) => ({ name, path: `::${name}`, id: name, ...c })),
      },
      options: { summaryTrendStats: trendStats, summaryTimeUnit: '', noColor: false },
      state: { isStdOutTTY: false, isStdErrTTY: false, testRunDurationMs: opts.durationMs },
      metrics,
    };
  }
}
