/**
 * The shared token tier's store is chosen by configuration alone: one worker, built from the
 * environment exactly as `serve` builds it, runs over two token lifetimes once with
 * PARTNER_TOKEN_STORE=redis (a real redis-server) and once with PARTNER_TOKEN_STORE=memory. The
 * code path is the same; in both it asks the authority once per token lifetime (the first token,
 * then one refresh ahead of each expiry), and the emulator agrees.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { startRedisServer } from '@certflow/testing';
import { http, LIFETIME_S, metric, useFacadeFixture } from './facade.test-helpers';

describe('PARTNER_TOKEN_STORE swaps the shared token store by configuration', () => {
  const f = useFacadeFixture();

  async function runOneWorker(name: string, storeEnv: Record<string, string>) {
    const { store } = await f.registeredCertificate(name);
    const { worker, facade, stop } = await f.inProcess(store.directory, [], storeEnv);
    const before = await f.issuedTokens();
    const durationMs = 2 * LIFETIME_S * 1000;
    const started = Date.now();
    let calls = 0;
    const failures: number[] = [];
    while (Date.now() - started < durationMs) {
      const answer = await http('GET', `${facade.url}/call/orders`);
      calls++;
      if (answer.status !== 200) failures.push(answer.status);
      await new Promise((r) => setTimeout(r, 20));
    }
    // Stopped before counting: its refresh timers would otherwise go on asking for tokens for the
    // same partner while the next run counts the emulator's tokens.
    await stop();
    const issued = (await f.issuedTokens()) - before;
    const metrics = await worker.metrics.render();
    return {
      worker,
      stats: { ...worker.shared!.stats },
      calls,
      failures,
      issued,
      requests: metric(metrics, 'partner_token_requests_total', 'outcome="success"'),
      refreshes: metric(metrics, 'partner_token_refreshes_total'),
    };
  }

  it('Redis, then the in-memory store: the same worker code, one token request per token lifetime in both', async () => {
    const redis = await startRedisServer();
    f.closers.push(() => redis.stop());
    const onRedis = await runOneWorker('store-redis', {
      PARTNER_TOKEN_STORE: 'redis',
      PARTNER_REDIS_URL: redis.url,
      PARTNER_CACHE_KEY: randomBytes(32).toString('base64'),
    });
    // The tokens really went through Redis: it holds the shared entry, encrypted.
    const client = new Redis(redis.url);
    f.closers.push(() => void client.disconnect());
    const keys = await client.keys('certflow:partner-token:*');
    expect(keys.filter((k) => !k.endsWith(':lock'))).toHaveLength(1);
    expect(await client.get(keys.find((k) => !k.endsWith(':lock'))!)).toMatch(/^v1\./);

    const inMemory = await runOneWorker('store-memory', { PARTNER_TOKEN_STORE: 'memory' });

    // Each store really carried the tokens: every fetch took the store's lock, none failed over.
    for (const { stats, requests } of [onRedis, inMemory]) {
      expect(Math.abs(stats.lockAcquired - requests)).toBeLessThanOrEqual(1); // read a moment apart
      expect(stats.lockAcquired).toBeGreaterThanOrEqual(1);
      expect(stats.storeErrors).toBe(0);
      expect(stats.fallbacks).toBe(0);
    }
    // Refresh ahead at about half of an 8-second lifetime (up to 20 % jitter): over two lifetimes,
    // the first token and 3 to 4 refreshes; never one per call.
    const atMost = Math.floor((2 * LIFETIME_S) / (0.4 * LIFETIME_S)) + 1;
    for (const run of [onRedis, inMemory]) {
      expect(run.failures).toEqual([]);
      expect(run.calls).toBeGreaterThan(100);
      expect(run.requests).toBe(1 + run.refreshes);
      expect(run.requests).toBeGreaterThanOrEqual(2);
      expect(run.requests).toBeLessThanOrEqual(atMost);
      // What the worker counts is what the emulator issued (read a moment apart: a refresh may fall between).
      expect(Math.abs(run.issued - run.requests)).toBeLessThanOrEqual(1);
    }
    expect(Math.abs(onRedis.requests - inMemory.requests)).toBeLessThanOrEqual(1);
  }, 90_000);
});
