/**
 * The API's own answers to tokens it must refuse, proved with test tokens minted by the running
 * stack's emulator (`POST /admin/testTokens`, with the admin credentials of its emulator.json),
 * all through Playwright's API request fixture. Each token is signed with the emulator's real
 * signing key, so the API gets past the signature and refuses it for the one reason tested.
 */
import { expect, test, type APIRequestContext } from '@playwright/test';
import { readEmulatorInfo } from '@certflow/entra-emulator';
import { servedApi, stack, stackPartner } from './support';

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** A test token from the stack's emulator; `options` as in the emulator README ("Test tokens"). */
async function mint(request: APIRequestContext, options: Record<string, unknown>): Promise<string> {
  const file = stack();
  const { admin } = readEmulatorInfo(file.stateDir);
  const adminToken = await request.post(file.emulator.tokenEndpoint, {
    form: {
      grant_type: 'client_credentials',
      client_id: admin.clientId,
      client_secret: admin.clientSecret,
      scope: 'https://graph.microsoft.com/.default',
    },
  });
  expect(adminToken.status(), await adminToken.text()).toBe(200);
  const minted = await request.post(`${file.emulator.url}/admin/testTokens`, {
    headers: bearer(((await adminToken.json()) as { access_token: string }).access_token),
    data: options,
  });
  expect(minted.status(), await minted.text()).toBe(200);
  const { accessToken, claims } = (await minted.json()) as {
    accessToken: string;
    claims: Record<string, unknown>;
  };
  expect(claims.certflow_test).toBe(true);
  return accessToken;
}

test.describe('the API refuses minted tokens for the right reason', () => {
  /** What a partner holding Orders.Read would get: the API's identifier, the partner as client. */
  const valid = () => {
    const file = stack();
    return {
      resource: servedApi(file).identifierUri,
      clientAppId: stackPartner(file).appId,
      roles: ['Orders.Read'],
    };
  };

  async function ordersWith(request: APIRequestContext, options: Record<string, unknown>) {
    const token = await mint(request, options);
    return request.get(`${servedApi(stack()).url}/orders`, { headers: bearer(token) });
  }

  test('valid: 200', async ({ request }) => {
    const response = await ordersWith(request, valid());
    expect(response.status()).toBe(200);
    expect((await response.json()).caller).toMatchObject({
      clientAppId: stackPartner(stack()).appId,
      roles: ['Orders.Read'],
    });
  });

  for (const [name, change, code, description] of [
    ['expired', { expired: true }, 'ERR_TOKEN_EXPIRED', 'token expired'],
    ['not yet valid', { notYetValid: true }, 'ERR_TOKEN_NOT_YET_VALID', 'token not yet valid'],
    ['wrong audience', { audience: 'api://someone-else' }, 'ERR_TOKEN_AUDIENCE', 'audience not accepted'],
    [
      'wrong issuer',
      { issuer: 'https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001/v2.0' },
      'ERR_TOKEN_ISSUER',
      'issuer not accepted',
    ],
  ] as const) {
    test(`${name}: 401 invalid_token "${description}"`, async ({ request }) => {
      const response = await ordersWith(request, { ...valid(), ...change });
      expect(response.status()).toBe(401);
      expect(response.headers()['www-authenticate']).toBe(
        `Bearer error="invalid_token", error_description="${description}"`,
      );
      expect(await response.json()).toMatchObject({ statusCode: 401, code });
    });
  }

  for (const [name, roles] of [
    ['no roles', []],
    ['a role the endpoint does not take', ['Orders.Write']],
  ] as const) {
    test(`${name}: 403 insufficient_scope`, async ({ request }) => {
      const response = await ordersWith(request, { ...valid(), roles });
      expect(response.status()).toBe(403);
      expect(response.headers()['www-authenticate']).toBe('Bearer error="insufficient_scope"');
      expect(await response.json()).toMatchObject({
        statusCode: 403,
        code: 'ERR_APP_ROLE_MISSING',
        message: 'requires app role Orders.Read',
      });
    });
  }

  test('the gateway in front refuses the expired one too, and lets the valid one through', async ({
    request,
  }) => {
    const file = stack();
    const expired = await mint(request, { ...valid(), expired: true });
    expect((await request.get(`${file.gateway.url}/orders`, { headers: bearer(expired) })).status()).toBe(
      401,
    );
    const token = await mint(request, valid());
    expect((await request.get(`${file.gateway.url}/orders`, { headers: bearer(token) })).status()).toBe(200);
  });

  test('minting needs the admin credential: a token for the API is refused 401 at /admin/testTokens', async ({
    request,
  }) => {
    const file = stack();
    const partnerToken = await mint(request, valid()); // valid for the API, not for Graph
    const refused = await request.post(`${file.emulator.url}/admin/testTokens`, {
      headers: bearer(partnerToken),
      data: valid(),
    });
    expect(refused.status()).toBe(401);
    expect((await refused.json()).error).toMatchObject({ code: 'InvalidAuthenticationToken' });
  });
});
