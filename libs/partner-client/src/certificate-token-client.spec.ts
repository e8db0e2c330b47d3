import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CertificateTokenClient,
  TokenAcquisitionError,
  authorityFor,
  toThumbprintHex,
  type TokenClientCredential,
} from './certificate-token-client';
import { HttpsNetworkClient } from './https-network-client';
import { randomUUID } from 'node:crypto';
import { DevelopmentCa, createSelfSignedCertificate, fileKeySigner, parseCertificate } from '@certflow/certs';
import { startStubAuthority, tempDir, type StubAuthority, rejectionOf } from '@certflow/testing';

function credential(): TokenClientCredential {
  const pair = createSelfSignedCertificate({ commonName: 'partner' });
  return {
    privateKeyPem: pair.privateKeyPem,
    certificate: parseCertificate(pair.certificatePem),
    signer: fileKeySigner(pair.privateKeyPem, 'partner.key.pem'),
  };
}

describe('toThumbprintHex', () => {
  const hex = 'ab'.repeat(32);
  it('accepts hex with or without colons, any case', () => {
    expect(toThumbprintHex(hex)).toBe(hex.toUpperCase());
    expect(toThumbprintHex(hex.match(/../g)!.join(':'))).toBe(hex.toUpperCase());
    expect(toThumbprintHex('AB'.repeat(20), 20)).toBe('AB'.repeat(20));
  });
  it('rejects base64, base64url and the wrong length', () => {
    expect(() => toThumbprintHex(Buffer.from(hex, 'hex').toString('base64url'))).toThrow(/64 hex digits/);
    expect(() => toThumbprintHex(Buffer.from(hex, 'hex').toString('base64'))).toThrow(/SHA-256/);
    expect(() => toThumbprintHex('AB'.repeat(20))).toThrow();
  });
  it('builds the authority from instance and tenant', () => {
    expect(authorityFor('https://localhost:8443/', 't')).toBe('https://localhost:8443/t');
  });
});

describe('CertificateTokenClient against a local token endpoint', () => {
  const dir = tempDir();
  const tenantId = randomUUID();
  const clientId = randomUUID();
  const registered = credential();
  let ca: DevelopmentCa;
  let authority: StubAuthority;
  const networks: HttpsNetworkClient[] = [];

  function client(cred = registered, caPem = ca.certificatePem) {
    const networkClient = new HttpsNetworkClient({ ca: caPem });
    networks.push(networkClient);
    const c = new CertificateTokenClient({
      entraInstance: authority.url,
      tenantId,
      clientId,
      scope: 'api://certflow-orders/.default',
      credential: cred,
      networkClient,
    });
    return { c, networkClient };
  }

  beforeAll(async () => {
    ca = DevelopmentCa.loadOrCreate(dir.path);
    authority = await startStubAuthority(ca, { tenantId, clientId, registered: registered.certificate });
  });
  afterEach(() => {
    authority.respond(0, {});
    authority.delayMs = 0;
  });
  afterAll(async () => {
    networks.forEach((n) => n.close());
    await authority.close();
    dir.remove();
  });

  it('gets a token from the network (PS256 + x5t#S256, no discovery request), then from the cache', async () => {
    const before = authority.tokenRequests;
    const { c, networkClient } = client();
    const first = await c.getToken();
    expect(first.source).toBe('network');
    expect(first.accessToken.split('.')).toHaveLength(3);
    expect(first.expiresOn.getTime()).toBeGreaterThan(Date.now() + 3000_000);
    const second = await c.getToken();
    expect(second).toMatchObject({ source: 'cache', accessToken: first.accessToken });
    expect(authority.tokenRequests - before).toBe(1);
    expect(networkClient.requestCounts).toEqual({ get: 0, post: 1 });
    expect(authority.assertions.at(-1)).toMatchObject({
      alg: 'PS256',
      'x5t#S256': registered.certificate.thumbprints.sha256Base64Url,
    });

    const fresh = await c.getToken({ forceRefresh: true });
    expect(fresh.source).toBe('network');
    expect(authority.tokenRequests - before).toBe(2);
  });

  it('makes one token request for 20 concurrent cold callers', async () => {
    authority.delayMs = 50;
    const before = authority.tokenRequests;
    const { c } = client();
    const tokens = await Promise.all(Array.from({ length: 20 }, () => c.getToken()));
    expect(authority.tokenRequests - before).toBe(1);
    expect(new Set(tokens.map((t) => t.accessToken)).size).toBe(1);
  });

  it('surfaces AADSTS700027 when the certificate is not registered', async () => {
    const { c } = client(credential());
    const err = await rejectionOf<TokenAcquisitionError>(c.getToken());
    expect(err).toBeInstanceOf(TokenAcquisitionError);
    expect(err.aadsts).toBe('700027');
    expect(err.code).toBe('invalid_client');
    expect(err.message).toMatch(/AADSTS700027/);
  });

  it('treats a response without access_token as an error', async () => {
    authority.respond(200, { token_type: 'Bearer', expires_in: 3600 });
    const { c } = client();
    const err = await rejectionOf<TokenAcquisitionError>(c.getToken());
    expect(err.code).toBe('ERR_EMPTY_TOKEN');
  });

  it('names the TLS cause when the authority is not trusted', async () => {
    const other = DevelopmentCa.loadOrCreate(`${dir.path}/other`);
    const { c } = client(registered, other.certificatePem);
    const err = await rejectionOf<TokenAcquisitionError>(c.getToken());
    expect(err.code).toBe('network_error');
    expect(err.message).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER/);
  });
});
