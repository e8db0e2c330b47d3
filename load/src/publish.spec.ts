import { describe, expect, it } from 'vitest';
import type { LoadResult } from './http-load';
import { k6Table, keyStoreLines } from './publish';

const result = (requests: number): LoadResult => ({
  url: 'http://127.0.0.1:1/call/orders',
  connections: 8,
  durationMs: 3_000,
  requests,
  requestsPerSecond: requests / 3,
  statuses: { '200': requests },
  errors: {},
  latencyMs: { p50: 1, p90: 2, p99: 3, max: 4, mean: 1.5 },
});

const summary = (suite: string, figures: Record<string, number>, requests = 1_000) => ({
  suite,
  description: suite,
  measurements: [{ name: suite, result: result(requests) }],
  figures,
  broken: [],
  profile: 'full',
  at: '2026-11-30T01:00:00.000Z',
});

const CACHED = {
  'signatures per 1000 calls, key file': 0.0056,
  'signatures per 1000 calls, key in SoftHSM2': 0.0061,
  'signatures per 1000 calls, two replicas (key file)': 0.0052,
};

describe('keyStoreLines', () => {
  it('puts the key file and the token side by side, and the rotation in the token', () => {
    const text = keyStoreLines([
      summary('cached-calls', CACHED),
      summary('rotation-under-load-pkcs11', { 'failed calls': 0, 'rotation took (ms)': 2_150 }, 114_338),
    ]);
    expect(text).toContain('key file **0.0056**, key in SoftHSM2 **0.0061**');
    expect(text).toContain('two replicas sharing Redis 0.0052:');
    expect(text).toContain('114,338 calls, **0 failed**');
    expect(text).toContain('took 2,150 ms');
  });

  it('refuses a result from before the figures existed', () => {
    expect(() =>
      keyStoreLines([
        summary('cached-calls', { 'token requests, one worker': 1 }),
        summary('rotation-under-load-pkcs11', { 'failed calls': 0, 'rotation took (ms)': 1 }),
      ]),
    ).toThrow(
      /cached-calls\.full\.json has no figure "signatures per 1000 calls, key file": run npm run load again/,
    );
    expect(() => keyStoreLines([summary('cached-calls', CACHED)])).toThrow(
      /rotation-under-load-pkcs11\.full\.json has no figure "failed calls"/,
    );
  });
});

describe('k6Table', () => {
  it('names the engine of every row and never calls the harness k6', () => {
    const run = (engine: 'k6' | 'harness', engineVersion: string) => ({
      script: 'cached-calls.js',
      engine,
      engineVersion,
      passed: true,
      summaryFile: 'load/results/k6-cached-calls.full.json',
      figures: { 'req/s': 1234.5, 'p50 (ms)': 1.25, 'p99 (ms)': 9, requests: 37_035 },
      broken: [],
    });
    const text = k6Table([run('k6', 'k6 v1.4.0'), run('harness', 'certflow k6 harness (not k6) 0.1')]);
    expect(text).toContain('| cached-calls.js | k6 v1.4.0 | 1,234.5 | 1.25 | 9 | 37,035 |');
    expect(text).toContain("**certflow's k6 harness — not k6** (certflow k6 harness (not k6) 0.1)");
  });
});
