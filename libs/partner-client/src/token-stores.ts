/**
 * The shared token cache's backends, by the name PARTNER_TOKEN_STORE takes. Adding one is a file
 * that exports a {@link TokenStoreBackend} (see memory-token-store.ts) and one line here.
 */
import type { Env } from './env';
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
