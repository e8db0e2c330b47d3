import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { AcquiredToken } from './certificate-token-client';
import { readSharedCacheConfig } from './config';
import { ConfigError } from './env';
import { MemoryTokenStore } from './memory-token-store';
import { SharedTokenCache } from './shared-token-cache';
import { tokenKeyString, type FetchContext } from './token-cache';
import type { TokenStore } from './token-store';

const CTX: FetchContext = {
  key: { authority: 'https://login.example/tenant', clientId: 'client', scope: 'api://x/.default' },
  background: false,
  forced: false,
};

/** A fetcher that hands out numbered tokens valid for an hour, after `delayMs`. */
function countingFetcher(delayMs = 20) {
  let count = 0;
  const fetcher = async (): Promise<AcquiredToken> => {
    count++;
    await new Promise((r) => setTimeout(r, delayMs));
    return { accessToken: `token-${count}`, expiresOn: new Date(Date.now() + 3_600_000), source: 'network' };
  };
  return {
    fetcher,
    get count() {
      return count;
    },
  };
}

describe('MemoryTokenStore', () => {
  it('keeps values for their lifetime; setIfAbsent and deleteIfEquals are a lock with an owner', async () => {
    let now = 1_000;
    const store = new MemoryTokenStore(() => now);
    await store.set('k', 'v', 100);
    expect(await store.get('k')).toBe('v');
    now += 100;
    expect(await store.get('k')).toBeUndefined();
    expect(await store.setIfAbsent('lock', 'a', 50)).toBe(true);
    expect(await store.setIfAbsent('lock', 'b', 50)).toBe(false);
    await store.deleteIfEquals('lock', 'b');
    expect(await store.has('lock')).toBe(true);
    await store.deleteIfEquals('lock', 'a');
    expect(await store.has('lock')).toBe(false);
    expect(await store.setIfAbsent('lock', 'b', 50)).toBe(true);
    now += 50;
    expect(await store.setIfAbsent('lock', 'c', 50)).toBe(true); // an expired lock is free
  });
});

describe('SharedTokenCache over a TokenStore', () => {
  it('two caches on one store, 100 cold callers each: one fetch; the stored value is encrypted', async () => {
    const store = new MemoryTokenStore();
    const key = randomBytes(32);
    const source = countingFetcher();
    const a = new SharedTokenCache({ store, encryptionKey: key, fetcher: source.fetcher, pollMs: 5 });
    const b = new SharedTokenCache({ store, encryptionKey: key, fetcher: source.fetcher, pollMs: 5 });
    const tokens = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 ? a : b).fetcher(CTX)));
    // Each cache is behind a TokenCache in real use (which merges its own callers); here every
    // caller goes to the store, and still only the lock holder fetches.
    expect(source.count).toBe(1);
    expect(new Set(tokens.map((t) => t.accessToken))).toEqual(new Set(['token-1']));
    expect(a.stats.sharedHits + b.stats.sharedHits).toBe(199);
    const id = createHash('sha256').update(tokenKeyString(CTX.key)).digest('base64url');
    const stored = await store.get(`certflow:partner-token:${id}`);
    expect(stored).toMatch(/^v1\./);
    expect(stored).not.toContain('token-1');
  });

  it('a store that fails or hangs: the replica fetches itself, logs once each way, and calls never fail', async () => {
    const memory = new MemoryTokenStore();
    let mode: 'up' | 'down' | 'hang' = 'down';
    const flaky: TokenStore = {
      name: 'flaky',
      get: (k) =>
        mode === 'up'
          ? memory.get(k)
          : mode === 'down'
            ? Promise.reject(new Error('refused'))
            : new Promise(() => {}),
      set: (k, v, t) => (mode === 'up' ? memory.set(k, v, t) : Promise.reject(new Error('refused'))),
      setIfAbsent: (k, v, t) =>
        mode === 'up' ? memory.setIfAbsent(k, v, t) : Promise.reject(new Error('refused')),
      deleteIfEquals: (k, v) => memory.deleteIfEquals(k, v),
      has: (k) => memory.has(k),
      close: () => memory.close(),
    };
    const logs: string[] = [];
    const source = countingFetcher(0);
    const cache = new SharedTokenCache({
      store: flaky,
      encryptionKey: randomBytes(32),
      fetcher: source.fetcher,
      commandTimeoutMs: 50,
      log: (m) => logs.push(m),
    });
    expect((await cache.fetcher(CTX)).source).toBe('network');
    mode = 'hang';
    expect((await cache.fetcher(CTX)).source).toBe('network');
    expect(cache.stats.fallbacks).toBe(2);
    expect(logs).toEqual([
      expect.stringMatching(
        /^shared token cache: flaky unavailable \(refused\); using this replica's own cache/,
      ),
    ]);
    mode = 'up';
    await cache.fetcher(CTX);
    expect(logs.at(-1)).toBe('shared token cache: flaky is back; sharing tokens again');
    expect(source.count).toBe(3);
  });
});

describe('readSharedCacheConfig: PARTNER_TOKEN_STORE', () => {
  const key = randomBytes(32).toString('hex');

  it('none without PARTNER_TOKEN_STORE or PARTNER_REDIS_URL; redis with PARTNER_REDIS_URL alone', () => {
    expect(readSharedCacheConfig({})).toBeUndefined();
    expect(
      readSharedCacheConfig({ PARTNER_REDIS_URL: 'redis://127.0.0.1:6379', PARTNER_CACHE_KEY: key }),
    ).toEqual({
      store: 'redis',
      settings: { url: 'redis://127.0.0.1:6379' },
      cacheKey: Buffer.from(key, 'hex'),
    });
  });

  it('memory needs no key (a random one is made); an unknown store or a missing Redis URL names the variable', () => {
    const memory = readSharedCacheConfig({ PARTNER_TOKEN_STORE: 'memory' });
    expect(memory).toMatchObject({ store: 'memory', settings: {} });
    expect(memory!.cacheKey).toHaveLength(32);
    expect(() => readSharedCacheConfig({ PARTNER_TOKEN_STORE: 'memcached' })).toThrow(
      /^PARTNER_TOKEN_STORE: must be one of redis, memory, got "memcached"$/,
    );
    expect(() => readSharedCacheConfig({ PARTNER_TOKEN_STORE: 'toString' })).toThrow(
      /^PARTNER_TOKEN_STORE: must be one of/,
    );
    expect(() => readSharedCacheConfig({ PARTNER_TOKEN_STORE: 'redis', PARTNER_CACHE_KEY: key })).toThrow(
      /^PARTNER_REDIS_URL: is required with PARTNER_TOKEN_STORE=redis/,
    );
    expect(() =>
      readSharedCacheConfig({ PARTNER_TOKEN_STORE: 'redis', PARTNER_REDIS_URL: 'redis://h:1' }),
    ).toThrow(/^PARTNER_CACHE_KEY: is required with PARTNER_TOKEN_STORE=redis/);
    expect(() => readSharedCacheConfig({ PARTNER_REDIS_URL: 'redis://h:1' })).toThrow(
      /^PARTNER_CACHE_KEY: is required with PARTNER_REDIS_URL/,
    );
    expect(() =>
      readSharedCacheConfig({ PARTNER_TOKEN_STORE: 'memory', PARTNER_CACHE_KEY: 'short' }),
    ).toThrow(/^PARTNER_CACHE_KEY: must be 32 random bytes/);
  });

  it('a setting of another store than the chosen one is ambiguous: memory with PARTNER_REDIS_URL names both', () => {
    const ambiguous = { PARTNER_TOKEN_STORE: 'memory', PARTNER_REDIS_URL: 'redis://127.0.0.1:6379' };
    expect(() => readSharedCacheConfig(ambiguous)).toThrow(ConfigError);
    expect(() => readSharedCacheConfig({ ...ambiguous, PARTNER_CACHE_KEY: key })).toThrow(
      /^PARTNER_TOKEN_STORE: is "memory" but PARTNER_REDIS_URL \(a setting of the redis store\) is set too: unset PARTNER_REDIS_URL, or set PARTNER_TOKEN_STORE=redis$/,
    );
    // An empty value counts as unset, as everywhere else.
    expect(readSharedCacheConfig({ PARTNER_TOKEN_STORE: 'memory', PARTNER_REDIS_URL: '' })).toMatchObject({
      store: 'memory',
    });
  });
});
