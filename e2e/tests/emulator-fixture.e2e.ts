/* The emulator fixture in a Playwright suite; the fixture part is the README's "In your own tests" example (checked there). */
// #region readme:playwright
import { test as base } from '@playwright/test';
import { startEmulatorFixture, type EmulatorFixture } from '@certflow/entra-emulator/testing';

const test = base.extend<object, { entra: EmulatorFixture }>({
  entra: [
    // eslint-disable-next-line no-empty-pattern -- Playwright reads the fixtures a fixture needs from this pattern
    async ({}, use) => {
      const entra = await startEmulatorFixture();
      await use(entra);
      await entra.close();
    },
    { scope: 'worker' },
  ],
});
// #endregion

import { expect } from '@playwright/test';
import { ConfidentialClientApplication } from '@azure/msal-node';
import { decodeJwt } from 'jose';

test('the partner gets a token for the API with its certificate, through MSAL', async ({ entra }) => {
  const msal = new ConfidentialClientApplication({
    auth: {
      clientId: entra.partner.appId,
      authority: entra.authority,
      knownAuthorities: [new URL(entra.url).host],
      clientCertificate: {
        thumbprintSha256: entra.partner.thumbprintSha256,
        privateKey: entra.partner.privateKeyPem,
      },
    },
    system: { networkClient: entra.networkClient },
  });
  const result = await msal.acquireTokenByClientCredential({ scopes: [entra.api.scope] });
  expect(decodeJwt(result!.accessToken)).toMatchObject({
    aud: entra.api.appId,
    azp: entra.partner.appId,
    roles: ['Orders.Read'],
  });
});
