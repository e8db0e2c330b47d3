/**
 * What the shared token cache (shared-token-cache.ts) keeps its tokens and locks in. The cache
 * does the encryption (AES-256-GCM) and the locking protocol; a store only keeps strings with a
 * lifetime and answers a few atomic questions. Any method may throw (or hang: the cache gives
 * each call a time limit) when the store is unavailable; the cache then fetches tokens itself.
 *
 * Backends are registered by name in token-stores.ts and chosen with PARTNER_TOKEN_STORE.
 */
import type { Env } from './env';

export interface TokenStore {
  /** Named in log lines, e.g. `Redis`. */
  readonly name: string;
  /** The value stored under `key`, or undefined when there is none (or it expired). */
  get(key: string): Promise<string | undefined>;
  /** Stores `value` under `key` for `ttlMs` milliseconds, replacing any value. */
  set(key: string, value: string, ttlMs: number): Promise<void>;
  /** Stores `value` for `ttlMs` only when `key` holds nothing; true when it did (a lock taken). */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;
  /** Deletes `key` only while it still holds `value` (a lock released by its owner only). */
  deleteIfEquals(key: string, value: string): Promise<void>;
  /** Whether `key` holds a value. */
  has(key: string): Promise<boolean>;
  close(): void;
}

/** A way to keep the shared tier's entries, registered by name in token-stores.ts. */
export interface TokenStoreBackend {
  /** The tokens leave the process (another machine keeps them): PARTNER_CACHE_KEY is then required. */
  readonly remote: boolean;
  /** The environment variables this backend reads: setting one while another backend is chosen is a ConfigError. */
  readonly variables: readonly string[];
  /** Reads this backend's environment variables at start-up; a bad value throws a ConfigError naming it. */
  configure(env: Env): Record<string, string>;
  /** Opens the store with what `configure` returned. */
  open(settings: Readonly<Record<string, string>>): TokenStore;
}
