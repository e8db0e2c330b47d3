/**
 * The shared token cache's backends, by the name PARTNER_TOKEN_STORE takes. Adding one is a file
 * that exports a {@link TokenStoreBackend} (see memory-token-store.ts) and one line here.
 */
import { ConfigError, type Env } from './env';
import { memoryTokenStore } from './memory-token-store';
import { redisTokenStore } from './redis-token-store';
import type { TokenStore } from './token-store';

export interface TokenStoreBackend {
  /** The tokens leave the process (another machine keeps them): PARTNER_CACHE_KEY is then required. */
  readonly remote: boolean;
  /** Reads this backend's environment variables at start-up; a bad value throws a ConfigError naming it. */
  configure(env: Env): Record<string, string>;
  /** Opens the store with what `configure` returned. */
  open(settings: Readonly<Record<string, string>>): TokenStore;
}

export const TOKEN_STORES: Readonly<Record<string, TokenStoreBackend>> = {
  redis: redisTokenStore,
  memory: memoryTokenStore,
};

/** The backend registered as `name` (PARTNER_TOKEN_STORE); any other name is a ConfigError listing them. */
export function tokenStoreBackend(name: string): TokenStoreBackend {
  const backend = Object.hasOwn(TOKEN_STORES, name) ? TOKEN_STORES[name] : undefined;
  if (!backend)
    throw new ConfigError(
      'PARTNER_TOKEN_STORE',
      `must be one of ${Object.keys(TOKEN_STORES).join(', ')}, got "${name}"`,
    );
  return backend;
}
