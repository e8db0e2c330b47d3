/** The real client library against the emulator: what the partner worker does in production. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import {
  ConfidentialClientApplication,
  type INetworkModule,
  type NetworkRequestOptions,
  type NetworkResponse,
} from '@azure/msal-node';
import { createSelfSignedCertificate, parseCertificate } from '@certflow/certs';
import { API_URI, decodeJwt, startFixture, type Fixture } from './emulator.test-helpers';
import { GraphClient } from './graph-client';
import { createProofOfPossession } from './proof-of-possession';

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f?.close();
});

/** MSAL's HTTP through node:https trusting only the development CA, recording what it sends. */
function networkClient(
  caPath: string,
  seen: { method: string; url: string; body?: string }[],
): INetworkModule {
  const ca = readFileSync(caPath);
  const send = <T>(
    method: string,
    url: string,
    options?: NetworkRequestOptions,
  ): Promise<NetworkResponse<T>> =>
    new Promise((resolve, reject) => {
      seen.push({ method, url, ...(options?.body ? { body: options.body } : {}) });
      const req = request(url, { method, ca, headers: options?.headers ?? {} }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => {
          const headers: Record<string, string> = {};
          for (const [name, value] of Object.entries(res.headers))
            if (value !== undefined) headers[name] = String(value);
          resolve({ headers, body: JSON.parse(text) as T, status: res.statusCode ?? 0 });
        });
      });
      req.on('error', reject);
      req.end(options?.body);
    });
  return {
    sendGetRequestAsync: (url, options) => send('GET', url, options),
    sendPostRequestAsync: (url, options) => send('POST', url, options),
  };
}

describe('@azure/msal-node ConfidentialClientApplication', () => {
  for (const variant of ['thumbprintSha256', 'thumbprint'] as const) {
    it(`gets a token with clientCertificate.${variant}, then serves it from its cache`, async () => {
      const seen: { method: string; url: string; body?: string }[] = [];
      const host = new URL(f.emulator.url).host;
      const thumbprints = parseCertificate(f.partnerCert.certificatePem).thumbprints;
      const cca = new ConfidentialClientApplication({
        auth: {
          clientId: f.provisioned.partner.appId,
          authority: f.emulator.authority,
          knownAuthorities: [host],
          clientCertificate:
            variant === 'thumbprintSha256'
              ? { thumbprintSha256: thumbprints.sha256Hex, privateKey: f.partnerCert.privateKeyPem }
              : { thumbprint: thumbprints.sha1Hex, privateKey: f.partnerCert.privateKeyPem },
        },
        system: { networkClient: networkClient(f.emulator.caCertificatePath, seen) },
      });

      const first = await cca.acquireTokenByClientCredential({ scopes: [`${API_URI}/.default`] });
      expect(first?.accessToken).toBeTruthy();
      expect(first?.fromCache).toBe(false);
      const claims = decodeJwt(first!.accessToken).payload;
      expect(claims).toMatchObject({
        aud: f.provisioned.api.appId,
        azp: f.provisioned.partner.appId,
        azpacr: '2',
        roles: ['Orders.Read'],
      });

      const post = seen.find((r) => r.method === 'POST')!;
      expect(post.url).toMatch(new RegExp(`^${f.emulator.tokenEndpoint}\\?client-request-id=`));
      const assertion = new URLSearchParams(post.body).get('client_assertion')!;
      const header = decodeJwt(assertion).header;
      expect(header.alg).toBe(variant === 'thumbprintSha256' ? 'PS256' : 'RS256');
      expect(header.kid).toBeUndefined();

      const second = await cca.acquireTokenByClientCredential({ scopes: [`${API_URI}/.default`] });
      expect(second?.fromCache).toBe(true);
      expect(seen.filter((r) => r.method === 'POST')).toHaveLength(1);
    });
  }

  it('surfaces AADSTS700027 through MSAL for an unregistered certificate', async () => {
    const stranger = createSelfSignedCertificate({ commonName: 'stranger' });
    const cca = new ConfidentialClientApplication({
      auth: {
        clientId: f.provisioned.partner.appId,
        authority: f.emulator.authority,
        knownAuthorities: [new URL(f.emulator.url).host],
        clientCertificate: {
          thumbprintSha256: parseCertificate(stranger.certificatePem).thumbprints.sha256Hex,
          privateKey: stranger.privateKeyPem,
        },
      },
      system: { networkClient: networkClient(f.emulator.caCertificatePath, []) },
    });
    await expect(
      cca.acquireTokenByClientCredential({ scopes: [`${API_URI}/.default`] }),
    ).rejects.toMatchObject({
      errorCode: 'invalid_client',
      errorMessage: expect.stringContaining(
        'Description: AADSTS700027: Client assertion contains an invalid signature',
      ),
    });
  });

  it('a partner rotates its own certificate with an MSAL-obtained Graph token, addKey and removeKey', async () => {
    const host = new URL(f.emulator.url).host;
    const ccaFor = (cert: { certificatePem: string; privateKeyPem: string }) =>
      new ConfidentialClientApplication({
        auth: {
          clientId: f.provisioned.partner.appId,
          authority: f.emulator.authority,
          knownAuthorities: [host],
          clientCertificate: {
            thumbprintSha256: parseCertificate(cert.certificatePem).thumbprints.sha256Hex,
            privateKey: cert.privateKeyPem,
          },
        },
        system: { networkClient: networkClient(f.emulator.caCertificatePath, []) },
      });
    const oldCert = f.partnerCert;
    const newCert = createSelfSignedCertificate({ commonName: 'contoso-partner next' });
    const oldCca = ccaFor(oldCert);
    const graphToken = await oldCca.acquireTokenByClientCredential({
      scopes: ['https://graph.microsoft.com/.default'],
    });
    const graph = GraphClient.withAccessToken(f.emulator, () => graphToken!.accessToken);
    const objectId = f.provisioned.partner.objectId;
    try {
      const added = await graph.addKey(
        objectId,
        newCert.certificatePem,
        await createProofOfPossession(objectId, oldCert),
      );
      const fresh = await ccaFor(newCert).acquireTokenByClientCredential({ scopes: [`${API_URI}/.default`] });
      expect(decodeJwt(fresh!.accessToken).payload).toMatchObject({
        azp: f.provisioned.partner.appId,
        azpacr: '2',
      });

      const oldKeyId = (await f.graph.getApplication(objectId)).keyCredentials.find(
        (k) => k.keyId !== added.keyId,
      )!.keyId;
      await graph.removeKey(objectId, oldKeyId, await createProofOfPossession(objectId, newCert));
      await expect(
        oldCca.acquireTokenByClientCredential({ scopes: [`${API_URI}/.default`], skipCache: true }),
      ).rejects.toMatchObject({
        errorCode: 'invalid_client',
        errorMessage: expect.stringContaining('AADSTS700027'),
      });
    } finally {
      graph.close();
      f.partnerCert = newCert;
    }
  });
});
