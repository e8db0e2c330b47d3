import { describe, expect, it } from 'vitest';
import { judge, type Summary } from './k6-suites';

const summary = (count: number | undefined, failed: string[] = []): Summary => ({
  metrics: {
    ...(count === undefined ? {} : { http_reqs: { values: { count } } }),
    http_req_failed: {
      values: { rate: 0 },
      thresholds: Object.fromEntries(['rate<=0', ...failed].map((e) => [e, { ok: !failed.includes(e) }])),
    },
  },
});

describe('judging a k6 run', () => {
  it('passes a run with requests, no failed threshold and exit 0', () => {
    expect(judge(summary(10), 'k6-x.smoke.json', { code: 0 })).toEqual([]);
  });

  it('breaks a run that made no request, even when every threshold held', () => {
    for (const s of [summary(0), summary(undefined)])
      expect(judge(s, 'k6-x.smoke.json', { code: 0 })).toEqual([
        'the script made no request (http_reqs count 0): it measured nothing',
      ]);
  });

  it('keeps the test.fail() exit when thresholds failed too, and names each failed threshold', () => {
    expect(judge(summary(10, ['rate<0.5']), 'k6-x.smoke.json', { code: 110 })).toEqual([
      "threshold http_req_failed 'rate<0.5' failed",
      'test.fail() marked the run as failed (exit 110)',
    ]);
    expect(judge(undefined, 'k6-x.smoke.json', { code: 107 })).toEqual([
      'no summary was written to k6-x.smoke.json',
      'script error (exit 107)',
    ]);
  });

  it('breaks a run the user stopped, even when its thresholds held (byThresholds accepts exit 105)', () => {
    expect(
      judge(summary(10), 'k6-x.smoke.json', { code: 105, byThresholds: true, interrupted: true }),
    ).toEqual(['stopped by a signal: the run did not finish']);
    expect(judge(summary(10), 'k6-x.smoke.json', { code: 105, byThresholds: true })).toEqual([]);
  });
});
