/**
 * The harness's metric store: k6's four metric types, the thresholds the scripts use, and the
 * summary object k6 hands to handleSummary (legacy shape: `metrics.<name>.{type, contains,
 * values, thresholds}`, `root_group.checks`, `state.testRunDurationMs`).
 * https://grafana.com/docs/k6/latest/using-k6/metrics/ and
 * https://grafana.com/docs/k6/latest/using-k6/thresholds/
 */
export type MetricType = 'counter' | 'gauge' | 'rate' | 'trend';

interface Metric {
  type: MetricType;
  isTime: boolean;
  values: number[];
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

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  // k6 interpolates between the two nearest ranks.
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo);
}

/** One aggregate of a metric: count, rate, avg, min, max, med, value, p(N). */
function aggregate(m: Metric, name: string, durationMs: number, sorted?: number[]): number {
  const v = m.values;
  switch (m.type) {
    case 'counter': {
      const count = v.reduce((a, b) => a + b, 0);
      if (name === 'count') return count;
      if (name === 'rate') return durationMs > 0 ? count / (durationMs / 1000) : 0;
      break;
    }
    case 'rate': {
      const passes = v.filter((x) => x !== 0).length;
      if (name === 'rate') return v.length ? passes / v.length : 0;
      if (name === 'passes') return passes;
      if (name === 'fails') return v.length - passes;
      break;
    }
    case 'gauge':
      if (name === 'value') return v.length ? v[v.length - 1]! : 0;
      if (name === 'min') return v.length ? Math.min(...v) : 0;
      if (name === 'max') return v.length ? Math.max(...v) : 0;
      break;
    case 'trend': {
      const s = sorted ?? [...v].sort((a, b) => a - b);
      if (name === 'count') return v.length;
      if (name === 'avg') return v.length ? v.reduce((a, b) => a + b, 0) / v.length : 0;
      if (name === 'min') return s[0] ?? 0;
      if (name === 'max') return s[s.length - 1] ?? 0;
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
  return { agg: m[1]!, op: m[2]!, value: Number(m[3]) };
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
    if (!existing) this.metrics.set(name, { type, isTime, values: [] });
  }

  add(name: string, value: number): void {
    const m = this.metrics.get(name);
    if (!m) throw new Error(`metric '${name}' was never declared`);
    m.values.push(value);
  }

  check(name: string, ok: boolean): void {
    const c = this.checks.get(name) ?? { passes: 0, fails: 0 };
    if (ok) c.passes++;
    else c.fails++;
    this.checks.set(name, c);
    this.add('checks', ok ? 1 : 0);
  }

  /**
   * Every threshold, evaluated at the end. A threshold on a metric nobody declared is an error
   * (k6 refuses it too). A declared metric without samples is evaluated on zeros, which is
   * stricter than k6 (it skips such thresholds): a harness should not pass what it did not see.
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
        const actual = aggregate(m, agg, durationMs);
        return { metric, expr, ok: OPERATORS[op]!(actual, value), actual };
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
      if (m.values.length === 0 && own.length === 0) continue;
      const sorted = m.type === 'trend' ? [...m.values].sort((a, b) => a - b) : undefined;
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
