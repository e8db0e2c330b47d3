import { describe, expect, it } from 'vitest';
import type { AppPrincipal } from '@certflow/claims';
import { VerifiedTokenCache, type VerifiedToken } from './verified-token-cache';

const TENANT = '8f2b1c1e-5a4d-4c3b-9e8f-0a1b2c3d4e5f';
const principal: AppPrincipal = {
  tenantId: TENANT,
  clientAppId: '0b7c6d5e-4f3a-4b2c-9d1e-2f3a4b5c6d7e',
  objectId: '5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a',
  roles: ['Orders.Read'],
  clientAuthentication: 'certificate',
  tokenVersion: '2.0',
  audience: 'api://x',
};

function verified(overrides: Partial<VerifiedToken> = {}): VerifiedToken {
  return { principal, tenantId: TENANT, kid: 'key-1', expiresAtSeconds: 2_000, ...overrides };
}

describe('VerifiedTokenCache', () => {
  it('returns a remembered token until its exp, and nothing from that second on', () => {
    let now = 1_000_000;
    const cache = new VerifiedTokenCache(10, () => now);
    cache.remember('token-a', verified());
    expect(cache.lookup('token-a')?.principal).toEqual(principal);
    now = 1_999_999;
    expect(cache.lookup('token-a')).toBeDefined();
    now = 2_000_000;
    expect(cache.lookup('token-a')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('does not remember a token that has already expired', () => {
    const cache = new VerifiedTokenCache(10, () => 5_000_000);
    cache.remember('token-a', verified());
    expect(cache.size).toBe(0);
  });

  it('evicts the least recently used token beyond its bound', () => {
    const cache = new VerifiedTokenCache(2, () => 0);
    cache.remember('a', verified());
    cache.remember('b', verified());
    cache.lookup('a'); // a is now the most recently used
    cache.remember('c', verified());
    expect([cache.lookup('a'), cache.lookup('b'), cache.lookup('c')].map(Boolean)).toEqual([
      true,
      false,
      true,
    ]);
    expect(cache.size).toBe(2);
  });

  it('forgets the tokens of a removed signing key, in that tenant only', () => {
    const other = '0f0e0d0c-0000-4000-8000-000000000001';
    const cache = new VerifiedTokenCache(10, () => 0);
    cache.remember('old', verified({ kid: 'key-1' }));
    cache.remember('new', verified({ kid: 'key-2' }));
    cache.remember('other-tenant', verified({ kid: 'key-1', tenantId: other }));
    cache.forgetKeys(TENANT, ['key-1']);
    expect([cache.lookup('old'), cache.lookup('new'), cache.lookup('other-tenant')].map(Boolean)).toEqual([
      false,
      true,
      true,
    ]);
  });

  it('remembers nothing with a bound of 0 (disabled)', () => {
    const cache = new VerifiedTokenCache(0, () => 0);
    cache.remember('a', verified());
    expect(cache.lookup('a')).toBeUndefined();
  });

  it('keys by a hash: a token differing in one character is not a hit', () => {
    const cache = new VerifiedTokenCache(10, () => 0);
    cache.remember('header.payload.signature', verified());
    expect(cache.lookup('header.payload.signaturf')).toBeUndefined();
  });

  it('hands out a frozen principal that callers cannot alter for the next request', () => {
    const cache = new VerifiedTokenCache(10, () => 0);
    cache.remember('a', verified());
    const hit = cache.lookup('a')!;
    expect(Object.isFrozen(hit.principal)).toBe(true);
    expect(Object.isFrozen(hit.principal.roles)).toBe(true);
  });
});
