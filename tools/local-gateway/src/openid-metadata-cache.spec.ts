import { describe, expect, it } from 'vitest';
import { OpenIdMetadataCache } from './openid-metadata-cache';

const URL_ = 'https://issuer.test/tid/v2.0/.well-known/openid-configuration';
const JWKS = 'https://issuer.test/tid/discovery/v2.0/keys';

function fakeIssuer() {
  const state = { clock: 1_000_000, pulls: 0, fail: false, kids: ['k1'] };
  const fetch = async (url: string): Promise<unknown> => {
    if (state.fail) throw new Error('connect ECONNREFUSED');
    if (url === URL_) {
      state.pulls++;
      return { issuer: 'https://issuer.test/tid/v2.0', jwks_uri: JWKS };
    }
    return { keys: state.kids.map((kid) => ({ kty: 'RSA', kid, n: 'AQAB', e: 'AQAB' })) };
  };
  const cache = new OpenIdMetadataCache(URL_, { now: () => state.clock, fetch });
  return { state, cache };
}

describe('OpenIdMetadataCache', () => {
  it('keeps metadata for 1 hour, then pulls again', async () => {
    const { state, cache } = fakeIssuer();
    expect((await cache.get()).issuer).toBe('https://issuer.test/tid/v2.0');
    state.clock += 59 * 60_000;
    await cache.get();
    expect(state.pulls).toBe(1);
    state.clock += 60_000;
    await cache.get();
    expect(state.pulls).toBe(2);
  });

  it('shares one pull between concurrent callers', async () => {
    const { state, cache } = fakeIssuer();
    await Promise.all([cache.get(), cache.get(), cache.get()]);
    expect(state.pulls).toBe(1);
  });

  it('pulls for an unknown kid at most once per 5 minutes', async () => {
    const { state, cache } = fakeIssuer();
    await cache.get();
    expect(await cache.refreshForUnknownKey()).toBeUndefined();
    state.clock += 5 * 60_000;
    state.kids.push('k2');
    const refreshed = await cache.refreshForUnknownKey();
    expect(refreshed?.jwks.keys.map((k) => k.kid)).toEqual(['k1', 'k2']);
    expect(await cache.refreshForUnknownKey()).toBeUndefined();
    expect(state.pulls).toBe(2);
  });

  it('serves stale metadata when a pull fails, and retries no sooner than 5 minutes later', async () => {
    const { state, cache } = fakeIssuer();
    await cache.get();
    state.fail = true;
    state.clock += 61 * 60_000;
    expect((await cache.get()).jwks.keys).toHaveLength(1); // stale, pull failed
    state.fail = false;
    state.clock += 60_000;
    await cache.get();
    expect(state.pulls).toBe(1); // throttled: still the stale copy
    state.clock += 4 * 60_000;
    await cache.get();
    expect(state.pulls).toBe(2);
  });

  it('fails with the reason when nothing was ever loaded', async () => {
    const { state, cache } = fakeIssuer();
    state.fail = true;
    await expect(cache.get()).rejects.toThrow(/ECONNREFUSED/);
    state.fail = false;
    await expect(cache.get()).rejects.toThrow(
      /is unavailable \(connect ECONNREFUSED\); next attempt in at most 300 s/,
    );
  });

  it('rejects metadata without an https jwks_uri', async () => {
    const cache = new OpenIdMetadataCache(URL_, {
      fetch: async () => ({ issuer: 'x', jwks_uri: 'http://insecure/keys' }),
    });
    await expect(cache.get()).rejects.toThrow(/"jwks_uri" must be an https:\/\/ URL/);
  });
});
