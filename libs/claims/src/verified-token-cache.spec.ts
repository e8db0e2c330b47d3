import { describe, expect, it } from 'vitest';
import { VerifiedTokenCache } from './verified-token-cache';

const SIG = 'S'.repeat(43);
const token = (body: string, sig = SIG) => `h.${body}.${sig}`;
const exp = Math.floor(Date.now() / 1000) + 600;

describe('VerifiedTokenCache', () => {
  it('given the time, drops an entry from its exp second on and counts a miss', () => {
    const cache = new VerifiedTokenCache<string>(10);
    cache.store(token('a'), 'p', { expiresAtSeconds: 1000 });
    expect(cache.lookup(token('a'), { nowSeconds: 999.5 })?.value).toBe('p');
    expect(cache.lookup(token('a'), { nowSeconds: 1000 })).toBeUndefined();
    expect(cache.size).toBe(0);
    expect([cache.hits, cache.misses]).toEqual([1, 1]);
  });

  it('answers only for exactly the token it stored', () => {
    const cache = new VerifiedTokenCache<string>(10);
    cache.store(token('a'), 'principal-a', { expiresAtSeconds: exp });
    expect(cache.lookup(token('a'))?.value).toBe('principal-a');
    // Same signature end, other payload: a miss, never the other token's principal.
    expect(cache.lookup(token('b'))).toBeUndefined();
    expect([cache.hits, cache.misses]).toEqual([1, 1]);
  });

  it('drops an entry whose signing keys are no longer the current ones', () => {
    const cache = new VerifiedTokenCache<string>(10);
    const keys = [{ kid: 'k1' }];
    cache.store(token('a'), 'p', { expiresAtSeconds: exp, keys });
    expect(cache.lookup(token('a'), { keys })).toBeDefined();
    expect(cache.lookup(token('a'), { keys: [{ kid: 'k1' }] })).toBeUndefined(); // a new fetch: new objects
    expect(cache.size).toBe(0);
  });

  it('does not store tokens without a numeric exp or with a non-numeric nbf', () => {
    const cache = new VerifiedTokenCache<string>(10);
    cache.store(token('a'), 'p', { expiresAtSeconds: undefined });
    cache.store(token('b', 'B'.repeat(43)), 'p', { expiresAtSeconds: '9999999999' });
    cache.store(token('c', 'C'.repeat(43)), 'p', { expiresAtSeconds: exp, notBeforeSeconds: 'soon' });
    cache.store(token('d', 'D'.repeat(43)), 'p', { expiresAtSeconds: Infinity });
    expect(cache.size).toBe(0);
  });

  it('evicts the least recently used entry when full, and stores nothing with size 0', () => {
    const cache = new VerifiedTokenCache<number>(2);
    const t = (i: number) => token(String(i), String(i).repeat(43));
    cache.store(t(1), 1, { expiresAtSeconds: exp });
    cache.store(t(2), 2, { expiresAtSeconds: exp });
    cache.lookup(t(1)); // 1 is now the most recent
    cache.store(t(3), 3, { expiresAtSeconds: exp });
    expect(cache.lookup(t(2))).toBeUndefined();
    expect(cache.lookup(t(1))?.value).toBe(1);
    const off = new VerifiedTokenCache<number>(0);
    off.store(t(1), 1, { expiresAtSeconds: exp });
    expect(off.size).toBe(0);
    expect(() => new VerifiedTokenCache(-1)).toThrow(/non-negative integer/);
  });

  it('forgets entries by a rule, and deletes one token', () => {
    const cache = new VerifiedTokenCache<{ kid: string }>(10);
    cache.store(token('a', 'A'.repeat(43)), { kid: 'old' }, { expiresAtSeconds: exp });
    cache.store(token('b', 'B'.repeat(43)), { kid: 'new' }, { expiresAtSeconds: exp });
    cache.forget((e) => e.value.kid === 'old');
    expect(cache.size).toBe(1);
    cache.delete(token('x', 'B'.repeat(43))); // another token with that end: not deleted
    expect(cache.size).toBe(1);
    cache.delete(token('b', 'B'.repeat(43)));
    expect(cache.size).toBe(0);
  });
});
