import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '@certflow/testing';
import type { LoadResult } from './http-load';
import { k6Table, keyStoreLines, readK6Runs, type PublishedK6Run } from './publish';

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

describe('publishing k6 runs', () => {
  const record = (over: Partial<PublishedK6Run> = {}): PublishedK6Run => ({
    script: 'cached-calls.js',
    engine: 'k6',
    engineVersion: 'k6 v1.4.0',
    passed: true,
    summaryFile: 'load/results/k6-cached-calls.full.json',
    figures: { 'req/s': 1234.5, 'p50 (ms)': 1.25, 'p99 (ms)': 9, requests: 37_035 },
    broken: [],
    at: '2026-11-30T04:10:00.000Z',
    ...over,
  });

  /** handleSummary's JSON with the figures of record(). */
  const k6Summary = (extra: Record<string, unknown> = {}) => ({
    metrics: {
      http_reqs: { values: { count: 37_035, rate: 1234.5 } },
      http_req_duration: { values: { med: 1.25, 'p(99)': 9 } },
    },
    ...extra,
  });

  /** Results left as the runner leaves them: the summary and its engine record. */
  function results(engineRecord: PublishedK6Run, summary: object | null = k6Summary()) {
    const dir = tempDir('publish-k6-');
    const name = 'k6-cached-calls.full';
    if (summary) writeFileSync(join(dir.path, `${name}.json`), JSON.stringify(summary));
    writeFileSync(join(dir.path, `${name}.engine.json`), JSON.stringify(engineRecord));
    return dir;
  }

  it("publishes k6's runs with k6's version and the run's date", () => {
    const dir = results(record());
    try {
      const runs = readK6Runs(dir.path);
      expect(k6Table(runs)).toContain(
        '| cached-calls.js | k6 v1.4.0 | 2026-11-30 04:10 | 1,234.5 | 1.25 | 9 | 37,035 |',
      );
    } finally {
      dir.remove();
    }
  });

  it("refuses the harness's runs, a record of another summary, and a record without a date", () => {
    for (const [bad, message] of [
      [record({ engine: 'harness', engineVersion: 'certflow k6 harness (not k6) 0.1' }), /not by k6/],
      [record({ summaryFile: 'load/results/k6-cached-calls.smoke.json' }), /records the summary .*smoke/],
      [record({ at: '' }), /no run date/],
    ] as const) {
      const dir = results(bad);
      try {
        expect(() => readK6Runs(dir.path)).toThrow(message);
      } finally {
        dir.remove();
      }
    }
  });

  it("refuses a harness summary under a k6 record, figures that are not the summary's, and a record without its summary", () => {
    for (const [bad, summary, message] of [
      [
        record(),
        k6Summary({ certflowHarness: 'certflow k6 harness (not k6) 0.1' }),
        /harness \(not k6\).*not by k6/,
      ],
      [
        record({ figures: { ...record().figures, 'req/s': 999_999 } }),
        k6Summary(),
        /req\/s 999999 is not the summary's 1234.5/,
      ],
      [record(), null, /has no summary next to it/],
    ] as const) {
      const dir = results(bad, summary);
      try {
        expect(() => readK6Runs(dir.path)).toThrow(message);
      } finally {
        dir.remove();
      }
    }
  });
});
