/**
 * certflow's TokenCache in front of real MSAL against the real Entra ID emulator, with short
 * token lifetimes so that refresh-ahead, and the authority going down, happen within a test.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import {
  GraphClient,
  provisionApiAndPartner,
  startEmulator,
  type RunningEmulator,
} from '@certflow/entra-emulator';
import { CertificateStore, type PartnerCredential } from './certificate-store';
import { CertificateTokenClient } from './certificate-token-client';
import { HttpsNetworkClient } from './https-network-client';
import { tempDir } from './test-servers.test-helpers';
import { TokenCache, type CachedToken, type TokenCacheOptions, type TokenKey } from './token-cache';

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
  const closers: (() => void)[] = [];

  beforeAll(async () => {
    emulator = await startEmulator({ stateDir: join(dir.path, 'state'), tokenLifetimeSeconds: LIFETIME_S });
    port = Number(new URL(emulator.url).port);
    caPem = readFileSync(emulator.caCertificatePath, 'utf8');
    const graph = await GraphClient.connect(emulator);
    const provisioned = await provisionApiAndPartner(graph, {
      apiDisplayName: 'token cache test API',
      apiIdentifierUri: API_URI,
      roles: ['Orders.Read'],
      partnerDisplayName: 'token cache test partner',
      grantRoles: ['Orders.Read'],
    });
    partnerAppId = provisioned.partner.appId;
    credential = new CertificateStore(join(dir.path, 'partner')).create({ commonName: 'token-cache-test' });
    await graph.addCertificate(provisioned.partner.objectId, readFileSync(credential.cerPath), 'test');
  }, 120_000);

  afterAll(async () => {
    closers.forEach((c) => c());
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
    return { cache, network, key, fetched, failures };
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
});
