/** Gaps of issue #3 not covered elsewhere: the configurable clock skew, and a certificate before its validity period. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSelfSignedCertificate, pemToDer } from '@certflow/certs';
import { startEmulator } from '../src/emulator';
import {
  assertionForm,
  clientAssertion,
  postForm,
  removeDir,
  startFixture,
  tempStateDir,
  type Fixture,
} from '../src/emulator.test-helpers';

let relaxed: Fixture; // default skew (60 s)
let strict: Fixture; // clockSkewSeconds: 5
beforeAll(async () => {
  [relaxed, strict] = await Promise.all([startFixture(), startFixture({ clockSkewSeconds: 5 })]);
});
afterAll(async () => {
  await relaxed?.close();
  await strict?.close();
});

async function tokenStatus(
  f: Fixture,
  claims: Record<string, number>,
  cert = f.partnerCert,
  nowSeconds?: number,
) {
  const clientId = f.provisioned.partner.appId;
  const assertion = await clientAssertion(f.emulator.tokenEndpoint, clientId, cert, {
    claims,
    ...(nowSeconds ? { nowSeconds } : {}),
  });
  const res = await postForm(f.emulator, assertionForm(clientId, assertion));
  return { status: res.status, body: res.json() };
}

describe('clock skew on client assertions is configurable', () => {
  const now = () => Math.floor(Date.now() / 1000);
  it.each([
    ['exp 30 s in the past', () => ({ nbf: now() - 600, iat: now() - 600, exp: now() - 30 })],
    ['nbf 30 s in the future', () => ({ nbf: now() + 30, iat: now() + 30, exp: now() + 630 })],
  ])('%s: accepted with the default 60 s, refused with 700024 at 5 s', async (_name, claims) => {
    expect((await tokenStatus(relaxed, claims())).status).toBe(200);
    const refused = await tokenStatus(strict, claims());
    expect(refused.status).toBe(401);
    expect(refused.body.error).toBe('invalid_client');
    expect(refused.body.error_codes).toEqual([700024]);
  });

  it('a skew within the 5 s still passes (MSAL: nbf a second after iat)', async () => {
    expect((await tokenStatus(strict, { iat: now() - 1, nbf: now() + 2, exp: now() + 600 })).status).toBe(
      200,
    );
  });

  it('a negative or non-numeric skew stops start-up with ERR_INVALID_OPTIONS', async () => {
    for (const clockSkewSeconds of [-1, Number.NaN]) {
      const dir = tempStateDir();
      try {
        await expect(startEmulator({ stateDir: dir, clockSkewSeconds })).rejects.toMatchObject({
          code: 'ERR_INVALID_OPTIONS',
        });
      } finally {
        removeDir(dir);
      }
    }
  });
});

describe('certificate outside its validity period', () => {
  it('700027 for a registered certificate that is not valid yet (emulator clock before its notBefore)', async () => {
    const fresh = createSelfSignedCertificate({ commonName: 'not-yet' });
    await relaxed.graph.addCertificate(relaxed.provisioned.partner.objectId, pemToDer(fresh.certificatePem));
    const back = -2 * 86_400_000;
    relaxed.setClockOffset(back);
    try {
      const nowSeconds = Math.floor((Date.now() + back) / 1000);
      const refused = await tokenStatus(relaxed, {}, fresh, nowSeconds);
      expect(refused.status).toBe(401);
      expect(refused.body.error_codes).toEqual([700027]);
    } finally {
      relaxed.setClockOffset(0);
    }
    // Back in its validity period, the same certificate works.
    expect((await tokenStatus(relaxed, {}, fresh)).status).toBe(200);
  });
});
