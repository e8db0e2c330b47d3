/** Messages between the harness's main thread and its VU workers, and what the harness implements. */
import type { Aggregate } from './metrics';

/** The k6 modules and the named exports the harness implements (load/k6/README.md lists them with their docs). */
export const IMPLEMENTED: Record<string, string[]> = {
  k6: ['check', 'fail', 'group', 'sleep'],
  'k6/http': ['get', 'post', 'request', 'expectedStatuses'],
  'k6/metrics': ['Counter', 'Gauge', 'Rate', 'Trend'],
  'k6/execution': ['test'],
};

export const README_HINT = 'certflow k6 harness (NOT k6): see load/k6/README.md for the k6 API it implements';

export const HARNESS_VERSION = 'certflow k6 harness (not k6) 0.1';

export interface ExpectedStatuses {
  statuses: number[];
  ranges: { min: number; max: number }[];
}

export interface HttpCall {
  method: string;
  url: string;
  body?: string;
  headers: Record<string, string>;
  timeoutMs: number;
  expected: ExpectedStatuses;
}

export interface HttpAnswer {
  status: number;
  body: string;
  headers: Record<string, string>;
  durationMs: number;
  error: string;
  errorCode: number;
}

/** Worker → main. `http` blocks the worker until the answer is on its reply port. */
export type FromWorker =
  | { t: 'def'; name: string; type: 'counter' | 'gauge' | 'rate' | 'trend'; isTime: boolean }
  | { t: 'samples'; metrics: [string, Aggregate][]; checks: [name: string, passes: number, fails: number][] }
  | { t: 'http'; call: HttpCall }
  | { t: 'fail'; message: string }
  | { t: 'done'; value?: unknown; error?: string };

/** Main → worker, one at a time. */
export type ToWorker =
  | { cmd: 'init' }
  | { cmd: 'setup' }
  | { cmd: 'run'; data: unknown; endAt: number; iterations: number }
  | { cmd: 'teardown'; data: unknown }
  | { cmd: 'summary'; data: unknown };

/** k6 duration strings ('3s', '1m30s', '500ms', '2h') or milliseconds → milliseconds. */
export function durationMs(value: unknown, what: string): number {
  if (typeof value === 'number' && value >= 0) return value;
  if (typeof value === 'string') {
    const parts = [...value.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
    if (parts.length && parts.map((p) => p[0]).join('') === value) {
      const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
      return parts.reduce((n, p) => n + Number(p[1]) * unit[p[2] as keyof typeof unit], 0);
    }
  }
  throw new Error(`${what} '${String(value)}' is not a duration like '3s', '1m30s' or '500ms'`);
}
