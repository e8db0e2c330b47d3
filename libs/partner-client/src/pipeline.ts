/**
 * The one place the partner's token chain is assembled:
 *
 *   certificate (CertificateStore) → HttpsNetworkClient → MSAL (CertificateTokenClient)
 *     → shared tier (SharedTokenCache over a TokenStore, when configured) → TokenCache
 *
 * Every command that needs a token, the long-running worker and rotation build it here, so that
 * a change of the chain (another store, another hook) is made once.
 */
import { systemClock, type Clock } from '@certflow/clock';
import { CertificateStore, type PartnerCredential } from './certificate-store';
import {
  CertificateTokenClient,
  authorityFor,
  type AcquiredToken,
  type GetTokenOptions,
  type TokenProvider,
} from './certificate-token-client';
import { storeReadOptions, type TokenConfig } from './config';
import { HttpsNetworkClient, type DecodedAssertion } from './https-network-client';
import { SharedTokenCache } from './shared-token-cache';
import { CachedTokenProvider, TokenCache, type TokenCacheOptions, type TokenFetcher } from './token-cache';
import { tokenStoreBackend } from './token-stores';

export type TokenRequestOutcome = 'success' | 'error' | 'network';

/** What the pipeline reports as it works (metrics, `--json` events). None is given a token's value. */
export interface TokenPipelineHooks {
  /** A token request left for the authority: answered 2xx, answered otherwise, or no answer. */
  onTokenRequest?(outcome: TokenRequestOutcome): void;
  /** A client assertion that reached the authority (header and claims, never the signature). */
  onAssertion?(assertion: DecodedAssertion): void;
  /** Each token handed out by `tokens` (never print `accessToken`). */
  onToken?(token: AcquiredToken): void;
}

export interface TokenPipelineOptions {
  config: TokenConfig;
  /**
   * The credential to sign with (it stays the caller's to close); default: loaded from
   * `config.certDir` and validated now, and closed by the pipeline.
   */
  credential?: PartnerCredential;
  /** One human-readable line; never given a token. */
  log?(message: string): void;
  hooks?: TokenPipelineHooks;
  /** TokenCache tuning (tests: shorter backoffs); the fetcher and events are the pipeline's. */
  cache?: Omit<TokenCacheOptions, 'fetcher' | 'events' | 'clock'>;
  /**
   * The time certificate validity, assertions and token expiry are judged by (default: the real
   * time); a process passes `clockFromEnvironment()` of @certflow/clock.
   */
  clock?: Clock;
}

export interface TokenPipeline {
  /** Tokens for `config.scope`, from the cache (single-flight, refresh ahead, shared tier). */
  readonly tokens: TokenProvider;
  readonly cache: TokenCache;
  /** The shared tier, when `config.sharedCache` is set. */
  readonly shared: SharedTokenCache | undefined;
  readonly certificates: CertificateStore;
  /** The credential token requests are signed with now. */
  readonly credential: PartnerCredential;
  readonly authority: string;
  /**
   * Signs every later token request with `next` (cached tokens stay valid). The pipeline then
   * owns `next`: it closes it when it is replaced or the pipeline closes (a key in a token holds
   * a session), and closes it at once when it is the same certificate (returns false).
   */
  switchCredential(next: PartnerCredential): boolean;
  close(): void;
}

export function createTokenPipeline(options: TokenPipelineOptions): TokenPipeline {
  const { config, hooks = {} } = options;
  const log = options.log ?? (() => {});
  const clock = options.clock ?? systemClock;
  const certificates = new CertificateStore(config.certDir);
  let credential = options.credential ?? certificates.load(clock.now(), storeReadOptions(config));
  let owned = options.credential === undefined;
  const network = new HttpsNetworkClient({
    ...(config.caPem ? { ca: config.caPem } : {}),
    observer: {
      onResponse: (exchange, status) => {
        if (exchange.method !== 'POST') return;
        hooks.onTokenRequest?.(
          status === 0 ? 'network' : status >= 200 && status < 300 ? 'success' : 'error',
        );
        // Only assertions that really reached the authority are reported.
        if (status > 0 && exchange.assertion) hooks.onAssertion?.(exchange.assertion);
      },
    },
  });
  // One MSAL instance per credential: MSAL reuses a signed assertion for about ten minutes per instance.
  const clientFor = (c: PartnerCredential) =>
    new CertificateTokenClient({ ...config, credential: c, networkClient: network, clock });
  let client = clientFor(credential);
  // certflow's cache decides when to ask; MSAL is always asked with skipCache (see token-cache.ts).
  const ownFetch: TokenFetcher = (ctx) => client.fetchToken({ scope: ctx.key.scope, skipCache: true });
  const sharedConfig = config.sharedCache;
  const shared = sharedConfig
    ? new SharedTokenCache({
        store: tokenStoreBackend(sharedConfig.store).open(sharedConfig.settings),
        encryptionKey: sharedConfig.cacheKey,
        fetcher: ownFetch,
        clock,
        log,
      })
    : undefined;
  const cache = new TokenCache({
    ...options.cache,
    clock,
    fetcher: shared ? shared.fetcher : ownFetch,
    events: {
      onRefreshFailed: (_key, err, attempt, retryAt) =>
        log(
          `token refresh failed (attempt ${attempt}): ${(err as Error).message}; the current token is still used, next attempt at ${new Date(retryAt).toISOString()}`,
        ),
    },
  });
  const authority = authorityFor(config.entraInstance, config.tenantId);
  const cached = new CachedTokenProvider(cache, {
    authority,
    clientId: config.clientId,
    scope: config.scope,
  });
  const tokens: TokenProvider = hooks.onToken
    ? {
        getToken: async (o?: GetTokenOptions) => {
          const token = await cached.getToken(o);
          hooks.onToken!(token);
          return token;
        },
      }
    : cached;
  return {
    tokens,
    cache,
    shared,
    certificates,
    authority,
    get credential() {
      return credential;
    },
    switchCredential(next) {
      if (next === credential) return false;
      if (next.certificate.thumbprints.sha256Hex === credential.certificate.thumbprints.sha256Hex) {
        next.close();
        return false;
      }
      client = clientFor(next);
      if (owned) credential.close();
      credential = next;
      owned = true;
      return true;
    },
    close() {
      cache.close();
      shared?.close();
      network.close();
      if (owned) credential.close();
    },
  };
}
