/**
 * certflow's TokenCache in front of real MSAL against the real Entra ID emulator, with short
 * token lifetimes so that refresh-ahead, and the authority going down, happen within a test.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PartnerCredential } from './certificate-store';
import { CertificateTokenClient, TokenAcquisitionError } from './certificate-token-client';
import { startProvisionedEmulator } from './emulator.test-helpers';
import { HttpsNetworkClient } from './https-network-client';
import { TokenCache, type CachedToken, type TokenCacheOptions, type TokenKey } from './token-cache';
import { decodeJwt } from 'jose';
import { NO_FAULTS, startEmulator, type GraphClient, type RunningEmulator } from '@certflow/entra-emulator';
import { rejectionOf, tempDir } from '@certflow/testing';

const API_URI = 'api://certflow-token-cache-test';
const SCOPE = `${API_URI}/.default`;
const LIFETIME_S = 8;

describe('TokenCache + MSAL + emulator', () => {
  const dir = tempDir();
  let emulator: RunningEmulator;
  let port: number;
  let partnerAppId: string;
  let credential: PartnerCredential;
  let caPem: string;
  let graph: GraphClient;
  const closers: (() => void)[] = [];

  beforeAll(async () => {
    ({
      emulator,
      caPem,
      graph,
      partner: { appId: partnerAppId },
      credential,
    } = await startProvisionedEmulator(dir.path, {
      name: 'token cache test',
      apiIdentifierUri: API_URI,
      tokenLifetimeSeconds: LIFETIME_S,
      commonName: 'token-cache-test',
    }));
    port = Number(new URL(emulator.url).port);
  }, 120_000);

  afterAll(async () => {
    closers.forEach((c) => c());
    graph?.close();
    await emulator?.close();
    dir.remove();
  });

  function worker(opts: Partial<TokenCacheOptions> = {}) {
    const network = new HttpsNetworkClient({ ca: caPem });
    const msal = new CertificateTokenClient({
      entraInstance: emulator.url,
      tenantId: emulator.tenantId,
      clientId: partnerAppId,
      scope: SCOPE,
      credential,
      networkClient: network,
    });
    const fetched: CachedToken[] = [];
    const failures: unknown[] = [];
    const cache = new TokenCache({
      fetcher: (ctx) => msal.fetchToken({ scope: ctx.key.scope, skipCache: true }),
      retryBaseMs: 200,
      retryMaxMs: 500,
      ...opts,
      events: { onFetched: (_k, t) => fetched.push(t), onRefreshFailed: (_k, e) => failures.push(e) },
    });
    closers.push(() => {
      cache.close();
      network.close();
    });
    const key: TokenKey = { authority: msal.authority, clientId: partnerAppId, scope: SCOPE };
    return { cache, network, key, fetched, failures, msal };
  }

  it('1,000 concurrent cold callers cause exactly one token request', async () => {
    const { cache, network, key } = worker();
    const tokens = await Promise.all(Array.from({ length: 1000 }, () => cache.getToken(key)));
    expect(network.requestCounts.post).toBe(1);
    expect(new Set(tokens.map((t) => t.accessToken)).size).toBe(1);
    expect(decodeJwt(tokens[0]!.accessToken)).toMatchObject({ azp: partnerAppId, roles: ['Orders.Read'] });
    await Promise.all(Array.from({ length: 1000 }, () => cache.getToken(key)));
    expect(network.requestCounts.post).toBe(1);
  });

  it('refreshes in the background before expiry (tokens MSAL would call expired), callers never wait or see an expired token', async () => {
    const { cache, network, key, fetched } = worker();
    const seen = new Set<string>();
    let waited = 0;
    await cache.getToken(key);
    while (fetched.length < 3) {
      const t = await cache.getToken(key);
      if (t.source !== 'cache') waited++;
      expect(t.expiresOn.getTime()).toBeGreaterThan(Date.now());
      seen.add(t.accessToken);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(waited).toBe(0); // only the first, cold call fetched in the caller's path
    expect(seen.size).toBeGreaterThanOrEqual(2);
    expect(network.requestCounts.post).toBe(3);
    expect(cache.stats.refreshes).toBe(2);
  }, 60_000);

  it('the authority down for the whole refresh window: no failed call while the token is valid; recovers when it is back', async () => {
    const { cache, key, fetched, failures } = worker();
    const first = await cache.getToken(key);
    await emulator.close();
    try {
      // Calls keep succeeding through the refresh window while background refreshes fail and back off.
      // Down from before the refresh window opens until shortly before the token's safety margin.
      let calls = 0;
      while (Date.now() < first.expiresOn.getTime() - 1_200) {
        const during = await cache.getToken(key);
        expect(during).toMatchObject({ accessToken: first.accessToken, source: 'cache' });
        calls++;
        await new Promise((r) => setTimeout(r, 25));
      }
      expect(calls).toBeGreaterThan(10);
      expect(failures.length).toBeGreaterThanOrEqual(2);
    } finally {
      emulator = await startEmulator({
        stateDir: join(dir.path, 'state'),
        port,
        tokenLifetimeSeconds: LIFETIME_S,
      });
    }
    // Back: the next refresh (background, or a caller's if the token ran out meanwhile) succeeds.
    let after = await cache.getToken(key);
    while (after.accessToken === first.accessToken) {
      await new Promise((r) => setTimeout(r, 25));
      after = await cache.getToken(key);
    }
    expect(fetched.length).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it("500s without Retry-After: no request until certflow's backoff has passed, then one; not MSAL's flat 60 s", async () => {
    const { cache, network, key } = worker();
    emulator.setFaults({ serverErrorShare: 1, serverErrorStatus: 500 });
    let firstError: TokenAcquisitionError | undefined;
    try {
      firstError = await rejectionOf<TokenAcquisitionError>(cache.getToken(key));
      expect(firstError.retryAt).toBeGreaterThan(Date.now());
      expect(network.requestCounts.post).toBe(1);
      // Callers during the backoff fail at once without reaching the authority.
      for (let i = 0; i < 20; i++) {
        const fast = await rejectionOf<TokenAcquisitionError>(cache.getToken(key));
        expect(fast.code).toBe('ERR_THROTTLED');
        expect(fast.message).toMatch(/not sent: the authority failed 1 time\(s\) in a row \(backing off\)/);
      }
      expect(network.requestCounts.post).toBe(1);
    } finally {
      emulator.setFaults(NO_FAULTS);
    }
    await new Promise((r) => setTimeout(r, Math.max(0, firstError!.retryAt! - Date.now()) + 50));
    // MSAL alone would refuse this for 60 s after the 503 (measured); certflow clears its throttle.
    const token = await cache.getToken(key);
    expect(token.source).toBe('network');
    expect(network.requestCounts.post).toBe(2);
  }, 30_000);

  it("a 429's Retry-After is honoured: no request before it, one after", async () => {
    const { cache, network, key } = worker();
    emulator.setFaults({ throttleShare: 1, retryAfterSeconds: 2 });
    let error: TokenAcquisitionError;
    const started = Date.now();
    try {
      error = await rejectionOf<TokenAcquisitionError>(cache.getToken(key));
    } finally {
      emulator.setFaults(NO_FAULTS);
    }
    expect(error.retryAt! - started).toBeGreaterThanOrEqual(1_900);
    expect((await rejectionOf<TokenAcquisitionError>(cache.getToken(key))).message).toMatch(
      /Retry-After\); next attempt at/,
    );
    expect(network.requestCounts.post).toBe(1);
    await new Promise((r) => setTimeout(r, Math.max(0, error.retryAt! - Date.now()) + 50));
    expect((await cache.getToken(key)).source).toBe('network');
    expect(network.requestCounts.post).toBe(2);
  }, 30_000);

  it('the authority answering 500 in the refresh window and back before the token runs out: no failed call, a fresh token in time', async () => {
    const { cache, network, key, fetched, failures } = worker();
    const first = await cache.getToken(key);
    emulator.setFaults({ serverErrorShare: 1, serverErrorStatus: 500 });
    const postsBefore = network.requestCounts.post;
    let cleared = false;
    try {
      let current = first;
      while (current.accessToken === first.accessToken) {
        if (!cleared && failures.length >= 1) {
          await new Promise((r) => setTimeout(r, 200));
          emulator.setFaults(NO_FAULTS);
          cleared = true;
        }
        current = await cache.getToken(key); // would throw once the token had run out
        expect(current.expiresOn.getTime()).toBeGreaterThan(Date.now());
        await new Promise((r) => setTimeout(r, 25));
      }
      expect(Date.now()).toBeLessThan(first.expiresOn.getTime());
    } finally {
      if (!cleared) emulator.setFaults(NO_FAULTS);
    }
    expect(cleared).toBe(true);
    expect(fetched.length).toBe(2);
    // The failed refreshes were paced by the backoff: a handful of requests, not a storm.
    expect(network.requestCounts.post - postsBefore).toBeLessThanOrEqual(4);
  }, 30_000);
});
