/**
 * A long-running partner worker (what `serve` and `run` share): the token pipeline of
 * @certflow/partner-client (credential, MSAL, TokenCache and the shared tier when configured),
 * the resilient ApiClient, metrics, and a watcher that switches to a certificate rotated by
 * another process without a restart.
 *
 * Switching certificates: a new MSAL ConfidentialClientApplication is made for the new credential
 * (MSAL reuses a signed client assertion for about ten minutes per instance, so the old instance
 * would keep presenting the old key). Tokens already cached stay valid and keep being served; the
 * next token request, refresh-ahead or forced, signs with the new key.
 */
import { daysUntilExpiry } from '@certflow/certs';
import { systemClock, type Clock } from '@certflow/clock';
import { startTrace, type TraceContext } from '@certflow/observability';
import {
  ApiClient,
  createTokenPipeline,
  CredentialWatcher,
  storeReadOptions,
  type AcquiredToken,
  type ApiCallError,
  type ApiResponse,
  type CertificateStore,
  type DecodedAssertion,
  type PartnerConfig,
  type PartnerCredential,
  type SharedTokenCache,
  type TokenCache,
  type TokenPipeline,
  type TokenProvider,
} from '@certflow/partner-client';
import { WorkerMetrics, type CallOutcome } from './metrics';

export interface PartnerWorkerOptions {
  config: PartnerConfig;
  /** One human-readable line (the CLI writes it to stderr). Never given a token. */
  log(message: string): void;
  /** Each client assertion that reached the authority (header and claims only). */
  onAssertion?(assertion: DecodedAssertion): void;
  /** Each token handed to a call (never print `accessToken`). */
  onToken?(token: AcquiredToken): void;
  /** A new certificate is in use. */
  onCertificateSwitched?(credential: PartnerCredential): void;
  /** Watch PARTNER_CERT_DIR for a certificate rotated by another process (default true). */
  watchCertificateDirectory?: boolean;
  watchPollMs?: number;
  /**
   * The time certificate validity and expiry warnings, assertions and token refresh are judged
   * by (default: the real time; the CLI passes the process's clock from CERTFLOW_CLOCK_*).
   */
  clock?: Clock;
}

export interface CertificateStatus {
  thumbprintSha256: string;
  subject: string;
  notAfter: string;
  daysUntilExpiry: number;
  /** Fewer than PARTNER_CERT_EXPIRY_WARNING_DAYS days left. */
  expiring: boolean;
}

export class PartnerWorker {
  readonly metrics: WorkerMetrics;
  readonly api: ApiClient;
  private readonly pipeline: TokenPipeline;
  private readonly watcher: CredentialWatcher | undefined;
  private readonly clock: Clock;

  /** Loads and validates the credential: an expired or damaged one throws before anything starts. */
  constructor(private readonly opts: PartnerWorkerOptions) {
    const { config } = opts;
    this.clock = opts.clock ?? systemClock;
    this.metrics = new WorkerMetrics({
      tokenCache: () => this.cache.stats,
      sharedCache: () => this.shared?.stats,
      certificate: () => this.certificateStatus(),
    });
    this.pipeline = createTokenPipeline({
      config,
      log: opts.log,
      clock: this.clock,
      hooks: {
        onTokenRequest: (outcome) => this.metrics.tokenRequest(outcome),
        onAssertion: (assertion) => {
          this.metrics.assertionSent(assertion.claims['jti'], this.credential.signer.kind);
          opts.onAssertion?.(assertion);
        },
        ...(opts.onToken ? { onToken: opts.onToken } : {}),
      },
    });
    this.api = new ApiClient({
      baseUrl: config.apiBaseUrl,
      tokens: this.tokens,
      ...(config.caPem ? { ca: config.caPem } : {}),
    });
    if (opts.watchCertificateDirectory ?? true) {
      this.watcher = new CredentialWatcher({
        store: this.store,
        read: storeReadOptions(config),
        current: () => this.credential,
        clock: this.clock,
        onChange: (next) => this.switchCredential(next),
        onIgnored: (reason) => {
          this.metrics.certificateReloadFailed();
          opts.log(
            `the certificate files changed but do not load; keeping ${this.credential.certificate.thumbprints.sha256Hex}: ${reason}`,
          );
        },
        ...(opts.watchPollMs ? { pollMs: opts.watchPollMs } : {}),
      });
      this.watcher.start();
    }
  }

  get store(): CertificateStore {
    return this.pipeline.certificates;
  }

  get tokens(): TokenProvider {
    return this.pipeline.tokens;
  }

  get cache(): TokenCache {
    return this.pipeline.cache;
  }

  get shared(): SharedTokenCache | undefined {
    return this.pipeline.shared;
  }

  get credential(): PartnerCredential {
    return this.pipeline.credential;
  }

  certificateStatus(): CertificateStatus {
    const cert = this.credential.certificate;
    const days = daysUntilExpiry(cert, this.clock.now());
    return {
      thumbprintSha256: cert.thumbprints.sha256Hex,
      subject: cert.subject,
      notAfter: cert.notAfter.toISOString(),
      daysUntilExpiry: days,
      expiring: days < this.opts.config.expiryWarningDays,
    };
  }

  /** Uses `next` for every token request from now on (no restart; cached tokens stay valid); the worker then owns it. */
  switchCredential(next: PartnerCredential): void {
    const previous = this.credential.certificate.thumbprints.sha256Hex;
    if (!this.pipeline.switchCredential(next)) return;
    this.metrics.certificateSwitched();
    this.opts.log(`switched to the certificate ${next.certificate.thumbprints.sha256Hex} (was ${previous})`);
    this.opts.onCertificateSwitched?.(next);
  }

  /** Looks at the certificate directory now (also done on file events and every few seconds). */
  checkCertificateDirectory(): void {
    this.watcher?.check();
  }

  /**
   * One GET through the resilient client, counted in the metrics, sent with `trace` as its
   * `traceparent` (default: a new trace). Throws when no answer came.
   */
  async call(path: string, trace: TraceContext = startTrace()): Promise<ApiResponse & { seconds: number }> {
    const started = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
    let response: ApiResponse;
    try {
      response = await this.api.get(path, trace);
    } catch (err) {
      const code = (err as ApiCallError).code;
      if (code !== 'ERR_INVALID_PATH') {
        const outcome: CallOutcome = code === 'ERR_DEADLINE' || code === 'ETIMEDOUT' ? 'timeout' : 'failed';
        this.metrics.call(outcome, undefined, seconds());
      }
      throw err;
    }
    const elapsed = seconds();
    const ok = response.status >= 200 && response.status < 300;
    this.metrics.call(ok ? 'ok' : 'upstream', response.status, elapsed);
    return { ...response, seconds: elapsed };
  }

  close(): void {
    this.watcher?.close();
    this.api.close();
    this.pipeline.close();
  }
}
