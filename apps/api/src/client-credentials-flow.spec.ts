/**
 * Steps 1–8 without the gateway: app registrations made through the emulator's Graph API, the
 * partner's certificate uploaded, a client assertion signed with its private key exchanged at
 * the emulator's token endpoint, and the real access token presented to the API.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, importPKCS8 } from 'jose';
import { createSelfSignedCertificate, parseCertificate, type CertificateAndKey } from '@certflow/certs';
import {
  ASSERTION_TYPE,
  GraphClient,
  provisionApiAndPartner,
  startEmulator,
  type RunningEmulator,
} from '@certflow/entra-emulator';
import { startApi, type RunningApi } from './api-app';
import { loadApiConfig } from './config/api-config';

const API_URI = 'api://certflow-orders-flow';

let stateDir: string;
let emulator: RunningEmulator;
let api: RunningApi;
let graph: GraphClient;
let apiAppId: string;

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'certflow-api-flow-'));
  emulator = await startEmulator({ stateDir, port: 0 });
  graph = await GraphClient.connect(emulator);
  const provisioned = await provisionApiAndPartner(graph, {
    apiDisplayName: 'certflow orders (flow test)',
    apiIdentifierUri: API_URI,
    roles: ['Orders.Read', 'Orders.Write'],
    partnerDisplayName: 'contoso (flow test)',
    grantRoles: ['Orders.Read'],
  });
  apiAppId = provisioned.api.appId;
  api = await startApi(
    loadApiConfig({
      PORT: '0',
      ENTRA_INSTANCE: emulator.url,
      ENTRA_TENANT_ID: emulator.tenantId,
      API_AUDIENCES: `${apiAppId},${API_URI}`,
      ENTRA_CA_FILE: emulator.caCertificatePath,
    }),
    { logger: false },
  );
});

afterAll(async () => {
  await api?.close();
  await emulator?.close();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

/** A partner registration with a certificate (and optionally roles on the API). */
async function registerPartner(
  grantRoles: string[],
): Promise<{ appId: string; objectId: string; credentials: CertificateAndKey }> {
  const partner = await graph.createApplication({ displayName: `partner ${randomUUID()}` });
  const sp = await graph.createServicePrincipal(partner.appId);
  const apiSp = await graph.findServicePrincipalByAppId(apiAppId);
  const apiApp = (await graph.listApplications()).find((a) => a.appId === apiAppId)!;
  for (const role of grantRoles) {
    const appRoleId = apiApp.appRoles.find((r) => r.value === role)!.id;
    await graph.assignAppRole({ principalId: sp.id, resourceId: apiSp!.id, appRoleId });
  }
  const credentials = createSelfSignedCertificate({ commonName: 'partner' });
  await graph.addCertificate(partner.id, credentials.certificatePem, 'flow test');
  return { appId: partner.appId, objectId: partner.id, credentials };
}

/** Step 5: the client assertion, as MSAL builds it with `thumbprintSha256` (PS256 + x5t#S256). */
async function clientAssertion(clientId: string, credentials: CertificateAndKey): Promise<string> {
  const x5tS256 = parseCertificate(credentials.certificatePem).thumbprints.sha256Base64Url;
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ jti: randomUUID() })
    .setProtectedHeader({ alg: 'PS256', typ: 'JWT', 'x5t#S256': x5tS256 })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(emulator.tokenEndpoint)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + 600)
    .sign(await importPKCS8(credentials.privateKeyPem, 'PS256'));
}

/** Step 6: POST /{tenant}/oauth2/v2.0/token over HTTPS trusting the development CA. */
async function requestToken(form: Record<string, string>): Promise<string> {
  const body = new URLSearchParams({
    grant_type: 'client_credentials',
    scope: `${API_URI}/.default`,
    ...form,
  }).toString();
  const ca = readFileSync(emulator.caCertificatePath);
  const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(
      emulator.tokenEndpoint,
      { method: 'POST', ca, headers: { 'content-type': 'application/x-www-form-urlencoded' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject).end(body);
  });
  if (status !== 200) throw new Error(`token endpoint answered ${status}: ${text}`);
  return (JSON.parse(text) as { access_token: string }).access_token;
}

async function getOrders(token: string, target: RunningApi = api) {
  const response = await fetch(`${target.url}/orders`, { headers: { authorization: `Bearer ${token}` } });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Another API on the same emulator, with authorization options from the environment. */
async function startApiWith(env: Record<string, string>): Promise<RunningApi> {
  return startApi(
    loadApiConfig({
      PORT: '0',
      ENTRA_INSTANCE: emulator.url,
      ENTRA_TENANT_ID: emulator.tenantId,
      API_AUDIENCES: `${apiAppId},${API_URI}`,
      ENTRA_CA_FILE: emulator.caCertificatePath,
      ...env,
    }),
    { logger: false },
  );
}

/** Steps 5–6 for a partner: a token obtained with its certificate. */
async function certificateToken(partner: { appId: string; credentials: CertificateAndKey }): Promise<string> {
  return requestToken({
    client_id: partner.appId,
    client_assertion_type: ASSERTION_TYPE,
    client_assertion: await clientAssertion(partner.appId, partner.credentials),
  });
}

/** A token for the same partner obtained with a client secret added through Graph. */
async function secretToken(partner: { appId: string; objectId: string }): Promise<string> {
  const secret = await graph.addPassword(partner.objectId, 'comparison');
  return requestToken({ client_id: partner.appId, client_secret: secret.secretText! });
}

describe('a partner with a registered certificate', () => {
  it('reads orders with the token it got for its client assertion, seen as a certificate client', async () => {
    const partner = await registerPartner(['Orders.Read']);
    const token = await requestToken({
      client_id: partner.appId,
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: await clientAssertion(partner.appId, partner.credentials),
    });
    const { status, body } = await getOrders(token);
    expect(status).toBe(200);
    expect(body['caller']).toEqual({
      clientAppId: partner.appId,
      tenantId: emulator.tenantId,
      roles: ['Orders.Read'],
      clientAuthentication: 'certificate',
    });
  });

  it('is seen as a secret client when it authenticates with a client secret instead', async () => {
    const partner = await registerPartner(['Orders.Read']);
    const secret = await graph.addPassword(partner.objectId, 'comparison');
    const token = await requestToken({ client_id: partner.appId, client_secret: secret.secretText! });
    const { status, body } = await getOrders(token);
    expect(status).toBe(200);
    expect(body['caller']).toMatchObject({ clientAppId: partner.appId, clientAuthentication: 'secret' });
  });

  it('is refused with 403 when it holds no Orders.Read assignment', async () => {
    const partner = await registerPartner([]);
    const token = await requestToken({
      client_id: partner.appId,
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: await clientAssertion(partner.appId, partner.credentials),
    });
    const { status, body } = await getOrders(token);
    expect(status).toBe(403);
    expect(body).toMatchObject({ code: 'ERR_APP_ROLE_MISSING' });
  });
});

describe('API_REQUIRE_CERTIFICATE_CLIENTS=true', () => {
  let certificateOnly: RunningApi;
  beforeAll(async () => {
    certificateOnly = await startApiWith({ API_REQUIRE_CERTIFICATE_CLIENTS: 'true' });
  });
  afterAll(async () => certificateOnly?.close());

  it('serves a partner whose token was obtained with its certificate', async () => {
    const partner = await registerPartner(['Orders.Read']);
    expect((await getOrders(await certificateToken(partner), certificateOnly)).status).toBe(200);
  });

  it('refuses with 403 ERR_CLIENT_CERTIFICATE_REQUIRED the same partner using a client secret', async () => {
    const partner = await registerPartner(['Orders.Read']);
    const { status, body } = await getOrders(await secretToken(partner), certificateOnly);
    expect({ status, code: body['code'] }).toEqual({ status: 403, code: 'ERR_CLIENT_CERTIFICATE_REQUIRED' });
    expect(body['message']).toContain('certificate');
  });
});

describe('API_ALLOWED_CLIENT_IDS', () => {
  let allowed: Awaited<ReturnType<typeof registerPartner>>;
  let allowListed: RunningApi;
  beforeAll(async () => {
    allowed = await registerPartner(['Orders.Read']);
    allowListed = await startApiWith({
      API_ALLOWED_CLIENT_IDS: `${randomUUID()},${allowed.appId.toUpperCase()}`,
    });
  });
  afterAll(async () => allowListed?.close());

  it('serves a listed partner (ids compared case-insensitively)', async () => {
    expect((await getOrders(await certificateToken(allowed), allowListed)).status).toBe(200);
  });

  it('refuses with 403 ERR_CLIENT_NOT_ALLOWED a partner of the same tenant that is not listed, even with the role', async () => {
    const other = await registerPartner(['Orders.Read']);
    const token = await certificateToken(other);
    expect((await getOrders(token)).status).toBe(200); // the API without an allow-list serves it
    const { status, body } = await getOrders(token, allowListed);
    expect({ status, code: body['code'] }).toEqual({ status: 403, code: 'ERR_CLIENT_NOT_ALLOWED' });
  });

  it('checks the allow-list before the app roles', async () => {
    const other = await registerPartner([]);
    const { body } = await getOrders(await certificateToken(other), allowListed);
    expect(body['code']).toBe('ERR_CLIENT_NOT_ALLOWED');
  });
});

describe('several tenants (ENTRA_TENANT_ID comma-separated)', () => {
  it('serves the tokens of a configured tenant when another tenant is configured too', async () => {
    const multi = await startApiWith({ ENTRA_TENANT_ID: `${randomUUID()},${emulator.tenantId}` });
    try {
      const partner = await registerPartner(['Orders.Read']);
      const { status, body } = await getOrders(await certificateToken(partner), multi);
      expect(status).toBe(200);
      expect(body['caller']).toMatchObject({ tenantId: emulator.tenantId });
    } finally {
      await multi.close();
    }
  });
});
