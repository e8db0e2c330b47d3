import type { LoadResult } from './http-load';

export interface Thresholds {
  /** Share of requests that may fail (transport error or unexpected status). */
  maxFailureRate: number;
  maxP99Ms: number;
  expectedStatus: number;
}

/** The thresholds this result breaks, each as a sentence; empty when all hold. */
export function brokenThresholds(result: LoadResult, t: Thresholds): string[] {
  const ok = result.statuses[String(t.expectedStatus)] ?? 0;
  const failed = result.requests - ok;
  const broken: string[] = [];
  if (result.requests === 0) broken.push('no request was made');
  const failureRate = result.requests ? failed / result.requests : 1;
  if (failureRate > t.maxFailureRate) {
    broken.push(
      `failure rate ${(failureRate * 100).toFixed(2)}% > ${(t.maxFailureRate * 100).toFixed(2)}% ` +
        `(statuses ${JSON.stringify(result.statuses)}, errors ${JSON.stringify(result.errors)})`,
    );
  }
  if (result.latencyMs.p99 > t.maxP99Ms) broken.push(`p99 ${result.latencyMs.p99} ms > ${t.maxP99Ms} ms`);
  return broken;
}
