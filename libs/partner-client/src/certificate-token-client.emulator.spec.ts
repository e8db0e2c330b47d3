/**
 * The certificate token client (real MSAL) against the real local Entra ID emulator
 * (tools/entra-emulator): register the partner, upload its .cer through the Graph API, get
 * tokens.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import type { GraphClient, RunningEmulator } from '@certflow/entra-emulator';
import { CertificateStore, type PartnerCredential } from './certificate-store';
import { CertificateTokenClient, TokenAcquisitionError } from './certificate-token-client';
import { startProvisionedEmulator } from './emulator.test-helpers';
import { HttpsNetworkClient } from './https-network-client';
import { rejectionOf, tempDir } from '@certflow/testing';

const API_URI = 'api://certflow-token-client-test';
const SCOPE = `${API_URI}/.default`;

describe('certificate token client against the Entra ID emulator', () => {
  const dir = tempDir();
  let emulator: RunningEmulator;
  let partner: { appId: string; objectId: string };
  let credential: PartnerCredential;
  let caPem: string;
  const networks: HttpsNetworkClient[] = [];

  function tokenClient(cred: PartnerCredential = credential) {
    const networkClient = new HttpsNetworkClient({ ca: caPem });
    networks.push(networkClient);
    const client = new CertificateTokenClient({
      entraInstance: emulator.url,
      tenantId: emulator.tenantId,
      clientId: partner.appId,
      scope: SCOPE,
      credential: cred,
      networkClient,
    });
    return { client, networkClient };
  }

  beforeAll(async () => {
    let graph: GraphClient;
    ({ emulator, caPem, graph, partner, credential } = await startProvisionedEmulator(dir.path, {
      name: 'token client test',
      apiIdentifierUri: API_URI,
      commonName: 'token-client-test',
    }));
    graph.close();
  }, 120_000);

  afterAll(async () => {
    networks.forEach((n) => n.close());
    await emulator?.close();
    dir.remove();
  });

  it('gets a token with the registered certificate: from the network, then from the cache', async () => {
    const { client, networkClient } = tokenClient();
    const first = await client.getToken();
    expect(first.source).toBe('network');
    const claims = decodeJwt(first.accessToken);
    expect(claims).toMatchObject({
      azp: partner.appId,
      azpacr: '2',
      idtyp: 'app',
      tid: emulator.tenantId,
      ver: '2.0',
      roles: ['Orders.Read'],
    });
    expect(first.expiresOn.getTime()).toBeGreaterThan(Date.now() + 30 * 60_000);

    const second = await client.getToken();
    expect(second).toMatchObject({ source: 'cache', accessToken: first.accessToken });
    expect(networkClient.requestCounts).toEqual({ get: 0, post: 1 });
  });

  it('sends one token request for 20 concurrent cold callers', async () => {
    const { client, networkClient } = tokenClient();
    const tokens = await Promise.all(Array.from({ length: 20 }, () => client.getToken()));
    expect(networkClient.requestCounts.post).toBe(1);
    expect(new Set(tokens.map((t) => t.accessToken)).size).toBe(1);
    expect(tokens.every((t) => t.source === 'network')).toBe(true);
  });

  it('surfaces AADSTS700027 for a certificate that is not registered', async () => {
    const unregistered = new CertificateStore(join(dir.path, 'unregistered')).create({
      commonName: 'not-uploaded',
    });
    const { client } = tokenClient(unregistered);
    const err = await rejectionOf<TokenAcquisitionError>(client.getToken());
    expect(err).toBeInstanceOf(TokenAcquisitionError);
    expect(err.aadsts).toBe('700027');
    expect(err.message).toMatch(/AADSTS700027/);
  });
});
