/**
 * The shared token cache's backends, by the name PARTNER_TOKEN_STORE takes. Adding one is a file
 * that exports a {@link TokenStoreBackend} (token-store.ts; see memory-token-store.ts) and one line here.
 */
import { ConfigError } from './env';
import { memoryTokenStore } from './memory-token-store';
import { redisTokenStore } from './redis-token-store';
import type { TokenStoreBackend } from './token-store';

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
