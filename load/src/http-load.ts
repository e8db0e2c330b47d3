/**
 * A closed-loop HTTP load generator: `connections` clients on keep-alive sockets, each sending
 * its next request when the previous answer arrives, for a bounded time and request count.
 * Unlike most load tools it verifies TLS against the given CA: a load test of an
 * authentication path should not switch certificate checks off.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

export interface LoadOptions {
  url: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  /** Sent with every request (e.g. a form body). */
  body?: string;
  ca?: string | Buffer;
  connections: number;
  durationMs: number;
  /** Hard cap on requests, so a run always ends. */
  maxRequests: number;
  /** Per-request timeout. */
  timeoutMs?: number;
  /** Ends the run early (durationMs stays the upper bound). */
  signal?: AbortSignal;
  /** The status a request should get; any other (and any transport error) is a failure. Default 200. */
  expectedStatus?: number;
}

/**
 * One second of a run, counted from `startedAt`: the requests that ended in it. The last bucket
 * runs to the end of the run: a final part shorter than LAST_BUCKET_MIN_MS joins the second
 * before it (so the last bucket lasts 0.2–1.2 s), keeping its requests, failures and latencies.
 */
export interface TimelinePoint {
  second: number;
  requests: number;
  failures: number;
  p50: number;
  p99: number;
}

export interface LoadResult {
  url: string;
  connections: number;
  durationMs: number;
  requests: number;
  requestsPerSecond: number;
  statuses: Record<string, number>;
  errors: Record<string, number>;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** Epoch ms when the run started. */
  startedAt?: number;
  /** Per second of the run (absent for results made from a k6 summary). */
  timeline?: TimelinePoint[];
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** A run's final partial second shorter than this is counted in the second before it. */
export const LAST_BUCKET_MIN_MS = 200;

const round = (n: number): number => Math.round(n * 1000) / 1000;

/** The requests that ended in one second: latencies of the answered ones, failures of all. */
interface Bucket {
  latencies: number[];
  requests: number;
  failures: number;
}

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const target = new URL(opts.url);
  const isHttps = target.protocol === 'https:';
  const agentOptions = { keepAlive: true, maxSockets: opts.connections };
  const agent = isHttps ? new HttpsAgent({ ...agentOptions, ca: opts.ca }) : new HttpAgent(agentOptions);
  const send = isHttps ? httpsRequest : httpRequest;
  const headers =
    opts.body === undefined
      ? opts.headers
      : { ...opts.headers, 'content-length': String(Buffer.byteLength(opts.body)) };
  const expected = String(opts.expectedStatus ?? 200);
  const buckets: Bucket[] = [];
  const statuses: Record<string, number> = {};
  const errors: Record<string, number> = {};
  const startedAt = Date.now();
  const started = performance.now();
  /** The bucket of the second now is in (created with any seconds skipped before it). */
  const bucket = (now: number): Bucket => {
    const second = Math.floor((now - started) / 1000);
    while (buckets.length <= second) buckets.push({ latencies: [], requests: 0, failures: 0 });
    const b = buckets[second]!;
    b.requests += 1;
    return b;
  };
  const deadline = started + opts.durationMs;
  let issued = 0;

  const once = (): Promise<void> =>
    new Promise((resolve) => {
      const t0 = performance.now();
      const req = send(
        target,
        { method: opts.method ?? 'GET', agent, headers, timeout: opts.timeoutMs ?? 10_000 },
        (res) => {
          res.resume();
          res.on('end', () => {
            const now = performance.now();
            const b = bucket(now);
            b.latencies.push(now - t0);
            const key = String(res.statusCode);
            if (key !== expected) b.failures += 1;
            statuses[key] = (statuses[key] ?? 0) + 1;
            resolve();
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err: NodeJS.ErrnoException) => {
        const key = err.code ?? err.message;
        errors[key] = (errors[key] ?? 0) + 1;
        bucket(performance.now()).failures += 1;
        resolve();
      });
      req.end(opts.body);
    });

  const client = async (): Promise<void> => {
    while (performance.now() < deadline && issued < opts.maxRequests && !opts.signal?.aborted) {
      issued += 1;
      await once();
    }
  };
  await Promise.all(Array.from({ length: opts.connections }, client));
  const elapsed = performance.now() - started;
  agent.destroy();
  const last = buckets.length - 1;
  if (last >= 1 && elapsed - last * 1000 < LAST_BUCKET_MIN_MS) {
    const tail = buckets.pop()!;
    const into = buckets[last - 1]!;
    into.latencies.push(...tail.latencies);
    into.requests += tail.requests;
    into.failures += tail.failures;
  }

  const timeline = buckets.map((b, second) => {
    const inSecond = b.latencies.sort((x, y) => x - y);
    const { requests, failures } = b;
    return {
      second,
      requests,
      failures,
      p50: round(percentile(inSecond, 50)),
      p99: round(percentile(inSecond, 99)),
    };
  });
  const sorted = buckets.flatMap((b) => b.latencies).sort((a, b) => a - b);
  const mean = sorted.reduce((a, b) => a + b, 0) / (sorted.length || 1);
  return {
    url: opts.url,
    connections: opts.connections,
    durationMs: Math.round(elapsed),
    requests: issued,
    requestsPerSecond: Math.round((sorted.length / elapsed) * 1000),
    statuses,
    errors,
    latencyMs: {
      p50: round(percentile(sorted, 50)),
      p90: round(percentile(sorted, 90)),
      p99: round(percentile(sorted, 99)),
      max: round(sorted.at(-1) ?? 0),
      mean: round(mean),
    },
    startedAt,
    timeline,
  };
}
