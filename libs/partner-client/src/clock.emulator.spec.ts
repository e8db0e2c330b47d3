/**
 * The partner on a shifted clock, shared with the real Entra ID emulator: real MSAL, a real
 * certificate made now and registered through Graph. Moving the clock, not waiting, takes the
 * token cache into refresh-ahead and past expiry.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { OffsetClock } from '@certflow/clock';
import type { GraphClient, RunningEmulator } from '@certflow/entra-emulator';
import { rejectionOf, tempDir } from '@certflow/testing';
import type { PartnerCredential } from './certificate-store';
import { CertificateTokenClient, TokenAcquisitionError } from './certificate-token-client';
import { startProvisionedEmulator } from './emulator.test-helpers';
import { HttpsNetworkClient } from './https-network-client';
import { TokenCache, type CachedToken, type TokenKey } from './token-cache';

const API_URI = 'api://certflow-clock-test';
const SCOPE = `${API_URI}/.default`;
const LIFETIME_MS = 3_600_000;
const MINUTE = 60_000;

describe('a clock shifted for the partner and the emulator alike', () => {
  const dir = tempDir();
  const clock = new OffsetClock();
  let emulator: RunningEmulator;
  let graph: GraphClient;
  let partnerAppId: string;
  let credential: PartnerCredential;
  let network: HttpsNetworkClient;

  beforeAll(async () => {
    let caPem: string;
    ({
      emulator,
      caPem,
      graph,
      partner: { appId: partnerAppId },
      credential,
    } = await startProvisionedEmulator(dir.path, {
      name: 'clock test',
      apiIdentifierUri: API_URI,
      tokenLifetimeSeconds: LIFETIME_MS / 1000,
      commonName: 'clock-test',
      now: () => clock.now(),
    }));
    network = new HttpsNetworkClient({ ca: caPem });
  }, 120_000);

  beforeEach(() => clock.set(0));

  afterAll(async () => {
    network?.close();
    graph?.close();
    await emulator?.close();
    dir.remove();
  });

  const client = (withClock: boolean) =>
    new CertificateTokenClient({
      entraInstance: emulator.url,
      tenantId: emulator.tenantId,
      clientId: partnerAppId,
      scope: SCOPE,
      credential,
      networkClient: network,
      ...(withClock ? { clock } : {}),
    });

  it('refreshes ahead of expiry, and past it fetches anew, as the clock moves', async () => {
    const msal = client(true);
    const fetched: CachedToken[] = [];
    const cache = new TokenCache({
      clock,
      proactive: false,
      fetcher: (ctx) => msal.fetchToken({ scope: ctx.key.scope, skipCache: true }),
      events: { onFetched: (_key, token) => fetched.push(token) },
    });
    const key: TokenKey = { authority: msal.authority, clientId: partnerAppId, scope: SCOPE };
    try {
      const first = await cache.getToken(key);
      expect(first.source).toBe('network');
      expect(Math.abs(first.expiresOn.getTime() - (clock.nowMs() + LIFETIME_MS))).toBeLessThan(5_000);

      // Five minutes before expiry: inside refresh-ahead (10 minutes), still usable.
      clock.set(LIFETIME_MS - 5 * MINUTE);
      expect((await cache.getToken(key)).accessToken).toBe(first.accessToken);
      await until(() => fetched.length === 2);
      const second = await cache.getToken(key);
      expect(second.source).toBe('cache');
      expect(second.accessToken).not.toBe(first.accessToken);
      // The emulator dated it by the shifted clock, and so does the client.
      const exp = decodeJwt(second.accessToken).exp! * 1000;
      expect(Math.abs(exp - (clock.nowMs() + LIFETIME_MS))).toBeLessThan(5_000);
      expect(Math.abs(second.expiresOn.getTime() - exp)).toBeLessThan(5_000);
      expect(cache.stats).toMatchObject({ fetches: 2, refreshes: 1, misses: 1 });

      // Past that token's expiry: no usable token, a caller waits for a new one.
      clock.set(clock.offsetMs + LIFETIME_MS + MINUTE);
      const third = await cache.getToken(key);
      expect(third.source).toBe('network');
      expect(cache.stats).toMatchObject({ fetches: 3, refreshes: 1, misses: 2 });
    } finally {
      cache.close();
    }
  });

  it("MSAL's own assertion is dated by the real time: refused by an authority an hour ahead", async () => {
    clock.set(LIFETIME_MS);
    const err = await rejectionOf(client(false).fetchToken({ skipCache: true }));
    expect(err).toBeInstanceOf(TokenAcquisitionError);
    expect((err as TokenAcquisitionError).aadsts).toBeDefined();
    // The same key on the shared clock signs its own assertion, and is answered.
    expect((await client(true).fetchToken({ skipCache: true })).source).toBe('network');
  });
});

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
