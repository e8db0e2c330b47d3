/**
 * The worker's Prometheus metrics (prom-client, its own Registry), served by `serve` and
 * `run --metrics-port` at `GET /metrics`. Names, labels and meanings are a contract: the load
 * suites and dashboards read them.
 *
 * - `partner_token_cache_hits_total`, `partner_token_cache_misses_total`: certflow's TokenCache;
 * - `partner_token_requests_total{outcome}`: token requests that went to the authority
 *   (`success`, `error` for an HTTP error answer, `network` when no answer came back);
 * - `partner_token_refreshes_total`, `partner_token_refresh_failures_total`: background refreshes;
 * - `partner_shared_cache_hits_total`, `partner_shared_cache_fallbacks_total`: the shared tier
 *   (a token another replica fetched; the store down or the lock holder silent, so fetched here);
 * - `partner_calls_total{outcome,status}`: API calls (`outcome` `ok` for 2xx, `upstream` for
 *   another HTTP status, `timeout`, `failed` when no answer or no token);
 * - `partner_call_duration_seconds{outcome}`: call latency histogram, retries included;
 * - `partner_assertion_signatures_total{key_store}`: client assertions signed with the partner's key
 *   (`file` or `pkcs11`), counted by distinct `jti` among those sent (MSAL reuses one assertion
 *   of a key file for up to ten minutes): with the token cache, this stays near zero per call;
 * - `partner_certificate_days_until_expiry`, `partner_certificate_expiring` (1 when fewer than
 *   PARTNER_CERT_EXPIRY_WARNING_DAYS are left), `partner_certificate_switches_total`,
 *   `partner_certificate_reload_failures_total`.
 */
import {
  childCache,
  Counter,
  Gauge,
  Histogram,
  LATENCY_BUCKETS_SECONDS,
  mirroredCounter,
  Registry,
} from '@certflow/observability';
import type { TokenRequestOutcome } from '@certflow/partner-client';

export type CallOutcome = 'ok' | 'upstream' | 'timeout' | 'failed';

/** Numbers owned by other objects (the token cache, the shared cache), read when rendering. */
export interface MetricSources {
  tokenCache(): { hits: number; misses: number; refreshes: number; refreshFailures: number };
  sharedCache(): { sharedHits: number; fallbacks: number } | undefined;
  certificate(): { daysUntilExpiry: number; expiring: boolean };
}

export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly tokenRequests: Counter<'outcome'>;
  private readonly calls: (
    key: string,
    labels: () => { outcome: string; status: string },
  ) => {
    inc(value?: number): void;
  };
  private readonly latency = new Map<CallOutcome, { observe(seconds: number): void }>();
  private readonly switches: Counter;
  private readonly signatures: Counter<'key_store'>;
  private lastJti: unknown;
  private readonly reloadFailures: Counter;

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    const mirrored = (name: string, help: string, read: () => number) =>
      mirroredCounter(this.registry, name, help, read);
    mirrored(
      'partner_token_cache_hits_total',
      "Tokens served from certflow's token cache.",
      () => sources.tokenCache().hits,
    );
    mirrored(
      'partner_token_cache_misses_total',
      'Token lookups that had to wait for a fetch.',
      () => sources.tokenCache().misses,
    );
    this.tokenRequests = new Counter({
      name: 'partner_token_requests_total',
      help: 'Token requests sent to the authority, by outcome.',
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of ['success', 'error', 'network'] as const) this.tokenRequests.inc({ outcome }, 0);
    mirrored(
      'partner_token_refreshes_total',
      'Background refreshes ahead of expiry.',
      () => sources.tokenCache().refreshes,
    );
    mirrored(
      'partner_token_refresh_failures_total',
      'Background refreshes that failed (retried with backoff).',
      () => sources.tokenCache().refreshFailures,
    );
    mirrored(
      'partner_shared_cache_hits_total',
      'Tokens taken from the shared Redis cache (fetched by another replica).',
      () => sources.sharedCache()?.sharedHits ?? 0,
    );
    mirrored(
      'partner_shared_cache_fallbacks_total',
      'Fetches made by this replica because Redis or the lock holder did not answer.',
      () => sources.sharedCache()?.fallbacks ?? 0,
    );
    this.calls = childCache(
      new Counter({
        name: 'partner_calls_total',
        help: 'API calls by outcome (ok, upstream, timeout, failed) and HTTP status.',
        labelNames: ['outcome', 'status'],
        registers,
      }),
    );
    const duration = new Histogram({
      name: 'partner_call_duration_seconds',
      help: 'API call latency, retries and token waits included.',
      labelNames: ['outcome'],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    for (const outcome of ['ok', 'upstream', 'timeout', 'failed'] as const)
      this.latency.set(outcome, duration.labels(outcome));
    new Gauge({
      name: 'partner_certificate_days_until_expiry',
      help: 'Whole days until the current certificate expires.',
      registers,
      collect() {
        this.set(sources.certificate().daysUntilExpiry);
      },
    });
    new Gauge({
      name: 'partner_certificate_expiring',
      help: '1 when the certificate expires within PARTNER_CERT_EXPIRY_WARNING_DAYS.',
      registers,
      collect() {
        this.set(sources.certificate().expiring ? 1 : 0);
      },
    });
    this.switches = new Counter({
      name: 'partner_certificate_switches_total',
      help: 'Switches to a new certificate without a restart.',
      registers,
    });
    this.signatures = new Counter({
      name: 'partner_assertion_signatures_total',
      help: "Client assertions signed with the partner's key (distinct jti sent), by key store (file, pkcs11).",
      labelNames: ['key_store'],
      registers,
    });
    for (const keyStore of ['file', 'pkcs11'] as const) this.signatures.inc({ key_store: keyStore }, 0);
    this.reloadFailures = new Counter({
      name: 'partner_certificate_reload_failures_total',
      help: 'Changed certificate files that did not load (current certificate kept).',
      registers,
    });
  }

  tokenRequest(outcome: TokenRequestOutcome): void {
    this.tokenRequests.inc({ outcome });
  }

  call(outcome: CallOutcome, status: number | undefined, seconds: number): void {
    const code = status === undefined ? '' : String(status);
    this.calls(`${outcome}|${code}`, () => ({ outcome, status: code })).inc();
    this.latency.get(outcome)!.observe(seconds);
  }

  /** A client assertion reached the authority; a new `jti` is a new signature. */
  assertionSent(jti: unknown, keyStore: 'file' | 'pkcs11'): void {
    if (jti === this.lastJti) return;
    this.lastJti = jti;
    this.signatures.inc({ key_store: keyStore });
  }

  certificateSwitched(): void {
    this.switches.inc();
  }

  certificateReloadFailed(): void {
    this.reloadFailures.inc();
  }

  /** The text exposition format (`PROMETHEUS_CONTENT_TYPE`). */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}
