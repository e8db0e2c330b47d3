/**
 * The API's Prometheus metrics, in a registry of its own (prom-client through
 * @certflow/observability). Labels come from bounded sets: the route template (`/orders/:id`,
 * `unmatched` when no route matched, never the raw path), the method, the status code, and the
 * stable auth failure codes.
 *
 *   api_requests_total{route,method,status}
 *   api_request_duration_seconds{route}                 histogram
 *   api_auth_failures_total{code}
 *   api_verified_token_cache_hits_total, api_verified_token_cache_misses_total
 */
import {
  childCache,
  Counter,
  Histogram,
  LATENCY_BUCKETS_SECONDS,
  mirroredCounter,
  Registry,
} from '@certflow/observability';

/** The cache's own counters (`VerifiedTokenCache` of @certflow/claims), read at scrape time. */
export interface CacheCounters {
  readonly hits: number;
  readonly misses: number;
}

export const UNMATCHED_ROUTE = 'unmatched';

export class ApiMetrics {
  readonly registry = new Registry();
  private readonly requests = childCache(
    new Counter({
      name: 'api_requests_total',
      help: 'Requests answered, by route template, method and status code.',
      labelNames: ['route', 'method', 'status'] as const,
      registers: [this.registry],
    }),
  );
  private readonly duration = childCache(
    new Histogram({
      name: 'api_request_duration_seconds',
      help: 'Time from receiving a request to finishing its response, by route template.',
      labelNames: ['route'] as const,
      buckets: LATENCY_BUCKETS_SECONDS,
      registers: [this.registry],
    }),
  );
  private readonly authFailures = childCache(
    new Counter({
      name: 'api_auth_failures_total',
      help: 'Requests refused by the token checks, by stable error code.',
      labelNames: ['code'] as const,
      registers: [this.registry],
    }),
  );

  constructor(cache: CacheCounters) {
    mirroredCounter(
      this.registry,
      'api_verified_token_cache_hits_total',
      'Tokens found in the verified-token cache (no signature check needed).',
      () => cache.hits,
    );
    mirroredCounter(
      this.registry,
      'api_verified_token_cache_misses_total',
      'Tokens not found in the verified-token cache (verified in full).',
      () => cache.misses,
    );
  }

  observeRequest(route: string, method: string, status: number, seconds: number): void {
    this.requests(`${route}|${method}|${status}`, () => ({ route, method, status })).inc();
    this.duration(route, () => ({ route })).observe(seconds);
  }

  observeAuthFailure(code: string): void {
    this.authFailures(code, () => ({ code })).inc();
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
