/**
 * certflow's token cache, in front of MSAL (or any token fetcher).
 *
 * Why not MSAL's own cache (measured against MSAL 7: `npx nx run partner-worker:bench` compares
 * the two, README "Benchmark: a cache hit, certflow vs MSAL"):
 * - MSAL does not merge concurrent cold calls (200 callers → about 200 token requests);
 * - its cache lookup is linear in the number of cached tokens (45 µs with 1, 1.9 ms with 2,000);
 * - a token with under 300 s left counts as expired, and the next call blocks on a refresh.
 *
 * What this cache guarantees, per key (authority, client, scope):
 * - O(1) lookups: one Map; a hit is a Map.get and a clock read;
 * - at most one fetch in flight, however many callers wait for it;
 * - refresh ahead of expiry, in the background, at a jittered moment (so replicas spread out),
 *   while callers keep getting the current token;
 * - never an empty or expired token: a token is served only while it has more than a safety
 *   margin left; after that callers wait for a fetch (and see its error if it fails);
 * - a failed background refresh is retried with exponential backoff and jitter for as long as
 *   the current token is still usable, never before the fetcher's `retryAt` (the authority's
 *   `Retry-After`).
 *
 * The fetcher should bypass MSAL's cache (`skipCache: true`): this cache decides when to refresh.
 */
import { systemClock, type Clock } from '@certflow/clock';
import type { AcquiredToken } from './certificate-token-client';

export interface TokenKey {
  authority: string;
  clientId: string;
  scope: string;
}

export function tokenKeyString(key: TokenKey): string {
  return `${key.authority}|${key.clientId}|${key.scope}`;
}

/** What the fetcher learns about the call that needs a token. */
export interface FetchContext {
  key: TokenKey;
  /** The token held right now (if any), e.g. so that a shared cache only accepts a newer one. */
  current?: CachedToken;
  /** True for a background refresh-ahead (a current token is still usable). */
  background: boolean;
  /** True when a caller asked for a new token (e.g. the API answered 401 to `current`). */
  forced: boolean;
}

export type TokenFetcher = (ctx: FetchContext) => Promise<AcquiredToken>;

export interface CachedToken {
  accessToken: string;
  expiresOn: Date;
  /** When it was obtained (ms since epoch, on the cache's clock). */
  obtainedAt: number;
  /** Where the fetch got it from: `network` (the authority) or `shared` (another replica). */
  origin: AcquiredToken['source'];
}

export interface TokenCacheEvents {
  /** A fetch started: `cold` (no usable token), `refresh` (ahead of expiry), `forced`. */
  onFetch?(key: TokenKey, kind: 'cold' | 'refresh' | 'forced'): void;
  onFetched?(key: TokenKey, token: CachedToken): void;
  /** A background refresh failed; the next attempt is at `retryAt` (ms since epoch). */
  onRefreshFailed?(key: TokenKey, error: unknown, attempt: number, retryAt: number): void;
}

export interface TokenCacheOptions {
  fetcher: TokenFetcher;
  /**
   * Start refreshing this long before expiry (default 10 min, i.e. well before MSAL's 5-minute
   * "expired" threshold). For short-lived tokens at most half the lifetime is used.
   */
  refreshAheadMs?: number;
  /** Up to this fraction of the lead time is added at random, per token (default 0.2). */
  refreshJitter?: number;
  /**
   * A token is never served with less than this left (default 60 s; for short-lived tokens at
   * most a tenth of the lifetime).
   */
  minValidityMs?: number;
  /** Backoff for a failed background refresh: base, cap (defaults 1 s, 60 s), full jitter. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Run refreshes from timers even when nobody asks (default true; timers are unref'd). */
  proactive?: boolean;
  /** The time expiry and refresh-ahead are judged by (default: the real time). */
  clock?: Clock;
  random?: () => number;
  events?: TokenCacheEvents;
}

export interface TokenCacheStats {
  hits: number;
  misses: number;
  fetches: number;
  refreshes: number;
  refreshFailures: number;
  forced: number;
  entries: number;
}

interface Entry {
  key: TokenKey;
  token?: CachedToken;
  /** What every hit returns for `token`: one resolved promise of a frozen result. */
  hit?: Promise<AcquiredToken>;
  /** Serve `token` only before this instant. */
  usableUntil: number;
  /** Start a background refresh from this instant. */
  refreshAt: number;
  /** The single fetch in flight for this key. */
  inFlight?: Promise<CachedToken>;
  failures: number;
  /** After a failed refresh, no new attempt before this instant. */
  retryAt: number;
  timer?: NodeJS.Timeout;
}

export class TokenCache {
  private readonly entries = new Map<string, Entry>();
  /** Each key object's id string, so that a hit neither builds nor hashes a new string. */
  private readonly ids = new WeakMap<TokenKey, string>();
  private readonly fetcher: TokenFetcher;
  private readonly refreshAheadMs: number;
  private readonly refreshJitter: number;
  private readonly minValidityMs: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly proactive: boolean;
  private readonly clock: Clock;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly events: TokenCacheEvents;
  private closed = false;
  readonly stats: Omit<TokenCacheStats, 'entries'> = {
    hits: 0,
    misses: 0,
    fetches: 0,
    refreshes: 0,
    refreshFailures: 0,
    forced: 0,
  };

  constructor(opts: TokenCacheOptions) {
    this.fetcher = opts.fetcher;
    this.refreshAheadMs = opts.refreshAheadMs ?? 10 * 60_000;
    this.refreshJitter = opts.refreshJitter ?? 0.2;
    this.minValidityMs = opts.minValidityMs ?? 60_000;
    this.retryBaseMs = opts.retryBaseMs ?? 1_000;
    this.retryMaxMs = opts.retryMaxMs ?? 60_000;
    this.proactive = opts.proactive ?? true;
    const clock = opts.clock ?? systemClock;
    this.clock = clock;
    this.now = () => clock.nowMs();
    this.random = opts.random ?? Math.random;
    this.events = opts.events ?? {};
  }

  /**
   * The current token for `key` when one is usable, without waiting (`undefined` otherwise).
   * Also starts a background refresh when the token is due.
   */
  peek(key: TokenKey): CachedToken | undefined {
    const entry = this.entries.get(this.idOf(key));
    if (!entry?.token) return undefined;
    const now = this.now();
    if (now >= entry.usableUntil) return undefined;
    if (now >= entry.refreshAt && now >= entry.retryAt && !entry.inFlight) this.refresh(entry, 'refresh');
    return entry.token;
  }

  /**
   * A usable token for `key`: the cached one, or the result of the one fetch in flight.
   *
   * The hit path allocates nothing: the key object's id is remembered (key objects are treated as
   * immutable), and each stored token carries one already-resolved promise of a frozen result
   * that every hit returns (bench: `npx nx run partner-worker:bench`).
   */
  getToken(
    key: TokenKey,
    options: { forceRefresh?: boolean; rejectedToken?: string } = {},
  ): Promise<AcquiredToken> {
    if (this.closed) return Promise.reject(new Error('the token cache is closed'));
    const id = this.idOf(key);
    let entry = this.entries.get(id);
    if (entry?.hit && options.forceRefresh !== true) {
      const now = this.now();
      if (now < entry.usableUntil) {
        this.stats.hits++;
        if (now >= entry.refreshAt && now >= entry.retryAt && !entry.inFlight) this.refresh(entry, 'refresh');
        return entry.hit;
      }
    }
    if (!entry) {
      entry = { key, usableUntil: 0, refreshAt: 0, failures: 0, retryAt: 0 };
      this.entries.set(id, entry);
    }
    return this.slowPath(entry, options);
  }

  private async slowPath(
    entry: Entry,
    options: { forceRefresh?: boolean; rejectedToken?: string },
  ): Promise<AcquiredToken> {
    const now = this.now();
    const token = entry.token;
    if (options.forceRefresh) {
      // Someone else already replaced the refused token: use the new one.
      if (
        token &&
        entry.hit &&
        options.rejectedToken !== undefined &&
        token.accessToken !== options.rejectedToken &&
        now < entry.usableUntil
      ) {
        this.stats.hits++;
        return entry.hit;
      }
      this.stats.forced++;
      // Joins a refresh in flight, if any: it will produce a token newer than the refused one.
      const fresh = await (entry.inFlight ?? this.refresh(entry, 'forced'));
      return { accessToken: fresh.accessToken, expiresOn: fresh.expiresOn, source: fresh.origin };
    }
    this.stats.misses++;
    const fresh = await (entry.inFlight ?? this.refresh(entry, 'cold'));
    return { accessToken: fresh.accessToken, expiresOn: fresh.expiresOn, source: fresh.origin };
  }

  private idOf(key: TokenKey): string {
    let id = this.ids.get(key);
    if (id === undefined) {
      id = tokenKeyString(key);
      this.ids.set(key, id);
    }
    return id;
  }

  /** Forget every token and stop the timers (in-flight fetches still settle). */
  close(): void {
    this.closed = true;
    for (const entry of this.entries.values()) if (entry.timer) clearTimeout(entry.timer);
    this.entries.clear();
  }

  /** Drops the cached tokens (e.g. after switching to a new certificate); keeps in-flight fetches. */
  clear(): void {
    for (const entry of this.entries.values()) {
      if (entry.timer) clearTimeout(entry.timer);
      entry.token = undefined;
      entry.hit = undefined;
      entry.usableUntil = 0;
      entry.refreshAt = 0;
      entry.failures = 0;
      entry.retryAt = 0;
    }
  }

  get size(): number {
    return this.entries.size;
  }

  snapshot(): TokenCacheStats {
    return { ...this.stats, entries: this.entries.size };
  }

  /** Starts the one fetch for this entry. The returned promise rejects only for its waiters. */
  private refresh(entry: Entry, kind: 'cold' | 'refresh' | 'forced'): Promise<CachedToken> {
    const background = kind === 'refresh';
    this.stats.fetches++;
    if (background) this.stats.refreshes++;
    this.events.onFetch?.(entry.key, kind);
    const ctx: FetchContext = {
      key: entry.key,
      ...(entry.token ? { current: entry.token } : {}),
      background,
      forced: kind === 'forced',
    };
    const pending = (async () => {
      const acquired = await this.fetcher(ctx);
      const now = this.now();
      if (!acquired.accessToken) throw new Error(`the token for ${entry.key.scope} is empty`);
      const expiresOn = acquired.expiresOn.getTime();
      if (!Number.isFinite(expiresOn) || expiresOn <= now)
        throw new Error(
          `the token for ${entry.key.scope} is already expired (expiresOn ${acquired.expiresOn.toISOString()})`,
        );
      return {
        accessToken: acquired.accessToken,
        expiresOn: acquired.expiresOn,
        obtainedAt: now,
        origin: acquired.source === 'cache' ? 'network' : acquired.source,
      } satisfies CachedToken;
    })();
    entry.inFlight = pending;
    pending.then(
      (token) => {
        if (entry.inFlight === pending) entry.inFlight = undefined;
        this.store(entry, token);
      },
      (err: unknown) => {
        if (entry.inFlight === pending) entry.inFlight = undefined;
        this.failed(entry, err, background);
      },
    );
    return pending;
  }

  private store(entry: Entry, token: CachedToken): void {
    if (this.closed) return;
    // A slower, older result never replaces a newer token.
    if (
      entry.token &&
      entry.token.expiresOn.getTime() > token.expiresOn.getTime() &&
      entry.token.accessToken !== token.accessToken &&
      this.now() < entry.usableUntil
    )
      return;
    const expiresOn = token.expiresOn.getTime();
    const lifetime = Math.max(0, expiresOn - token.obtainedAt);
    const margin = Math.min(this.minValidityMs, lifetime / 10);
    const lead = Math.min(this.refreshAheadMs, lifetime / 2);
    entry.token = token;
    entry.hit = Promise.resolve(
      Object.freeze({ accessToken: token.accessToken, expiresOn: token.expiresOn, source: 'cache' as const }),
    );
    entry.usableUntil = expiresOn - margin;
    // Jitter moves the refresh earlier by up to refreshJitter × lead, differently per replica.
    entry.refreshAt = expiresOn - lead - this.random() * this.refreshJitter * lead;
    entry.failures = 0;
    entry.retryAt = 0;
    this.events.onFetched?.(entry.key, token);
    this.schedule(entry, entry.refreshAt);
  }

  private failed(entry: Entry, err: unknown, background: boolean): void {
    if (this.closed) return;
    if (!background) return; // waiters see the error; the next caller starts a new fetch
    this.stats.refreshFailures++;
    entry.failures++;
    const ceiling = Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** (entry.failures - 1));
    // "Equal jitter": at least half the backoff, so retries never hammer the authority.
    const delay = ceiling / 2 + this.random() * (ceiling / 2);
    // Not before the fetcher says it will ask again (the authority's Retry-After, its throttle):
    // a real time, moved onto this cache's clock.
    const notBefore = (err as { retryAt?: unknown } | null)?.retryAt;
    entry.retryAt = Math.max(
      this.now() + delay,
      typeof notBefore === 'number' ? notBefore + this.clock.offsetMs : 0,
    );
    this.events.onRefreshFailed?.(entry.key, err, entry.failures, entry.retryAt);
    if (entry.retryAt < entry.usableUntil) this.schedule(entry, entry.retryAt);
  }

  private schedule(entry: Entry, at: number): void {
    if (!this.proactive) return;
    if (entry.timer) clearTimeout(entry.timer);
    const delay = Math.max(0, at - this.now());
    entry.timer = setTimeout(
      () => {
        entry.timer = undefined;
        if (this.closed || entry.inFlight || !entry.token) return;
        const now = this.now();
        if (now < entry.usableUntil && now >= entry.refreshAt && now >= entry.retryAt)
          void this.refresh(entry, 'refresh').catch(() => {});
      },
      Math.min(delay, 2 ** 31 - 1),
    );
    entry.timer.unref();
  }
}

/** A TokenProvider for one key of a TokenCache (what ApiClient and the CLI use). */
export class CachedTokenProvider {
  constructor(
    readonly cache: TokenCache,
    readonly key: TokenKey,
  ) {}

  getToken(options?: { forceRefresh?: boolean; rejectedToken?: string }): Promise<AcquiredToken> {
    return this.cache.getToken(this.key, options);
  }
}
