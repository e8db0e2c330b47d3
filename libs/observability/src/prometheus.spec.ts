import { describe, expect, it } from 'vitest';
import { Counter, Histogram, PROMETHEUS_CONTENT_TYPE, Registry, childCache } from './prometheus';

describe('childCache', () => {
  it('counts per label set in a registry of its own', async () => {
    const registry = new Registry();
    const counter = new Counter({
      name: 'demo_requests_total',
      help: 'Requests.',
      labelNames: ['route', 'status'] as const,
      registers: [registry],
    });
    const child = childCache(counter);
    for (let i = 0; i < 3; i++) child('orders|200', () => ({ route: 'orders', status: 200 })).inc();
    child('orders|"5"', () => ({ route: 'or"ders', status: 500 })).inc();
    const text = await registry.metrics();
    expect(text).toContain('demo_requests_total{route="orders",status="200"} 3');
    expect(text).toContain('demo_requests_total{route="or\\"ders",status="500"} 1');
    expect(PROMETHEUS_CONTENT_TYPE).toBe('text/plain; version=0.0.4; charset=utf-8');
  });
});

describe('childCache with a histogram', () => {
  it('observes into one child per route', async () => {
    const registry = new Registry();
    const histogram = childCache(
      new Histogram({
        name: 'demo_duration_seconds',
        help: 'Durations.',
        labelNames: ['route'] as const,
        buckets: [0.1, 1],
        registers: [registry],
      }),
    );
    histogram('a', () => ({ route: 'a' })).observe(0.05);
    histogram('a', () => ({ route: 'a' })).observe(0.5);
    const text = await registry.metrics();
    expect(text).toContain('demo_duration_seconds_bucket{le="0.1",route="a"} 1');
    expect(text).toContain('demo_duration_seconds_count{route="a"} 2');
  });
});
