/**
 * `/metrics` through prom-client, in a registry of this gateway's own (two gateways in one
 * process count separately). Labels come only from bounded, gateway-chosen values (route = the
 * operation's URL template or `api`, status code, policy outcome, error source and reason);
 * never a path, header, query string, token or key.
 *
 *   local_gateway_requests_total{route,method,status,outcome}
 *   local_gateway_policy_errors_total{source,reason}
 *   local_gateway_upstream_duration_seconds{route}   histogram: request sent → response head
 *   local_gateway_rate_limit_store_failures_total     Redis failures let through (fail-open)
 *
 * Every request counts: the labelled children are looked up by a key of a few string joins
 * (`childCache`), not by prom-client's `labels()`, which hashes the label set on each call.
 */
import { Counter, childCache, Histogram, LATENCY_BUCKETS_SECONDS, Registry } from '@certflow/observability';

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export class GatewayMetrics {
  private readonly registry = new Registry();
  private readonly requests = childCache(
    new Counter({
      name: 'local_gateway_requests_total',
      help: 'Requests handled, by route, method, status and policy outcome.',
      labelNames: ['route', 'method', 'status', 'outcome'] as const,
      registers: [this.registry],
    }),
  );
  private readonly errors = childCache(
    new Counter({
      name: 'local_gateway_policy_errors_total',
      help: 'Errors raised by policies and gateway steps (APIM LastError source and reason).',
      labelNames: ['source', 'reason'] as const,
      registers: [this.registry],
    }),
  );
  private readonly upstream = childCache(
    new Histogram({
      name: 'local_gateway_upstream_duration_seconds',
      help: 'Time from forwarding a request to the backend until its response head.',
      labelNames: ['route'] as const,
      buckets: LATENCY_BUCKETS_SECONDS,
      registers: [this.registry],
    }),
  );
  private readonly storeFailures = new Counter({
    name: 'local_gateway_rate_limit_store_failures_total',
    help: 'Rate-limit counter store failures (requests let through, fail-open).',
    registers: [this.registry],
  });

  /** Methods outside the usual ones count as OTHER (the label set stays bounded). */
  request(route: string, method: string, status: number, outcome: string): void {
    const m = METHODS.has(method) ? method : 'OTHER';
    this.requests(`${route}\u0000${m}\u0000${status}\u0000${outcome}`, () => ({
      route,
      method: m,
      status,
      outcome,
    })).inc();
  }

  policyError(source: string, reason: string): void {
    this.errors(`${source}\u0000${reason}`, () => ({ source, reason })).inc();
  }

  upstreamDuration(route: string, seconds: number): void {
    this.upstream(route, () => ({ route })).observe(seconds);
  }

  rateLimitStoreFailure(): void {
    this.storeFailures.inc();
  }

  /** The text exposition format (0.0.4), served with `PROMETHEUS_CONTENT_TYPE`. */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}
