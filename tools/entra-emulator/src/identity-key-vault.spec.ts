/**
 * Microsoft's @azure/identity, as an Azure SDK client (Key Vault's) uses it: a
 * ClientCertificateCredential with the emulator as its authority host gets a Key Vault token
 * from the emulator, over HTTPS trusted through the development CA, with a certificate made here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { ClientCertificateCredential } from '@azure/identity';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { createSelfSignedCertificate, type CertificateAndKey } from '@certflow/certs';
import { KEY_VAULT_RESOURCE } from './first-party';
import { https, startFixture, type Fixture } from './emulator.test-helpers';

describe('@azure/identity ClientCertificateCredential against the emulator', () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await startFixture();
  });
  afterAll(() => f.close());

  const credential = (cert: CertificateAndKey = f.partnerCert) =>
    new ClientCertificateCredential(
      f.emulator.tenantId,
      f.provisioned.partner.appId,
      { certificate: cert.privateKeyPem + cert.certificatePem },
      {
        authorityHost: f.emulator.url,
        disableInstanceDiscovery: true,
        tlsOptions: { ca: readFileSync(f.emulator.caCertificatePath, 'utf8') },
      },
    );

  it('gets a token for https://vault.azure.net/.default: aud https://vault.azure.net, v1, signed by a published key', async () => {
    const token = await credential().getToken(`${KEY_VAULT_RESOURCE}/.default`);
    expect(token.expiresOnTimestamp).toBeGreaterThan(Date.now() + 55 * 60_000);

    const jwks = (await https(f.emulator, f.emulator.jwksUri.replace('/v2.0/keys', '/keys'))).json();
    const { payload } = await jwtVerify(token.token, createLocalJWKSet(jwks as unknown as JSONWebKeySet), {
      audience: 'https://vault.azure.net',
      issuer: `https://sts.windows.net/${f.emulator.tenantId}/`,
    });
    expect(payload).toMatchObject({ appid: f.provisioned.partner.appId, appidacr: '2', ver: '1.0' });
    expect(payload).not.toHaveProperty('roles');
    expect(payload).not.toHaveProperty('certflow_test');
  });

  it('is refused AADSTS700027 with a certificate the application never registered', async () => {
    const unregistered = createSelfSignedCertificate({ commonName: 'contoso-partner' });
    await expect(credential(unregistered).getToken(`${KEY_VAULT_RESOURCE}/.default`)).rejects.toThrow(
      /AADSTS700027/,
    );
  });
});
