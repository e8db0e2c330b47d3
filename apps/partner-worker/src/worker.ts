/**
 * A long-running partner worker (what `serve` and `run` share): the validated credential, one
 * network client, MSAL, certflow's TokenCache (with the Redis tier when configured), the
 * resilient ApiClient, metrics, and a watcher that switches to a certificate rotated by another
 * process without a restart.
 *
 * Switching certificates: a new MSAL ConfidentialClientApplication is made for the new credential
 * (MSAL reuses a signed client assertion for about ten minutes per instance, so the old instance
 * would keep presenting the old key). Tokens already cached stay valid and keep being served; the
 * next token request, refresh-ahead or forced, signs with the new key.
 */
import { daysUntilExpiry } from '@certflow/certs';
import { ApiClient, type ApiCallError, type ApiResponse } from './api-client';
import { CertificateStore, type PartnerCredential } from './certificate-store';
import {
  CertificateTokenClient,
  type AcquiredToken,
  type GetTokenOptions,
  type TokenProvider,
} from './certificate-token-client';
import type { PartnerConfig } from './config';
import { CredentialWatcher } from './credential-watcher';
import { HttpsNetworkClient, type DecodedAssertion } from './https-network-client';
import { WorkerMetrics, type CallOutcome } from './metrics';
import { SharedTokenCache } from './shared-token-cache';
import { CachedTokenProvider, TokenCache, type TokenFetcher } from './token-cache';

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
  now?: () => Date;
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
  readonly store: CertificateStore;
  readonly metrics: WorkerMetrics;
  readonly api: ApiClient;
  readonly tokens: TokenProvider;
  readonly cache: TokenCache;
  readonly shared: SharedTokenCache | undefined;
  private readonly network: HttpsNetworkClient;
  private readonly watcher: CredentialWatcher | undefined;
  private readonly now: () => Date;
  private current: PartnerCredential;
  private client: CertificateTokenClient;

  /** Loads and validates the credential: an expired or damaged one throws before anything starts. */
  constructor(private readonly opts: PartnerWorkerOptions) {
    const { config } = opts;
    this.now = opts.now ?? (() => new Date());
    this.store = new CertificateStore(config.certDir);
    this.current = this.store.load(this.now(), config.keyPassphrase);
    this.metrics = new WorkerMetrics({
      tokenCache: () => this.cache.stats,
      sharedCache: () => this.shared?.stats,
      certificate: () => this.certificateStatus(),
    });
    this.network = new HttpsNetworkClient({
      ...(config.caPem ? { ca: config.caPem } : {}),
      observer: {
        onResponse: (exchange, status) => {
          if (exchange.method !== 'POST') return;
          this.metrics.tokenRequest(
            status === 0 ? 'network' : status >= 200 && status < 300 ? 'success' : 'error',
          );
          if (status > 0 && exchange.assertion) opts.onAssertion?.(exchange.assertion);
        },
      },
    });
    this.client = this.tokenClient(this.current);
    // certflow's cache decides when to ask; MSAL is always asked with skipCache (see token-cache.ts).
    const ownFetch: TokenFetcher = (ctx) => this.client.fetchToken({ scope: ctx.key.scope, skipCache: true });
    this.shared = config.sharedCache
      ? new SharedTokenCache({
          redisUrl: config.sharedCache.redisUrl,
          encryptionKey: config.sharedCache.cacheKey,
          fetcher: ownFetch,
          log: opts.log,
        })
      : undefined;
    this.cache = new TokenCache({
      fetcher: this.shared ? this.shared.fetcher : ownFetch,
      events: {
        onRefreshFailed: (_key, err, attempt, retryAt) =>
          opts.log(
            `token refresh failed (attempt ${attempt}): ${(err as Error).message}; the current token is still used, next attempt at ${new Date(retryAt).toISOString()}`,
          ),
      },
    });
    const cached = new CachedTokenProvider(this.cache, {
      authority: this.client.authority,
      clientId: config.clientId,
      scope: config.scope,
    });
    this.tokens = {
      getToken: async (options?: GetTokenOptions) => {
        const token = await cached.getToken(options);
        opts.onToken?.(token);
        return token;
      },
    };
    this.api = new ApiClient({
      baseUrl: config.apiBaseUrl,
      tokens: this.tokens,
      ...(config.caPem ? { ca: config.caPem } : {}),
    });
    if (opts.watchCertificateDirectory ?? true) {
      this.watcher = new CredentialWatcher({
        store: this.store,
        ...(config.keyPassphrase ? { passphrase: config.keyPassphrase } : {}),
        current: () => this.current,
        onChange: (next) => this.switchCredential(next),
        onIgnored: (reason) => {
          this.metrics.certificateReloadFailed();
          opts.log(
            `the certificate files changed but do not load; keeping ${this.current.certificate.thumbprints.sha256Hex}: ${reason}`,
          );
        },
        ...(opts.watchPollMs ? { pollMs: opts.watchPollMs } : {}),
      });
      this.watcher.start();
    }
  }

  get credential(): PartnerCredential {
    return this.current;
  }

  certificateStatus(): CertificateStatus {
    const cert = this.current.certificate;
    const days = daysUntilExpiry(cert, this.now());
    return {
      thumbprintSha256: cert.thumbprints.sha256Hex,
      subject: cert.subject,
      notAfter: cert.notAfter.toISOString(),
      daysUntilExpiry: days,
      expiring: days < this.opts.config.expiryWarningDays,
    };
  }

  /** Uses `next` for every token request from now on (no restart; cached tokens stay valid). */
  switchCredential(next: PartnerCredential): void {
    if (next.certificate.thumbprints.sha256Hex === this.current.certificate.thumbprints.sha256Hex) return;
    const previous = this.current.certificate.thumbprints.sha256Hex;
    this.client = this.tokenClient(next);
    this.current = next;
    this.metrics.certificateSwitched();
    this.opts.log(`switched to the certificate ${next.certificate.thumbprints.sha256Hex} (was ${previous})`);
    this.opts.onCertificateSwitched?.(next);
  }

  /** Looks at the certificate directory now (also done on file events and every few seconds). */
  checkCertificateDirectory(): void {
    this.watcher?.check();
  }

  /** One GET through the resilient client, counted in the metrics. Throws when no answer came. */
  async call(path: string): Promise<ApiResponse & { seconds: number }> {
    const started = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
    let response: ApiResponse;
    try {
      response = await this.api.get(path);
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
    this.cache.close();
    this.shared?.close();
    this.network.close();
  }

  private tokenClient(credential: PartnerCredential): CertificateTokenClient {
    return new CertificateTokenClient({ ...this.opts.config, credential, networkClient: this.network });
  }
}
