/**
 * apps/api/apim/policy.xml through the real gateway (tools/local-gateway) in front of the real
 * API, against the Entra ID emulator. The partner gets real tokens (client credentials with its
 * certificate, from the emulator's token endpoint), first while the API registration asks for
 * v2 tokens, then after it is switched back to v1 (`api.requestedAccessTokenVersion = 1`: aud is
 * the App ID URI, the issuer the tenant's v1 issuer). Both pass, as the policy's comment says;
 * tokens of another tenant or for another audience do not. The policy names no issuer: both
 * come from the tenant's two OpenID documents.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join, resolve } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ASSERTION_TYPE,
  certificateClientAssertion,
  GraphClient,
  provisionApiAndPartner,
  startEmulator,
  type ProvisionedApiAndPartner,
  type RunningEmulator,
} from '@certflow/entra-emulator';
import { startGateway, type RunningGateway } from '@certflow/local-gateway';
import { createSelfSignedCertificate, pemToDer, type CertificateAndKey } from '@certflow/certs';
import { tempDir } from '@certflow/testing';
import { startApi, type RunningApi } from '../src/api-app';
import { AppRole } from '../src/app-roles';
import { apiConfigFor } from '../src/testing/api-with-emulator.test-helpers';

const POLICY = resolve(__dirname, '../apim/policy.xml');
const API_URI = 'api://certflow-orders-token-versions';

const dir = tempDir('certflow-api-token-versions-');
let emulator: RunningEmulator;
let graph: GraphClient;
let registration: ProvisionedApiAndPartner;
let caPem: string;
let api: RunningApi;
let gateway: RunningGateway;
let partnerCertificate: CertificateAndKey;

beforeAll(async () => {
  const stateDir = join(dir.path, 'state');
  emulator = await startEmulator({ stateDir, port: 0 });
  caPem = readFileSync(emulator.caCertificatePath, 'utf8');
  graph = await GraphClient.connect(emulator);
  registration = await provisionApiAndPartner(graph, {
    apiDisplayName: 'orders API (token versions)',
    apiIdentifierUri: API_URI,
    roles: [AppRole.OrdersRead],
    partnerDisplayName: 'token versions partner',
    grantRoles: [AppRole.OrdersRead],
  });
  partnerCertificate = createSelfSignedCertificate({ commonName: 'token-versions-partner' });
  await graph.addCertificate(
    registration.partner.objectId,
    pemToDer(partnerCertificate.certificatePem),
    'partner',
  );
  // The API alone accepts both versions (its defaults) and both audiences.
  api = await startApi(apiConfigFor(emulator, { API_AUDIENCES: `${registration.api.appId},${API_URI}` }), {
    logger: false,
  });
  gateway = await startGateway({
    stateDir,
    port: 0,
    policyFile: POLICY,
    backendUrl: api.url,
    accessLog: false,
    trustedCaPem: caPem,
    namedValues: {
      'entra-instance': emulator.url,
      'tenant-id': emulator.tenantId,
      'api-app-id': registration.api.appId,
      'api-app-id-uri': API_URI,
    },
  });
}, 120_000);

afterAll(async () => {
  graph?.close();
  await gateway?.close();
  await api?.close();
  await emulator?.close();
  dir.remove();
});

function httpsRequest(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolveCall, reject) => {
    const req = request(url, { method: init.method ?? 'GET', ca: caPem, headers: init.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolveCall({
          status: res.statusCode ?? 0,
          body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>,
        }),
      );
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

/** A new access token for the partner (client credentials, certificate assertion). */
async function partnerToken(): Promise<string> {
  const clientId = registration.partner.appId;
  const { status, body } = await httpsRequest(emulator.tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: clientId,
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: await certificateClientAssertion(
        emulator.tokenEndpoint,
        clientId,
        partnerCertificate,
      ),
      scope: `${API_URI}/.default`,
    }).toString(),
  });
  expect(status, JSON.stringify(body)).toBe(200);
  return body['access_token'] as string;
}

/** GET /orders through the gateway. */
function callThroughGateway(token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return httpsRequest(`${gateway.url}/orders`, { headers: { authorization: `Bearer ${token}` } });
}

describe('policy.xml accepts the token version the API registration asks for', () => {
  it('passes a v2 token (aud = application id, v2.0 issuer)', async () => {
    const accessToken = await partnerToken();
    expect(decodeJwt(accessToken)).toMatchObject({
      ver: '2.0',
      aud: registration.api.appId,
      iss: `${emulator.url}/${emulator.tenantId}/v2.0`,
    });
    expect(await callThroughGateway(accessToken)).toMatchObject({
      status: 200,
      body: { orders: expect.any(Array) },
    });
  });

  it('passes a v1 token once the registration is switched back to v1 (aud = App ID URI, v1 issuer)', async () => {
    await graph.updateApplication(registration.api.objectId, { api: { requestedAccessTokenVersion: 1 } });
    try {
      const accessToken = await partnerToken();
      const claims = decodeJwt(accessToken);
      expect(claims).toMatchObject({ ver: '1.0', aud: API_URI, roles: [AppRole.OrdersRead] });
      expect(claims.iss).not.toContain('/v2.0');
      expect(await callThroughGateway(accessToken)).toMatchObject({
        status: 200,
        body: { orders: expect.any(Array) },
      });
    } finally {
      await graph.updateApplication(registration.api.objectId, { api: { requestedAccessTokenVersion: 2 } });
    }
  });
});

describe('policy.xml refuses', () => {
  /** The claims of a real v1 token of this tenant, signed by the emulator's own key, changed by `overrides`. */
  async function v1TokenWith(overrides: Record<string, unknown>): Promise<string> {
    await graph.updateApplication(registration.api.objectId, { api: { requestedAccessTokenVersion: 1 } });
    try {
      const accessToken = await partnerToken();
      return await emulator.signAccessToken({ ...decodeJwt(accessToken), ...overrides });
    } finally {
      await graph.updateApplication(registration.api.objectId, { api: { requestedAccessTokenVersion: 2 } });
    }
  }

  it('a v1 token issued for another tenant (its v1 issuer is in neither document)', async () => {
    const otherTenant = '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0';
    const issuer = (decodeJwt(await v1TokenWith({})).iss ?? '').replace(emulator.tenantId, otherTenant);
    expect(issuer).toContain(otherTenant);
    const answer = await callThroughGateway(await v1TokenWith({ iss: issuer, tid: otherTenant }));
    expect(answer).toEqual({
      status: 401,
      body: { statusCode: 401, message: expect.stringMatching(/issuer/i) },
    });
  });

  it('a v2 token issued for another tenant', async () => {
    const accessToken = await partnerToken();
    const otherTenant = '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0';
    const token = await emulator.signAccessToken({
      ...decodeJwt(accessToken),
      iss: `${emulator.url}/${otherTenant}/v2.0`,
      tid: otherTenant,
    });
    expect((await callThroughGateway(token)).status).toBe(401);
  });

  it('a v1 token for another audience', async () => {
    const answer = await callThroughGateway(await v1TokenWith({ aud: 'api://someone-else' }));
    expect(answer).toEqual({
      status: 401,
      body: {
        statusCode: 401,
        message: 'Claim aud value of api://someone-else is not allowed. Access denied.',
      },
    });
  });
});
