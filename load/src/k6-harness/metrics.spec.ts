import { describe, expect, it } from 'vitest';
import { MetricStore, parseThreshold } from './metrics';

describe('harness thresholds', () => {
  it('evaluates the aggregates the scripts use on each metric type', () => {
    const store = new MetricStore();
    for (const ms of [10, 20, 30, 40, 1000]) store.add('http_req_duration', ms);
    for (const failed of [0, 0, 0, 1]) store.add('http_req_failed', failed);
    store.define('outage_confirmed', 'counter', false);
    store.add('outage_confirmed', 0);
    store.check('status is 200', true);
    store.check('status is 200', false);
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

  it('refuses expressions, aggregates and metrics it does not know, naming them', () => {
    expect(() => parseThreshold('p99 < 5')).toThrow(/threshold 'p99 < 5' is not/);
    const store = new MetricStore();
    expect(() => store.evaluate({ checks: ['avg<1'] }, 1)).toThrow(
      /aggregate 'avg' does not exist for the rate metric/,
    );
    expect(() => store.evaluate({ 'http_req_duration{status:200}': ['p(99)<1'] }, 1)).toThrow(/sub-metrics/);
  });
});
