/**
 * `/metrics` in Prometheus text format (0.0.4). Labels come only from bounded, gateway-chosen
 * values (route = the operation's URL template or `api`, status code, policy outcome, error
 * source and reason); never a path, header, query string, token or key.
 *
 *   local_gateway_requests_total{route,method,status,outcome}
 *   local_gateway_policy_errors_total{source,reason}
 *   local_gateway_upstream_duration_seconds{route}   histogram: request sent → response head
 *   local_gateway_rate_limit_store_failures_total     Redis failures let through (fail-open)
 */
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

const escape = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const labels = (pairs: Record<string, string>) =>
  `{${Object.entries(pairs)
    .map(([k, v]) => `${k}="${escape(v)}"`)
    .join(',')}}`;

export class GatewayMetrics {
  /** One counter per label set (methods outside METHODS count as OTHER). */
  private readonly requests = new Map<string, { labels: string; value: number }>();
  private readonly errors = new Map<string, number>();
  private readonly upstream = new Map<string, Histogram>();
  private storeFailures = 0;

  request(route: string, method: string, status: number, outcome: string): void {
    const m = METHODS.has(method) ? method : 'OTHER';
    // The escaped label text is built once per label set, not per request.
    const id = `${route}\u0000${m}\u0000${status}\u0000${outcome}`;
    const counter = this.requests.get(id);
    if (counter) counter.value++;
    else
      this.requests.set(id, {
        labels: labels({ route, method: m, status: String(status), outcome }),
        value: 1,
      });
  }

  policyError(source: string, reason: string): void {
    const key = labels({ source, reason });
    this.errors.set(key, (this.errors.get(key) ?? 0) + 1);
  }

  upstreamDuration(route: string, seconds: number): void {
    let h = this.upstream.get(route);
    if (!h) {
      h = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.upstream.set(route, h);
    }
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) h.counts[i]!++;
    h.sum += seconds;
    h.count++;
  }

  rateLimitStoreFailure(): void {
    this.storeFailures++;
  }

  render(): string {
    const out: string[] = [];
    out.push(
      '# HELP local_gateway_requests_total Requests handled, by route, method, status and policy outcome.',
      '# TYPE local_gateway_requests_total counter',
    );
    for (const { labels: l, value } of this.requests.values())
      out.push(`local_gateway_requests_total${l} ${value}`);
    out.push(
      '# HELP local_gateway_policy_errors_total Errors raised by policies and gateway steps (APIM LastError source and reason).',
      '# TYPE local_gateway_policy_errors_total counter',
    );
    for (const [k, v] of this.errors) out.push(`local_gateway_policy_errors_total${k} ${v}`);
    out.push(
      '# HELP local_gateway_upstream_duration_seconds Time from forwarding a request to the backend until its response head.',
      '# TYPE local_gateway_upstream_duration_seconds histogram',
    );
    for (const [route, h] of this.upstream) {
      BUCKETS.forEach((b, i) =>
        out.push(
          `local_gateway_upstream_duration_seconds_bucket${labels({ route, le: String(b) })} ${h.counts[i]}`,
        ),
      );
      out.push(`local_gateway_upstream_duration_seconds_bucket${labels({ route, le: '+Inf' })} ${h.count}`);
      out.push(`local_gateway_upstream_duration_seconds_sum${labels({ route })} ${h.sum}`);
      out.push(`local_gateway_upstream_duration_seconds_count${labels({ route })} ${h.count}`);
    }
    out.push(
      '# HELP local_gateway_rate_limit_store_failures_total Rate-limit counter store failures (requests let through, fail-open).',
      '# TYPE local_gateway_rate_limit_store_failures_total counter',
    );
    out.push(`local_gateway_rate_limit_store_failures_total ${this.storeFailures}`);
    return `${out.join('\n')}\n`;
  }
}
