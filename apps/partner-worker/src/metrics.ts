/**
 * The worker's Prometheus metrics (text format 0.0.4), served by `serve` at `GET /metrics`:
 *
 * - `partner_token_cache_hits_total`, `partner_token_cache_misses_total`: certflow's TokenCache;
 * - `partner_token_requests_total{outcome}`: token requests that went to the authority
 *   (`success`, `error` for an HTTP error answer, `network` when no answer came back);
 * - `partner_token_refreshes_total`, `partner_token_refresh_failures_total`: background refreshes;
 * - `partner_shared_cache_hits_total`, `partner_shared_cache_fallbacks_total`: the Redis tier
 *   (a token another replica fetched; Redis down or the lock holder silent, so fetched here);
 * - `partner_calls_total{outcome,status}`: API calls (`outcome` `ok` for 2xx, `upstream` for
 *   another HTTP status, `timeout`, `failed` when no answer or no token);
 * - `partner_call_duration_seconds{outcome}`: call latency histogram, retries included;
 * - `partner_certificate_days_until_expiry`, `partner_certificate_expiring` (1 when fewer than
 *   PARTNER_CERT_EXPIRY_WARNING_DAYS are left), `partner_certificate_switches_total`,
 *   `partner_certificate_reload_failures_total`.
 */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export const LATENCY_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

export type CallOutcome = 'ok' | 'upstream' | 'timeout' | 'failed';

interface Histogram {
  buckets: number[];
  sum: number;
  count: number;
}

/** Numbers owned by other objects (the token cache, the shared cache), read when rendering. */
export interface MetricSources {
  tokenCache(): { hits: number; misses: number; refreshes: number; refreshFailures: number };
  sharedCache(): { sharedHits: number; fallbacks: number } | undefined;
  certificate(): { daysUntilExpiry: number; expiring: boolean };
}

export class WorkerMetrics {
  private readonly tokenRequests = new Map<string, number>();
  private readonly calls = new Map<string, number>();
  private readonly latency = new Map<CallOutcome, Histogram>();
  private switches = 0;
  private reloadFailures = 0;

  constructor(private readonly sources: MetricSources) {}

  tokenRequest(outcome: 'success' | 'error' | 'network'): void {
    this.tokenRequests.set(outcome, (this.tokenRequests.get(outcome) ?? 0) + 1);
  }

  call(outcome: CallOutcome, status: number | undefined, seconds: number): void {
    const key = labels({ outcome, status: status === undefined ? '' : String(status) });
    this.calls.set(key, (this.calls.get(key) ?? 0) + 1);
    let histogram = this.latency.get(outcome);
    if (!histogram) {
      histogram = { buckets: LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.latency.set(outcome, histogram);
    }
    for (let i = 0; i < LATENCY_BUCKETS.length; i++)
      if (seconds <= LATENCY_BUCKETS[i]!) histogram.buckets[i]! += 1;
    histogram.sum += seconds;
    histogram.count += 1;
  }

  certificateSwitched(): void {
    this.switches += 1;
  }

  certificateReloadFailed(): void {
    this.reloadFailures += 1;
  }

  render(): string {
    const out: string[] = [];
    const metric = (name: string, type: 'counter' | 'gauge' | 'histogram', help: string) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    };
    const cache = this.sources.tokenCache();
    metric('partner_token_cache_hits_total', 'counter', "Tokens served from certflow's token cache.");
    out.push(`partner_token_cache_hits_total ${cache.hits}`);
    metric('partner_token_cache_misses_total', 'counter', 'Token lookups that had to wait for a fetch.');
    out.push(`partner_token_cache_misses_total ${cache.misses}`);
    metric('partner_token_requests_total', 'counter', 'Token requests sent to the authority, by outcome.');
    for (const outcome of ['success', 'error', 'network'] as const)
      out.push(`partner_token_requests_total{outcome="${outcome}"} ${this.tokenRequests.get(outcome) ?? 0}`);
    metric('partner_token_refreshes_total', 'counter', 'Background refreshes ahead of expiry.');
    out.push(`partner_token_refreshes_total ${cache.refreshes}`);
    metric(
      'partner_token_refresh_failures_total',
      'counter',
      'Background refreshes that failed (retried with backoff).',
    );
    out.push(`partner_token_refresh_failures_total ${cache.refreshFailures}`);
    const shared = this.sources.sharedCache();
    metric(
      'partner_shared_cache_hits_total',
      'counter',
      'Tokens taken from the shared Redis cache (fetched by another replica).',
    );
    out.push(`partner_shared_cache_hits_total ${shared?.sharedHits ?? 0}`);
    metric(
      'partner_shared_cache_fallbacks_total',
      'counter',
      'Fetches made by this replica because Redis or the lock holder did not answer.',
    );
    out.push(`partner_shared_cache_fallbacks_total ${shared?.fallbacks ?? 0}`);
    metric(
      'partner_calls_total',
      'counter',
      'API calls by outcome (ok, upstream, timeout, failed) and HTTP status.',
    );
    for (const [key, value] of this.calls) out.push(`partner_calls_total{${key}} ${value}`);
    metric(
      'partner_call_duration_seconds',
      'histogram',
      'API call latency, retries and token waits included.',
    );
    for (const [outcome, h] of this.latency) {
      LATENCY_BUCKETS.forEach((bound, i) =>
        out.push(`partner_call_duration_seconds_bucket{outcome="${outcome}",le="${bound}"} ${h.buckets[i]}`),
      );
      out.push(`partner_call_duration_seconds_bucket{outcome="${outcome}",le="+Inf"} ${h.count}`);
      out.push(`partner_call_duration_seconds_sum{outcome="${outcome}"} ${h.sum}`);
      out.push(`partner_call_duration_seconds_count{outcome="${outcome}"} ${h.count}`);
    }
    const certificate = this.sources.certificate();
    metric(
      'partner_certificate_days_until_expiry',
      'gauge',
      'Whole days until the current certificate expires.',
    );
    out.push(`partner_certificate_days_until_expiry ${certificate.daysUntilExpiry}`);
    metric(
      'partner_certificate_expiring',
      'gauge',
      '1 when the certificate expires within PARTNER_CERT_EXPIRY_WARNING_DAYS.',
    );
    out.push(`partner_certificate_expiring ${certificate.expiring ? 1 : 0}`);
    metric(
      'partner_certificate_switches_total',
      'counter',
      'Switches to a new certificate without a restart.',
    );
    out.push(`partner_certificate_switches_total ${this.switches}`);
    metric(
      'partner_certificate_reload_failures_total',
      'counter',
      'Changed certificate files that did not load (current certificate kept).',
    );
    out.push(`partner_certificate_reload_failures_total ${this.reloadFailures}`);
    return `${out.join('\n')}\n`;
  }
}

function labels(values: Record<string, string>): string {
  return Object.entries(values)
    .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',');
}
