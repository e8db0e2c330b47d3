import { describe, expect, it } from 'vitest';
import type { AcquiredToken } from './certificate-token-client';
import { TokenCache, type FetchContext } from './token-cache';
import { rejectionOf } from '@certflow/testing';

const KEY = { authority: 'https://login.example/t', clientId: 'c', scope: 'api://x/.default' };
const OTHER = { ...KEY, scope: 'api://y/.default' };

/** A fetcher under the test's control: each call waits until the test settles it. */
function controlledFetcher() {
  const calls: { ctx: FetchContext; resolve(t: AcquiredToken): void; reject(e: Error): void }[] = [];
  const fetcher = (ctx: FetchContext) =>
    new Promise<AcquiredToken>((resolve, reject) => calls.push({ ctx, resolve, reject }));
  return { calls, fetcher };
}

function token(n: number, expiresAt: number): AcquiredToken {
  return { accessToken: `token-${n}`, expiresOn: new Date(expiresAt), source: 'network' };
}

const flush = () => new Promise((r) => setImmediate(r));

describe('TokenCache (controlled clock and fetcher)', () => {
  function setup() {
    let now = 1_000_000;
    const { calls, fetcher } = controlledFetcher();
    const cache = new TokenCache({
      fetcher,
      clock: { nowMs: () => now, now: () => new Date(now), offsetMs: 0 }, // frozen: moved by hand
      random: () => 0.5,
      proactive: false,
      refreshAheadMs: 600_000,
      minValidityMs: 60_000,
      retryBaseMs: 1_000,
    });
    return { cache, calls, advance: (ms: number) => (now += ms), at: () => now };
  }

  it('one fetch for 1,000 concurrent cold callers; then hits; keys are independent', async () => {
    const { cache, calls, at } = setup();
    const waiting = Array.from({ length: 1000 }, () => cache.getToken(KEY));
    await flush();
    expect(calls).toHaveLength(1);
    calls[0]!.resolve(token(1, at() + 3_600_000));
    const tokens = await Promise.all(waiting);
    expect(new Set(tokens.map((t) => t.accessToken))).toEqual(new Set(['token-1']));
    expect(tokens.every((t) => t.source === 'network')).toBe(true);
    expect(await cache.getToken(KEY)).toMatchObject({ accessToken: 'token-1', source: 'cache' });
    void cache.getToken(OTHER);
    await flush();
    expect(calls).toHaveLength(2);
    expect(cache.snapshot()).toMatchObject({ fetches: 2, hits: 1, entries: 2 });
  });

  it('a hit cannot be altered by a caller, and an equal key in a new object finds the same token', async () => {
    const { cache, calls, at } = setup();
    const cold = cache.getToken(KEY);
    await flush();
    calls[0]!.resolve(token(1, at() + 3_600_000));
    await cold;
    const hit = await cache.getToken(KEY);
    expect(() => {
      (hit as { accessToken: string }).accessToken = 'tampered';
    }).toThrow(TypeError);
    expect(await cache.getToken({ ...KEY })).toMatchObject({ accessToken: 'token-1', source: 'cache' });
    expect(calls).toHaveLength(1);
    cache.clear();
    const afterClear = cache.getToken(KEY);
    await flush();
    expect(calls).toHaveLength(2);
    calls[1]!.resolve(token(2, at() + 3_600_000));
    expect(await afterClear).toMatchObject({ accessToken: 'token-2' });
  });

  it('refreshes ahead of expiry in the background while callers get the current token', async () => {
    const { cache, calls, advance, at } = setup();
    const first = cache.getToken(KEY);
    await flush();
    calls[0]!.resolve(token(1, at() + 3_600_000));
    await first;
    // Lead 10 min + jitter 0.5 × 0.2 × 10 min = 11 min before expiry.
    advance(3_600_000 - 11 * 60_000 - 1);
    await cache.getToken(KEY);
    expect(calls).toHaveLength(1);
    advance(2);
    const during = await Promise.all([cache.getToken(KEY), cache.getToken(KEY)]);
    expect(during.map((t) => t.accessToken)).toEqual(['token-1', 'token-1']);
    expect(calls).toHaveLength(2);
    expect(calls[1]!.ctx).toMatchObject({ background: true, current: { accessToken: 'token-1' } });
    calls[1]!.resolve(token(2, at() + 3_600_000));
    await flush();
    expect(await cache.getToken(KEY)).toMatchObject({ accessToken: 'token-2', source: 'cache' });
  });

  it('retries a failed refresh with backoff while the token is valid, never serves an expired one', async () => {
    const { cache, calls, advance, at } = setup();
    const first = cache.getToken(KEY);
    await flush();
    const expiresAt = at() + 3_600_000;
    calls[0]!.resolve(token(1, expiresAt));
    await first;
    advance(3_600_000 - 11 * 60_000);
    await cache.getToken(KEY);
    calls[1]!.reject(new Error('authority down'));
    await flush();
    expect(cache.stats.refreshFailures).toBe(1);
    await cache.getToken(KEY); // within the backoff: no new attempt
    expect(calls).toHaveLength(2);
    advance(1_000);
    expect((await cache.getToken(KEY)).accessToken).toBe('token-1');
    expect(calls).toHaveLength(3);
    calls[2]!.reject(new Error('still down'));
    await flush();
    // Past the safety margin (60 s before expiry): callers wait for a fetch and see its error.
    advance(expiresAt - 60_000 - at());
    const waiting = cache.getToken(KEY);
    await flush();
    expect(calls).toHaveLength(4);
    expect(calls[3]!.ctx.background).toBe(false);
    calls[3]!.reject(new Error('down'));
    expect((await rejectionOf(waiting)).message).toBe('down');
  });

  it('refuses empty and already-expired tokens', async () => {
    const { cache, calls, at } = setup();
    const a = cache.getToken(KEY);
    await flush();
    calls[0]!.resolve({ accessToken: '', expiresOn: new Date(at() + 3_600_000), source: 'network' });
    expect((await rejectionOf(a)).message).toMatch(/empty/);
    const b = cache.getToken(KEY);
    await flush();
    calls[1]!.resolve(token(2, at() - 1));
    expect((await rejectionOf(b)).message).toMatch(/already expired/);
  });

  it('after a 401, many callers cause one forced fetch; a caller with an old rejected token gets the new one', async () => {
    const { cache, calls, at } = setup();
    const first = cache.getToken(KEY);
    await flush();
    calls[0]!.resolve(token(1, at() + 3_600_000));
    await first;
    const forced = Array.from({ length: 50 }, () =>
      cache.getToken(KEY, { forceRefresh: true, rejectedToken: 'token-1' }),
    );
    await flush();
    expect(calls).toHaveLength(2);
    expect(calls[1]!.ctx.forced).toBe(true);
    calls[1]!.resolve(token(2, at() + 3_600_000));
    expect(new Set((await Promise.all(forced)).map((t) => t.accessToken))).toEqual(new Set(['token-2']));
    const late = await cache.getToken(KEY, { forceRefresh: true, rejectedToken: 'token-1' });
    expect(late).toMatchObject({ accessToken: 'token-2', source: 'cache' });
    expect(calls).toHaveLength(2);
  });

  it('keeps lookups O(1): 10,000 keys, each served from its own entry', async () => {
    let n = 0;
    const cache = new TokenCache({
      fetcher: async (ctx) => token(++n, Date.now() + 3_600_000 + ctx.key.scope.length),
      proactive: false,
    });
    const keys = Array.from({ length: 10_000 }, (_, i) => ({ ...KEY, scope: `api://s${i}/.default` }));
    await Promise.all(keys.map((k) => cache.getToken(k)));
    expect(cache.size).toBe(10_000);
    const again = await Promise.all(keys.map((k) => cache.getToken(k)));
    expect(again.every((t) => t.source === 'cache')).toBe(true);
    expect(n).toBe(10_000);
  });
});
