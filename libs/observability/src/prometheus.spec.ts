import { describe, expect, it } from 'vitest';
import { Counter, PROMETHEUS_CONTENT_TYPE, Registry, childCache } from './prometheus';

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
