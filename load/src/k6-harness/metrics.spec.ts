import { describe, expect, it } from 'vitest';
import { MetricStore, parseThreshold } from './metrics';

describe('harness thresholds', () => {
  it('evaluates the aggregates the scripts use on each metric type', () => {
    const store = new MetricStore();
    for (const ms of [10, 20, 30, 40, 1000]) store.add('http_req_duration', ms);
    for (const failed of [0, 0, 0, 1]) store.add('http_req_failed', failed);
    store.define('outage_confirmed', 'counter', false);
    store.add('outage_confirmed', 0);
    store.check('status is 200', 1, 0);
    store.check('status is 200', 0, 1);
    const outcomes = store.evaluate(
      {
        http_req_duration: ['p(99)<=1000', 'med==30', 'avg<100', 'max<1000'],
        http_req_failed: ['rate<=0'],
        outage_confirmed: ['count>=1'],
        checks: ['rate==0.5'],
      },
      2_000,
    );
    expect(outcomes.map((o) => `${o.metric} ${o.expr} ${o.ok}`)).toEqual([
      'http_req_duration p(99)<=1000 true',
      'http_req_duration med==30 true',
      'http_req_duration avg<100 false',
      'http_req_duration max<1000 false',
      'http_req_failed rate<=0 false',
      'outage_confirmed count>=1 false',
      'checks rate==0.5 true',
    ]);
    const summary = store.summary({ durationMs: 2_000, outcomes, trendStats: ['med', 'p(99)'] }) as {
      metrics: Record<
        string,
        { values: Record<string, number>; thresholds?: Record<string, { ok: boolean }> }
      >;
      root_group: { checks: { name: string; passes: number; fails: number }[] };
    };
    expect(Object.keys(summary.metrics.http_req_duration!.values)).toEqual(['med', 'p(99)']);
    expect(summary.metrics.outage_confirmed!.thresholds).toEqual({ 'count>=1': { ok: false } });
    expect(summary.root_group.checks).toEqual([
      { name: 'status is 200', path: '::status is 200', id: 'status is 200', passes: 1, fails: 1 },
    ]);
  });

  it('evaluates metrics without samples as k6 does: on zeros, except an empty Rate, which passes', () => {
    const store = new MetricStore();
    store.define('confirmed', 'counter', false);
    const outcomes = store.evaluate(
      {
        confirmed: ['count>=1'],
        http_req_duration: ['max>0'],
        http_req_failed: ['rate>0.5'],
        vus: ['value>0'],
      },
      1000,
    );
    expect(outcomes.map((o) => `${o.metric} ${o.ok}`)).toEqual([
      'confirmed false',
      'http_req_duration false',
      'http_req_failed true',
      'vus false',
    ]);
  });

  it('merges the aggregates the VUs send with what the main thread adds', () => {
    const store = new MetricStore();
    store.add('http_req_duration', 5);
    store.merge('http_req_duration', { n: 3, sum: 6, min: 1, max: 3, values: new Float64Array([3, 1, 2]) });
    store.merge('http_req_failed', { n: 4, sum: 1, min: 0, max: 1 });
    const [med, max, avg, rate] = store.evaluate(
      { http_req_duration: ['med==2.5', 'max==5', 'avg==2.75'], http_req_failed: ['rate==0.25'] },
      1000,
    );
    expect([med!.ok, max!.ok, avg!.ok, rate!.ok]).toEqual([true, true, true, true]);
  });

  it('refuses expressions, aggregates and metrics it does not know, naming them', () => {
    expect(() => parseThreshold('p99 < 5')).toThrow(/threshold 'p99 < 5' is not/);
    const store = new MetricStore();
    // k6's supportedAggregationMethods per metric type, and nothing more.
    for (const [metric, expr, supported] of [
      ['checks', 'avg<1', 'rate'],
      ['checks', 'fails==0', 'rate'],
      ['http_req_duration', 'count>=1', 'avg, min, max, med, p(N)'],
      ['vus', 'max<10', 'value'],
      ['http_reqs', 'avg>1', 'count, rate'],
    ] as const)
      expect(() => store.evaluate({ [metric]: [expr] }, 1), `${metric} ${expr}`).toThrow(
        `threshold '${expr}' on '${metric}': k6 does not support '${expr.split(/[<>=]/)[0]}'` +
          ` on a ${metric === 'checks' ? 'rate' : metric === 'vus' ? 'gauge' : metric === 'http_reqs' ? 'counter' : 'trend'} metric (it supports ${supported})`,
      );
    expect(() => store.evaluate({ 'http_req_duration{status:200}': ['p(99)<1'] }, 1)).toThrow(/sub-metrics/);
  });
});
