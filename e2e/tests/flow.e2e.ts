import { expect, test } from '@playwright/test';
import { createSelfSignedCertificate, pemToDer } from '@certflow/certs';
import { GraphClient, readEmulatorInfo } from '@certflow/entra-emulator';
import { partnerCertificate, partnerToken, requestToken, servedApi, stack, stackPartner } from './support';

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

test.describe('the certificate flow through the running stack', () => {
  test('the gateway and the API report healthy', async ({ request }) => {
    const file = stack();
    expect((await request.get(file.gateway.healthUrl)).status()).toBe(200);
    expect((await request.get(`${servedApi(file).url}/health`)).status()).toBe(200);
  });

  test('a partner token obtained with its certificate opens the API through the gateway', async ({
    request,
  }) => {
    const file = stack();
    const token = await partnerToken(request, file);
    const response = await request.get(`${file.gateway.url}/orders`, { headers: bearer(token) });
    expect(response.status()).toBe(200);
    const body = await response.json();
    expect(body.caller).toMatchObject({
      clientAppId: stackPartner(file).appId,
      tenantId: file.tenantId,
      roles: stackPartner(file).roles[servedApi(file).name],
      clientAuthentication: 'certificate',
    });
    expect(Array.isArray(body.orders)).toBe(true);
  });

  test('the API validates the same token itself when called directly', async ({ request }) => {
    const file = stack();
    const token = await partnerToken(request, file);
    expect((await request.get(`${servedApi(file).url}/orders`, { headers: bearer(token) })).status()).toBe(
      200,
    );
  });
});

test.describe('every partner of the topology', () => {
  const order = { customerReference: 'PO-e2e', total: { amount: '1.00', currency: 'EUR' } };

  test('each gets a token with exactly its roles, and the answers those roles call for', async ({
    request,
  }) => {
    const file = stack();
    const api = servedApi(file);
    expect(file.partners.map((p) => p.name)).toEqual(['contoso', 'fabrikam']);
    for (const partner of file.partners) {
      const token = await partnerToken(request, file, partner);
      const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
      expect(claims.azp, partner.name).toBe(partner.appId);
      expect([...(claims.roles ?? [])].sort(), partner.name).toEqual([...partner.roles[api.name]!].sort());
      const held = (role: string) => partner.roles[api.name]!.includes(role);
      const list = await request.get(`${file.gateway.url}/orders`, { headers: bearer(token) });
      expect(list.status(), `${partner.name} GET /orders`).toBe(held('Orders.Read') ? 200 : 403);
      const created = await request.post(`${file.gateway.url}/orders`, {
        headers: bearer(token),
        data: order,
      });
      expect(created.status(), `${partner.name} POST /orders`).toBe(held('Orders.Write') ? 201 : 403);
    }
  });
});

test.describe('negative paths', () => {
  test('an assertion signed with an unregistered certificate is refused with AADSTS700027', async ({
    request,
  }) => {
    const file = stack();
    const stranger = createSelfSignedCertificate({ commonName: 'not-registered' });
    const response = await requestToken(request, file, stackPartner(file).appId, stranger);
    expect(response.status()).toBe(401);
    const body = await response.json();
    expect(body.error).toBe('invalid_client');
    expect(body.error_codes).toEqual([700027]);
    expect(body.error_description).toMatch(/^AADSTS700027:/);
  });

  for (const [where, url] of [
    ['gateway', (f: ReturnType<typeof stack>) => `${f.gateway.url}/orders`],
    ['API', (f: ReturnType<typeof stack>) => `${servedApi(f).url}/orders`],
  ] as const) {
    test(`the ${where} answers 401 without a token`, async ({ request }) => {
      const response = await request.get(url(stack()));
      expect(response.status()).toBe(401);
    });

    test(`the ${where} answers 401 to a token for another audience (Microsoft Graph)`, async ({
      request,
    }) => {
      const file = stack();
      const graphToken = await (await GraphClient.connect(readEmulatorInfo(file.stateDir))).accessToken();
      const response = await request.get(url(file), { headers: bearer(graphToken) });
      expect(response.status()).toBe(401);
    });

    test(`the ${where} answers 401 to a tampered token`, async ({ request }) => {
      const file = stack();
      const [header, payload, signature] = (await partnerToken(request, file)).split('.');
      const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
      claims.roles = ['Orders.Read', 'Orders.Admin'];
      const forged = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
      expect((await request.get(url(file), { headers: bearer(forged) })).status()).toBe(401);
    });
  }

  test('a registered partner without the app role gets 403 from the API', async ({ request }) => {
    const file = stack();
    const graph = await GraphClient.connect(readEmulatorInfo(file.stateDir));
    const app = await graph.createApplication({ displayName: `partner-without-role-${Date.now()}` });
    await graph.createServicePrincipal(app.appId);
    const cert = createSelfSignedCertificate({ commonName: 'partner-without-role' });
    await graph.addCertificate(app.id, pemToDer(cert.certificatePem), 'no role');

    const tokenResponse = await requestToken(request, file, app.appId, cert);
    expect(tokenResponse.status()).toBe(200);
    const { access_token: token } = await tokenResponse.json();
    expect((await request.get(`${file.gateway.url}/orders`, { headers: bearer(token) })).status()).toBe(403);
    expect((await request.get(`${servedApi(file).url}/orders`, { headers: bearer(token) })).status()).toBe(
      403,
    );
    // The registered partner's own certificate is not accepted for this application.
    const wrongKey = await requestToken(request, file, app.appId, partnerCertificate(stackPartner(file)));
    expect(wrongKey.status()).toBe(401);
  });
});
