/**
 * Replicas sharing one real Redis (Debian redis-server) in front of real MSAL and the real
 * emulator: one token request for all of them; Redis stopped mid-way → calls still succeed.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PartnerCredential } from './certificate-store';
import { CertificateTokenClient } from './certificate-token-client';
import { startProvisionedEmulator } from './emulator.test-helpers';
import { HttpsNetworkClient } from './https-network-client';
import { RedisTokenStore } from './redis-token-store';
import { decryptToken, encryptToken, parseCacheKey, SharedTokenCache } from './shared-token-cache';
import { TokenCache, type TokenKey } from './token-cache';
import { Redis } from 'ioredis';
import type { GraphClient, RunningEmulator } from '@certflow/entra-emulator';
import { startRedisServer, type RedisServer, tempDir } from '@certflow/testing';

describe('PARTNER_CACHE_KEY and token encryption', () => {
  it('accepts 32 random bytes as hex or base64, refuses anything else', () => {
    const key = randomBytes(32);
    expect(parseCacheKey(key.toString('hex')).equals(key)).toBe(true);
    expect(parseCacheKey(key.toString('base64')).equals(key)).toBe(true);
    expect(parseCacheKey(key.toString('base64url')).equals(key)).toBe(true);
    expect(() => parseCacheKey('secret')).toThrow(/32 random bytes/);
    expect(() => parseCacheKey(randomBytes(16).toString('hex'))).toThrow(/32 random bytes/);
    expect(() => parseCacheKey('00'.repeat(32))).toThrow(/random/);
  });

  it('AES-256-GCM: round-trips; another key, another slot or a flipped byte reads as absent', () => {
    const key = randomBytes(32);
    const token = {
      accessToken: 'eyJ.secret.token',
      expiresOn: new Date(1_900_000_000_000),
      source: 'network' as const,
    };
    const sealed = encryptToken(key, 'slot-a', token);
    expect(sealed).not.toContain('secret');
    expect(decryptToken(key, 'slot-a', sealed)).toEqual({
      accessToken: token.accessToken,
      expiresOn: token.expiresOn,
    });
    expect(decryptToken(randomBytes(32), 'slot-a', sealed)).toBeUndefined();
    expect(decryptToken(key, 'slot-b', sealed)).toBeUndefined();
    const parts = sealed.split('.');
    const ct = Buffer.from(parts[3]!, 'base64url');
    ct[0] = ct[0]! ^ 1;
    expect(
      decryptToken(key, 'slot-a', [...parts.slice(0, 3), ct.toString('base64url')].join('.')),
    ).toBeUndefined();
    expect(decryptToken(key, 'slot-a', 'plain-text')).toBeUndefined();
  });
});

describe('replicas sharing a real Redis', () => {
  const API_URI = 'api://certflow-shared-cache-test';
  const SCOPE = `${API_URI}/.default`;
  const dir = tempDir();
  let emulator: RunningEmulator;
  let redis: RedisServer;
  let partnerAppId: string;
  let credential: PartnerCredential;
  let caPem: string;
  const encryptionKey = randomBytes(32);
  const closers: (() => Promise<void> | void)[] = [];

  beforeAll(async () => {
    redis = await startRedisServer();
    let graph: GraphClient;
    ({
      emulator,
      caPem,
      graph,
      partner: { appId: partnerAppId },
      credential,
    } = await startProvisionedEmulator(dir.path, {
      name: 'shared cache test',
      apiIdentifierUri: API_URI,
      tokenLifetimeSeconds: 8,
      commonName: 'shared-cache-test',
    }));
    graph.close();
  }, 120_000);

  // Replicas refresh ahead in the background and publish to the shared slot: stop each test's
  // replicas before the next test counts token requests.
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
  });

  afterAll(async () => {
    await emulator?.close();
    await redis?.stop();
    dir.remove();
  });

  /** One worker replica: its own MSAL, network client, local TokenCache, and the shared Redis tier. */
  function replica(name: string) {
    const network = new HttpsNetworkClient({ ca: caPem });
    const msal = new CertificateTokenClient({
      entraInstance: emulator.url,
      tenantId: emulator.tenantId,
      clientId: partnerAppId,
      scope: SCOPE,
      credential,
      networkClient: network,
    });
    const logs: string[] = [];
    const shared = new SharedTokenCache({
      store: new RedisTokenStore(redis.url),
      encryptionKey,
      fetcher: (ctx) => msal.fetchToken({ scope: ctx.key.scope, skipCache: true }),
      log: (m) => logs.push(`${name}: ${m}`),
      commandTimeoutMs: 300,
    });
    const cache = new TokenCache({ fetcher: shared.fetcher, retryBaseMs: 100, retryMaxMs: 300 });
    closers.push(async () => {
      cache.close();
      shared.close();
      network.close();
    });
    const key: TokenKey = { authority: msal.authority, clientId: partnerAppId, scope: SCOPE };
    return {
      cache,
      shared,
      network,
      key,
      logs,
      get posts() {
        return network.requestCounts.post;
      },
    };
  }

  it('two replicas, 500 concurrent cold callers each: one token request in total; Redis holds it encrypted', async () => {
    const a = replica('a');
    const b = replica('b');
    const tokens = await Promise.all([
      ...Array.from({ length: 500 }, () => a.cache.getToken(a.key)),
      ...Array.from({ length: 500 }, () => b.cache.getToken(b.key)),
    ]);
    expect(a.posts + b.posts).toBe(1);
    expect(new Set(tokens.map((t) => t.accessToken)).size).toBe(1);
    expect(new Set(tokens.map((t) => t.source))).toEqual(new Set(['network', 'shared']));

    const client = new Redis(redis.url);
    const keys = await client.keys('certflow:partner-token:*');
    const values = await Promise.all(keys.map((k) => client.get(k)));
    client.disconnect();
    expect(keys.filter((k) => !k.endsWith(':lock'))).toHaveLength(1);
    expect(values.join('')).not.toContain(tokens[0]!.accessToken.slice(0, 40));
  });

  it('four replicas over two refresh cycles: every token request is shared by all', async () => {
    const replicas = ['r1', 'r2', 'r3', 'r4'].map((n) => replica(n));
    // Start cold from a clean slot so that this test counts only its own requests.
    const client = new Redis(redis.url);
    await client.flushall();
    client.disconnect();
    const seen = replicas.map(() => new Set<string>());
    const first = await Promise.all(replicas.map((r) => r.cache.getToken(r.key)));
    const firstExpiry = first[0]!.expiresOn.getTime();
    // Two refresh cycles: until every replica holds a token newer than the second generation's.
    let generations = 0;
    while (generations < 3) {
      const now = await Promise.all(replicas.map((r) => r.cache.getToken(r.key)));
      now.forEach((t, i) => seen[i]!.add(t.accessToken));
      generations = Math.min(...seen.map((s) => s.size));
      await new Promise((r) => setTimeout(r, 50));
    }
    const posts = replicas.reduce((n, r) => n + r.posts, 0);
    const all = new Set(seen.flatMap((s) => [...s]));
    // One token request per generation of tokens, however many replicas; a background refresh
    // may have gone out just before the loop stopped, its token not yet seen.
    expect(posts).toBeGreaterThanOrEqual(all.size);
    expect(posts).toBeLessThanOrEqual(all.size + 1);
    expect(posts).toBeLessThan(replicas.length * 3);
    expect(replicas.reduce((n, r) => n + r.shared.stats.sharedHits, 0)).toBeGreaterThan(0);
    expect(firstExpiry).toBeGreaterThan(0);
  }, 60_000);

  it('Redis stopped mid-way: calls still succeed from each replica, the fallback is logged; back when Redis is', async () => {
    const a = replica('a');
    const b = replica('b');
    await a.cache.getToken(a.key);
    await b.cache.getToken(b.key);
    await redis.stop();
    try {
      // Force new tokens (as after a 401): each replica must reach the authority itself.
      const fa = await a.cache.getToken(a.key, { forceRefresh: true });
      const fb = await b.cache.getToken(b.key, { forceRefresh: true });
      expect(fa.source).toBe('network');
      expect(fb.source).toBe('network');
      for (let i = 0; i < 20; i++) {
        expect((await a.cache.getToken(a.key)).accessToken).toBeTruthy();
        expect((await b.cache.getToken(b.key)).accessToken).toBeTruthy();
      }
      expect(a.logs.join('\n')).toMatch(/Redis unavailable .*using this replica's own cache/);
      expect(a.shared.stats.fallbacks).toBeGreaterThan(0);
    } finally {
      await redis.start();
    }
    // Back: once each replica has reconnected, tokens are shared again: a new replica gets the
    // token another one published, without a request of its own.
    for (const r of [a, b]) {
      while (!r.logs.some((l) => /Redis is back/.test(l))) {
        await r.cache.getToken(r.key, { forceRefresh: true });
        await new Promise((res) => setTimeout(res, 50));
      }
    }
    const published = await a.cache.getToken(a.key, { forceRefresh: true });
    const c = replica('c');
    expect(await c.cache.getToken(c.key)).toMatchObject({
      source: 'shared',
      accessToken: published.accessToken,
    });
    expect(c.posts).toBe(0);
  }, 60_000);
});
