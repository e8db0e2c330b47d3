/**
 * What the validator trusts, per configured tenant, learnt by OpenID discovery: the issuer of
 * each accepted token version (read from the v2 and, when v1 tokens are accepted, the v1
 * metadata document) and the signing keys at the v2 document's `jwks_uri` (Entra signs v1 and
 * v2 tokens with the same keys), one {@link SigningKeyStore} per tenant.
 *
 * Discovery is tried once while the application starts, and its failure does not stop it: until every tenant's metadata
 * has been read, protected requests are refused (401, fail closed) and {@link readiness} names
 * the URL that failed; a failed attempt is retried with exponential backoff up to a cap. A 400
 * or 404 from the metadata URL (a tenant that does not exist there) is logged as a
 * configuration error. Keys are fetched on the first token to verify or readiness probe.
 */
import type { KeyObject } from 'node:crypto';
import { Agent } from 'node:https';
import { rootCertificates } from 'node:tls';
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { JwksClient } from 'jwks-rsa';
import { VerifiedTokenCache, type AccessTokenVersion } from '@certflow/claims';
import { AuthFailure, UnknownSigningKeyError } from './auth-failure';
import { openIdMetadataUrl, type ResolvedEntraAuthOptions } from './entra-auth-options';
import { ENTRA_AUTH_OPTIONS } from './entra-auth.tokens';
import { fetchOpenIdMetadata, OpenIdMetadataError } from './openid-metadata';
import { SigningKeyStore } from './signing-key-store';
import type { VerifiedPrincipal } from './verified-principal';

/** How long start-up waits for the first discovery round before it goes on in the background. */
export const STARTUP_DISCOVERY_WAIT_MS = 5_000;

interface DiscoveredTenant {
  issuers: Map<AccessTokenVersion, string>;
  jwksUri: string;
  keys: SigningKeyStore;
}

export type AuthorityReadiness =
  | { ready: true }
  | {
      ready: false;
      /** `metadata`: discovery has not succeeded; `signingKeys`: the JWKS cannot be read. */
      missing: 'metadata' | 'signingKeys';
      /** The URL that failed last (metadata or JWKS). */
      url: string;
      reason: string;
    };

@Injectable()
export class EntraAuthority implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(EntraAuthority.name);
  private readonly tenants = new Map<string, DiscoveredTenant>();
  private readonly agent: Agent | undefined;
  private failure: { url: string; reason: string } | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Every issuer of every tenant: for an early refusal of a foreign issuer. */
  private issuers = new Set<string>();

  constructor(
    @Inject(ENTRA_AUTH_OPTIONS) private readonly options: ResolvedEntraAuthOptions,
    @Inject(VerifiedTokenCache) private readonly cache: VerifiedTokenCache<VerifiedPrincipal>,
  ) {
    // The extra CA is added to the system roots, so the real Entra ID stays trusted too.
    this.agent = options.ca
      ? new Agent({ ca: [...rootCertificates, options.ca], keepAlive: true })
      : undefined;
    const first = options.tenantIds[0]!;
    this.failure = { url: openIdMetadataUrl(options.instance, first, '2.0'), reason: 'not read yet' };
  }

  /**
   * The first attempt is awaited for at most {@link STARTUP_DISCOVERY_WAIT_MS}, so that the first
   * request finds the metadata when the authority answers, and a silent authority does not hold
   * the application's start-up; it goes on in the background, and so do the retries.
   */
  async onApplicationBootstrap(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((done) => {
      timer = setTimeout(done, STARTUP_DISCOVERY_WAIT_MS);
      timer.unref();
    });
    await Promise.race([this.discover(this.options.discoveryRetry.initialDelayMs), waited]);
    clearTimeout(timer);
  }

  onModuleDestroy(): void {
    this.stop();
  }

  /** Whether every tenant's metadata has been read. */
  get discovered(): boolean {
    return this.tenants.size === this.options.tenantIds.length;
  }

  isDiscovered(tenantId: string): boolean {
    return this.tenants.has(tenantId);
  }

  /** The issuer a tenant's tokens of `version` carry, once discovered. */
  issuerOf(tenantId: string, version: AccessTokenVersion): string | undefined {
    return this.tenants.get(tenantId)?.issuers.get(version);
  }

  isAcceptedIssuer(issuer: unknown): boolean {
    return typeof issuer === 'string' && this.issuers.has(issuer);
  }

  /** The public key of `kid` in the tenant's JWKS; 401 while discovery has not succeeded. */
  keyFor(tenantId: string, kid: string): Promise<KeyObject> {
    const tenant = this.tenants.get(tenantId);
    if (!tenant) {
      if (!this.options.tenantIds.includes(tenantId))
        return Promise.reject(new UnknownSigningKeyError('tenant not configured'));
      return Promise.reject(AuthFailure.issuerMetadataUnavailable());
    }
    return tenant.keys.keyFor(kid);
  }

  /** Ready when every tenant is discovered and has its keys (fetched now if they are not yet). */
  async readiness(): Promise<AuthorityReadiness> {
    if (!this.discovered) {
      const { url, reason } = this.failure ?? { url: '', reason: 'discovery in progress' };
      return { ready: false, missing: 'metadata', url, reason };
    }
    for (const tenant of this.tenants.values()) {
      if (tenant.keys.loaded) continue;
      try {
        await tenant.keys.refresh();
      } catch (err) {
        return { ready: false, missing: 'signingKeys', url: tenant.jwksUri, reason: (err as Error).message };
      }
    }
    return { ready: true };
  }

  /** One round over the tenants not yet discovered (all at once); schedules the next round on failure. */
  private async discover(nextDelayMs: number): Promise<void> {
    if (this.stopped) return;
    const pending = this.options.tenantIds.filter((tenantId) => !this.tenants.has(tenantId));
    const results = await Promise.allSettled(pending.map((tenantId) => this.discoverTenant(tenantId)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      ?.reason as unknown;
    if (this.stopped) return;
    if (results.every((r) => r.status === 'fulfilled')) {
      this.failure = undefined;
      return;
    }
    this.reportFailure(failed, nextDelayMs);
    this.retryTimer = setTimeout(
      () => void this.discover(Math.min(nextDelayMs * 2, this.options.discoveryRetry.maxDelayMs)),
      nextDelayMs,
    );
    this.retryTimer.unref();
  }

  private async discoverTenant(tenantId: string): Promise<void> {
    const request = { agent: this.agent, timeoutMs: this.options.requestTimeoutMs };
    const accepted = this.options.acceptedTokenVersions;
    const fetch = (version: AccessTokenVersion) =>
      fetchOpenIdMetadata(openIdMetadataUrl(this.options.instance, tenantId, version), request);
    // The v2 document always (its jwks_uri serves both versions), the v1 one for v1 issuers.
    const [v2, v1] = await Promise.all([fetch('2.0'), accepted.includes('1.0') ? fetch('1.0') : undefined]);
    const jwksUri = v2.jwksUri;
    const issuers = new Map<AccessTokenVersion, string>();
    if (accepted.includes('2.0')) issuers.set('2.0', v2.issuer);
    if (v1) issuers.set('1.0', v1.issuer);
    const client = new JwksClient({
      jwksUri,
      cache: false,
      timeout: this.options.requestTimeoutMs,
      ...(this.agent ? { requestAgent: this.agent } : {}),
    });
    const keys = new SigningKeyStore(client, {
      onKeysRemoved: (kids) => {
        const removed = new Set(kids);
        this.cache.forget((entry) => entry.value.tenantId === tenantId && removed.has(entry.value.kid));
        this.logger.log({ event: 'signing_keys_removed', tenantId, kids });
      },
      onRefreshFailed: (error) =>
        this.logger.warn({
          event: 'signing_keys_refresh_failed',
          tenantId,
          url: jwksUri,
          cause: error.message,
        }),
    });
    this.tenants.set(tenantId, { issuers, jwksUri, keys });
    this.issuers = new Set([...this.tenants.values()].flatMap((t) => [...t.issuers.values()]));
    this.logger.log({ event: 'openid_metadata_loaded', tenantId, issuers: [...issuers.values()], jwksUri });
  }

  private reportFailure(err: unknown, retryInMs: number): void {
    const url = err instanceof OpenIdMetadataError ? err.url : (this.failure?.url ?? '');
    const reason = err instanceof Error ? err.message : String(err);
    this.failure = { url, reason };
    if (err instanceof OpenIdMetadataError && err.isConfigurationError) {
      this.logger.error({
        event: 'openid_metadata_configuration_error',
        url,
        status: err.status,
        message: `configuration error: ${url} answered HTTP ${err.status}; the tenant does not exist at this instance (check the tenant id and the instance URL)`,
        retryInMs,
      });
    } else {
      this.logger.warn({ event: 'openid_metadata_unavailable', url, cause: reason, retryInMs });
    }
  }

  private stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.agent?.destroy();
  }
}
