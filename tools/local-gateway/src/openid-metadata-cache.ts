/**
 * OpenID Connect metadata and its JWKS for one `<openid-config url>`, cached the way APIM
 * documents it: pulled and kept for 1 hour; when a token names a `kid` that is not in the
 * cached keys, or when a pull fails, pulled again at most once every 5 minutes.
 *
 * "At most once every 5 minutes" counts every pull, the first one included: a token signed
 * with a brand-new key that arrives within 5 minutes of the last pull is refused, exactly
 * the window an issuer's "publish the next key before signing with it" rotation covers.
 */
import type { JSONWebKeySet } from 'jose';
import { fetchJson, FetchJsonOptions } from './https-json-fetch';

export interface OpenIdMetadata {
  readonly issuer: string;
  readonly jwksUri: string;
  readonly jwks: JSONWebKeySet;
}

export interface MetadataCacheTimings {
  /** How long pulled metadata is used without asking again (APIM: 1 hour). */
  cacheTtlMs: number;
  /** Minimum time between two pulls on an unknown `kid` or after a failure (APIM: 5 minutes). */
  minRefreshIntervalMs: number;
}

export const APIM_METADATA_TIMINGS: MetadataCacheTimings = {
  cacheTtlMs: 60 * 60_000,
  minRefreshIntervalMs: 5 * 60_000,
};

export interface MetadataCacheOptions {
  trustedCaPem?: string;
  now?: () => number;
  timings?: MetadataCacheTimings;
  fetch?: (url: string, opts: FetchJsonOptions) => Promise<unknown>;
  /** Told about each pull and its outcome (for logs). */
  onPull?: (event: { url: string; ok: boolean; error?: string }) => void;
}

export class OpenIdMetadataCache {
  private current: OpenIdMetadata | undefined;
  private fetchedAt = 0;
  private lastPullAt: number | undefined;
  private lastError: Error | undefined;
  private inflight: Promise<OpenIdMetadata> | undefined;
  private readonly now: () => number;
  private readonly timings: MetadataCacheTimings;
  private readonly fetch: (url: string, opts: FetchJsonOptions) => Promise<unknown>;

  constructor(
    readonly url: string,
    private readonly opts: MetadataCacheOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.timings = opts.timings ?? APIM_METADATA_TIMINGS;
    this.fetch = opts.fetch ?? fetchJson;
  }

  /** The cached document while it is fresh, without waiting; undefined when `get()` has work to do. */
  peek(): OpenIdMetadata | undefined {
    return this.current && this.now() - this.fetchedAt < this.timings.cacheTtlMs ? this.current : undefined;
  }

  /** The cached metadata, pulled when missing or older than the TTL (and allowed by the throttle). */

  async get(): Promise<OpenIdMetadata> {
    const now = this.now();
    if (this.current && now - this.fetchedAt < this.timings.cacheTtlMs) return this.current;
    if (this.inflight) return this.inflight;
    if (!this.mayPull(now)) {
      if (this.current) return this.current;
      throw new Error(
        `OpenID configuration ${this.url} is unavailable (${this.lastError?.message ?? 'not loaded'}); next attempt in at most ${Math.ceil(this.timings.minRefreshIntervalMs / 1000)} s`,
      );
    }
    try {
      return await this.pull();
    } catch (err) {
      if (this.current) return this.current; // keep serving the stale keys while the issuer is unreachable
      throw err;
    }
  }

  /**
   * Called when a token's `kid` is not among the cached keys: pulls again unless the last pull
   * was less than the minimum interval ago. Returns the metadata to retry with, or undefined
   * when no new pull was made.
   */
  async refreshForUnknownKey(): Promise<OpenIdMetadata | undefined> {
    if (this.inflight) return this.inflight.catch(() => undefined);
    if (!this.mayPull(this.now())) return undefined;
    return this.pull().catch(() => undefined);
  }

  private mayPull(now: number): boolean {
    return this.lastPullAt === undefined || now - this.lastPullAt >= this.timings.minRefreshIntervalMs;
  }

  private pull(): Promise<OpenIdMetadata> {
    this.lastPullAt = this.now();
    const inflight = this.load().then(
      (metadata) => {
        this.current = metadata;
        this.fetchedAt = this.now();
        this.lastError = undefined;
        this.opts.onPull?.({ url: this.url, ok: true });
        return metadata;
      },
      (err: Error) => {
        this.lastError = err;
        this.opts.onPull?.({ url: this.url, ok: false, error: err.message });
        throw err;
      },
    );
    this.inflight = inflight;
    const clear = (): void => {
      if (this.inflight === inflight) this.inflight = undefined;
    };
    inflight.then(clear, clear);
    return inflight;
  }

  private async load(): Promise<OpenIdMetadata> {
    const fetchOpts: FetchJsonOptions = this.opts.trustedCaPem
      ? { trustedCaPem: this.opts.trustedCaPem }
      : {};
    const doc = (await this.fetch(this.url, fetchOpts)) as Record<string, unknown> | null;
    if (!doc || typeof doc !== 'object') throw new Error(`${this.url}: not a JSON object`);
    const { issuer, jwks_uri: jwksUri } = doc;
    if (typeof issuer !== 'string' || issuer === '') throw new Error(`${this.url}: missing "issuer"`);
    if (typeof jwksUri !== 'string' || !jwksUri.startsWith('https://'))
      throw new Error(`${this.url}: "jwks_uri" must be an https:// URL`);
    const jwks = (await this.fetch(jwksUri, fetchOpts)) as Record<string, unknown> | null;
    if (!jwks || typeof jwks !== 'object' || !Array.isArray(jwks.keys))
      throw new Error(`${jwksUri}: not a JSON Web Key Set (no "keys" array)`);
    return { issuer, jwksUri, jwks: jwks as unknown as JSONWebKeySet };
  }
}
