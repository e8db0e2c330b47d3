/**
 * Rotation against the real emulator's Graph addKey/removeKey: the partner registers its next
 * certificate itself (proof signed by the current one, its own Graph token), switches the
 * running client without a restart, removes the old one; continuous calls never fail.
 * (`cert rotate` on the command line is tested in apps/partner-worker.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from './api-client';
import { CertificateStore, type PartnerCredential } from './certificate-store';
import { CertificateTokenClient, TokenAcquisitionError } from './certificate-token-client';
import { startProvisionedEmulator } from './emulator.test-helpers';
import { HttpsNetworkClient } from './https-network-client';
import { createProofOfPossession, rotateCertificate } from './rotation';
import { TokenCache } from './token-cache';
import type { GraphClient, RunningEmulator } from '@certflow/entra-emulator';
import { rejectionOf, tempDir } from '@certflow/testing';

const API_URI = 'api://certflow-rotation-test';
const SCOPE = `${API_URI}/.default`;
const GRAPH_SCOPE = 'https://graph.microsoft.com/.default';

describe('certificate rotation with Graph addKey/removeKey', () => {
  const dir = tempDir();
  let emulator: RunningEmulator;
  let admin: GraphClient;
  let partner: { appId: string; objectId: string };
  let caPem: string;
  const closers: (() => void)[] = [];

  beforeAll(async () => {
    ({
      emulator,
      caPem,
      graph: admin,
      partner,
    } = await startProvisionedEmulator(dir.path, {
      name: 'rotation test',
      apiIdentifierUri: API_URI,
      tokenLifetimeSeconds: 8,
    }));
  }, 120_000);

  afterAll(async () => {
    closers.forEach((c) => c());
    admin?.close();
    await emulator?.close();
    dir.remove();
  });

  function tokenClient(credential: PartnerCredential, scope = SCOPE) {
    const network = new HttpsNetworkClient({ ca: caPem });
    closers.push(() => network.close());
    return new CertificateTokenClient({
      entraInstance: emulator.url,
      tenantId: emulator.tenantId,
      clientId: partner.appId,
      scope,
      credential,
      networkClient: network,
    });
  }

  /** Graph as the partner itself: its own token (client credentials with its current certificate). */
  function partnerGraph(credential: PartnerCredential) {
    const client = tokenClient(credential, GRAPH_SCOPE);
    const graph = new ApiClient({
      baseUrl: emulator.graphUrl,
      tokens: { getToken: () => client.fetchToken({ skipCache: true }) },
      ca: caPem,
    });
    closers.push(() => graph.close());
    return graph;
  }

  it('rotates under continuous calls: no failed call; the old certificate stops working, the new one works', async () => {
    const store = new CertificateStore(join(dir.path, 'partner'));
    const first = store.create({ commonName: 'rotating-partner' });
    const uploaded = await admin.addCertificate(partner.objectId, readFileSync(first.cerPath), 'first');

    // The running worker: a token cache whose fetcher uses whichever client is active.
    let active = tokenClient(first);
    const cache = new TokenCache({
      fetcher: (ctx) => active.fetchToken({ scope: ctx.key.scope, skipCache: true }),
    });
    closers.push(() => cache.close());
    const key = { authority: active.authority, clientId: partner.appId, scope: SCOPE };

    let calls = 0;
    const failures: unknown[] = [];
    let running = true;
    const load = (async () => {
      while (running) {
        try {
          await cache.getToken(key);
          calls++;
        } catch (err) {
          failures.push(err);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();

    const result = await rotateCertificate({
      store,
      current: first,
      applicationObjectId: partner.objectId,
      graph: partnerGraph(first),
      oldKeyId: uploaded.keyId,
      graceMs: 200,
      onSwitch: (next) => {
        active = tokenClient(next);
      },
    });
    // Forced refreshes with the new certificate while the calls continue.
    await cache.getToken(key, { forceRefresh: true });
    running = false;
    await load;

    expect(result).toMatchObject({ status: 'rotated', removedKeyId: uploaded.keyId });
    expect(failures).toEqual([]);
    expect(calls).toBeGreaterThan(0);
    const stored = store.load();
    expect(stored.certificate.thumbprints.sha256Hex).not.toBe(first.certificate.thumbprints.sha256Hex);
    expect(readFileSync(join(store.directory, 'partner.key-id'), 'utf8').trim()).toBe(
      result.status === 'rotated' ? result.keyId : '',
    );
    expect(readFileSync(join(store.directory, 'previous/partner.cer')).equals(first.certificate.der)).toBe(
      true,
    );

    const old = await rejectionOf<TokenAcquisitionError>(tokenClient(first).fetchToken({ skipCache: true }));
    expect(old.aadsts).toBe('700027');
    expect((await tokenClient(stored).fetchToken({ skipCache: true })).accessToken).toBeTruthy();

    // The second rotation knows the keyId to remove from partner.key-id.
    const second = await rotateCertificate({
      store,
      current: stored,
      applicationObjectId: partner.objectId,
      graph: partnerGraph(stored),
    });
    expect(second).toMatchObject({
      status: 'rotated',
      removedKeyId: result.status === 'rotated' ? result.keyId : '',
    });
  }, 60_000);

  it('where addKey is refused, keeps the next key pair and names the .cer to send', async () => {
    const store = new CertificateStore(join(dir.path, 'refused'));
    const registered = store.create({ commonName: 'registered' });
    await admin.addCertificate(partner.objectId, readFileSync(registered.cerPath), 'registered');
    // A proof signed by a certificate that is not registered: Graph refuses it.
    const stranger = new CertificateStore(join(dir.path, 'stranger')).create({ commonName: 'stranger' });
    const result = await rotateCertificate({
      store,
      current: stranger,
      applicationObjectId: partner.objectId,
      graph: partnerGraph(registered),
    });
    expect(result.status).toBe('refused');
    if (result.status !== 'refused') return;
    expect(result.nextCerPath).toBe(join(store.directory, 'next', 'partner.cer'));
    expect(result.message).toMatch(/send .*next\/partner\.cer to the API owner/);
    expect(store.load().certificate.thumbprints).toEqual(registered.certificate.thumbprints); // unchanged
  }, 60_000);

  it('builds the proof Graph expects', () => {
    const cred = new CertificateStore(join(dir.path, 'proof')).create();
    const proof = createProofOfPossession(
      '11111111-1111-1111-1111-111111111111',
      cred,
      new Date(1_800_000_000_000),
    );
    const [h, p] = proof.split('.');
    expect(JSON.parse(Buffer.from(h!, 'base64url').toString())).toEqual({
      alg: 'RS256',
      typ: 'JWT',
      x5t: cred.certificate.thumbprints.sha1Base64Url,
    });
    expect(JSON.parse(Buffer.from(p!, 'base64url').toString())).toMatchObject({
      aud: '00000002-0000-0000-c000-000000000000',
      iss: '11111111-1111-1111-1111-111111111111',
      nbf: 1_800_000_000,
      exp: 1_800_000_600,
    });
  });
});
