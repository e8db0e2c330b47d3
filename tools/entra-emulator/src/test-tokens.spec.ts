import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { GraphRequestError } from './graph-client';
import { graphTokenWith } from './graph.test-helpers';
import { API_URI, decodeJwt, https, postForm, startFixture, type Fixture } from './emulator.test-helpers';
import { mintTestToken, TEST_TOKEN_CLAIM, type TestTokenOptions } from './test-tokens';

const HOUR = 3600;

describe('test tokens', () => {
  let f: Fixture;
  let adminToken: string;
  beforeAll(async () => {
    f = await startFixture();
    adminToken = await f.graph.accessToken();
  });
  afterAll(() => f.close());

  const nowSeconds = () => Math.floor(Date.now() / 1000);
  const mintedCount = () => [...f.emulator.signInLog.newestFirst()].filter((r) => r.attempt.minted).length;

  function post(body: unknown, token: string | null = adminToken, raw?: string) {
    return https(f.emulator, `${f.emulator.url}/admin/testTokens`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(token === null ? {} : { authorization: `Bearer ${token}` }),
      },
      body: raw ?? JSON.stringify(body),
    });
  }

  async function mint(options: TestTokenOptions) {
    const res = await post(options);
    expect(res.status, res.text).toBe(200);
    const body = res.json() as { accessToken: string; claims: Record<string, unknown> };
    const decoded = decodeJwt(body.accessToken);
    expect(decoded.payload).toEqual(body.claims);
    return decoded;
  }

  describe('refused without the admin write permission, minting nothing', () => {
    it.each([
      ['no token', null, 401, 'InvalidAuthenticationToken'],
      ['a token for another resource', 'api', 401, 'InvalidAuthenticationToken'],
      ['Application.Read.All only', 'read', 403, 'Authorization_RequestDenied'],
    ] as const)('%s: %s %s in Graph error shape', async (_name, who, status, code) => {
      const token =
        who === null
          ? null
          : who === 'read'
            ? await graphTokenWith(f, 'Application.Read.All')
            : // A perfectly valid token of this emulator, but not for Microsoft Graph.
              ((await post({ resource: API_URI, roles: ['Orders.Read'] })).json().accessToken as string);
      const before = mintedCount();
      const res = await post({ resource: API_URI }, token);
      expect(res.status).toBe(status);
      const error = res.json().error as Record<string, unknown>;
      expect(error.code).toBe(code);
      expect(error.innerError).toHaveProperty('request-id');
      expect(res.text).not.toContain('accessToken');
      expect(mintedCount()).toBe(before);
    });
  });

  describe('never a credential for the emulator itself', () => {
    const GRAPH = 'https://graph.microsoft.com';
    const ALL_ADMIN_ROLES = [
      'Application.ReadWrite.All',
      'AppRoleAssignment.ReadWrite.All',
      'AuditLog.Read.All',
    ];
    const call = (method: string, path: string, token: string) =>
      https(f.emulator, `${f.emulator.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ...(method === 'POST' ? { body: JSON.stringify({ resource: API_URI }) } : {}),
      });

    it.each([
      ['GET', '/graph/v1.0/applications'],
      ['GET', "/graph/beta/auditLogs/signIns?$filter=signInEventTypes/any(t: t eq 'servicePrincipal')"],
      ['POST', '/admin/testTokens'],
      ['GET', '/admin/signingKeys'],
    ])(
      'a minted Graph token with every admin role, even as the admin client: 401 on %s %s',
      async (method, path) => {
        const minted = (
          await mint({ resource: GRAPH, roles: ALL_ADMIN_ROLES, clientAppId: f.emulator.admin.clientId })
        ).payload;
        expect(minted.roles).toEqual(ALL_ADMIN_ROLES);
        const token = (await post({ resource: GRAPH, roles: ALL_ADMIN_ROLES })).json().accessToken as string;
        const before = mintedCount();
        const res = await call(method, path, token);
        expect(res.status, res.text).toBe(401);
        const error = res.json().error as { code: string; message: string };
        expect(error.code).toBe('InvalidAuthenticationToken');
        expect(error.message).toContain("test tokens are for the caller's own APIs");
        expect(mintedCount()).toBe(before);
      },
    );

    it('a not yet valid Graph token is refused as such, not as a bad signature', async () => {
      const token = (
        await post({ resource: GRAPH, roles: ['Application.Read.All'], notYetValid: true })
      ).json().accessToken as string;
      const nbf = new Date((decodeJwt(token).payload.nbf as number) * 1000).toISOString();
      const res = await call('GET', '/graph/v1.0/applications', token);
      expect(res.status).toBe(401);
      expect((res.json().error as { message: string }).message).toContain(
        `Lifetime validation failed, the token is not yet valid (nbf ${nbf}).`,
      );
    });

    it("an application holding all of the admin client's Graph permissions is not the admin client: 403", async () => {
      const token = await graphTokenWith(
        f,
        'Application.ReadWrite.All',
        'AppRoleAssignment.ReadWrite.All',
        'AuditLog.Read.All',
      );
      const before = mintedCount();
      const res = await call('POST', '/admin/testTokens', token);
      expect(res.status, res.text).toBe(403);
      expect((res.json().error as { message: string }).message).toContain('only the admin client');
      expect(res.text).not.toContain('accessToken');
      expect(mintedCount()).toBe(before);
    });

    it.each([
      ['GET', '/admin/signingKeys'],
      ['POST', '/admin/signingKeys/rotate'],
      ['GET', '/admin/faults'],
      ['DELETE', '/admin/faults'],
      ['GET', '/admin/clock'],
      ['DELETE', '/admin/clock'],
    ])(
      "an application with all of the admin client's Graph permissions: 403 on %s %s",
      async (method, path) => {
        const token = await graphTokenWith(
          f,
          'Application.ReadWrite.All',
          'AppRoleAssignment.ReadWrite.All',
          'AuditLog.Read.All',
        );
        const jwks = async () => (await https(f.emulator, f.emulator.jwksUri)).text;
        const [keysBefore, offsetBefore] = [await jwks(), f.emulator.clock.offsetMs];
        const res = await call(method, path, token);
        expect(res.status, res.text).toBe(403);
        expect((res.json().error as { message: string }).message).toContain('only the admin client');
        expect([await jwks(), f.emulator.clock.offsetMs]).toEqual([keysBefore, offsetBefore]);
      },
    );
  });

  it('mints a token for a registered API, signed by the active key published in JWKS', async () => {
    const res = await post({ resource: API_URI, roles: ['Orders.Read'] });
    expect(res.status, res.text).toBe(200);
    const { accessToken } = res.json() as { accessToken: string };
    const jwks = (await https(f.emulator, f.emulator.jwksUri)).json() as unknown as JSONWebKeySet;
    const { payload, protectedHeader } = await jwtVerify(accessToken, createLocalJWKSet(jwks), {
      audience: f.provisioned.api.appId, // the API asks for v2 tokens: aud is its app id
      issuer: f.emulator.issuer,
    });
    expect(protectedHeader).toMatchObject({ alg: 'RS256', typ: 'JWT' });
    expect(payload).toMatchObject({
      roles: ['Orders.Read'],
      ver: '2.0',
      tid: f.emulator.tenantId,
      [TEST_TOKEN_CLAIM]: true,
    });
    expect(payload.exp! - payload.iat!).toBe(HOUR);
    expect(Math.abs(payload.iat! - nowSeconds())).toBeLessThanOrEqual(2);
  });

  it('expired: exp an hour ago; notYetValid: nbf an hour ahead', async () => {
    const expired = (await mint({ resource: API_URI, expired: true })).payload;
    expect(Math.abs((expired.exp as number) - (nowSeconds() - HOUR))).toBeLessThanOrEqual(2);
    expect((expired.exp as number) - (expired.iat as number)).toBe(HOUR);
    const early = (await mint({ resource: API_URI, notYetValid: true })).payload;
    expect(Math.abs((early.nbf as number) - (nowSeconds() + HOUR))).toBeLessThanOrEqual(2);
    expect((early.exp as number) - (early.nbf as number)).toBe(HOUR);
  });

  it('explicit iat/nbf/exp offsets and a lifetime, relative to the emulator clock', async () => {
    f.setClockOffset(2 * HOUR * 1000);
    try {
      // An admin token issued now on the shifted clock (the cached one has expired there).
      const admin = await postForm(f.emulator, {
        grant_type: 'client_credentials',
        client_id: f.emulator.admin.clientId,
        client_secret: f.emulator.admin.clientSecret,
        scope: 'https://graph.microsoft.com/.default',
      });
      const res = await post(
        { resource: API_URI, lifetimeSeconds: 300 },
        admin.json().access_token as string,
      );
      expect(res.status, res.text).toBe(200);
      const shifted = decodeJwt(res.json().accessToken as string).payload;
      expect(Math.abs((shifted.iat as number) - (nowSeconds() + 2 * HOUR))).toBeLessThanOrEqual(2);
      expect((shifted.exp as number) - (shifted.iat as number)).toBe(300);
    } finally {
      f.setClockOffset(0);
    }
    const p = (
      await mint({ resource: API_URI, iatOffsetSeconds: -60, nbfOffsetSeconds: 30, expOffsetSeconds: 90 })
    ).payload;
    const now = nowSeconds();
    expect([p.iat, p.nbf, p.exp].map((t) => (t as number) - now)).toEqual([
      expect.closeTo(-60, 0),
      expect.closeTo(30, 0),
      expect.closeTo(90, 0),
    ]);
  });

  it('v1: sts.windows.net issuer, aud as the resource was named, appid; v2 forced on a v1 resource: aud the app id', async () => {
    const v1 = await mint({ resource: API_URI, version: 1 });
    expect(v1.payload).toMatchObject({
      aud: API_URI,
      iss: `https://sts.windows.net/${f.emulator.tenantId}/`,
      ver: '1.0',
      appidacr: '2',
    });
    expect(v1.header.x5t).toBe(v1.header.kid);
    expect(v1.payload).not.toHaveProperty('azp');
    const vault = await mint({ resource: 'https://vault.azure.net' });
    expect(vault.payload).toMatchObject({ aud: 'https://vault.azure.net', ver: '1.0' });
    const vaultV2 = await mint({ resource: 'https://vault.azure.net', version: 2 });
    expect(vaultV2.payload).toMatchObject({ aud: 'cfa8b339-82a2-471a-a3c9-0fc0be7a4093', ver: '2.0' });
  });

  it('wrong audience, wrong issuer, extra claims; without roles there is no roles claim', async () => {
    const { payload } = await mint({
      resource: API_URI,
      audience: 'api://someone-else',
      issuer: 'https://login.example.test/other/v2.0',
      claims: { tid: '00000000-0000-0000-0000-000000000001', xms_cc: ['cp1'] },
    });
    expect(payload).toMatchObject({
      aud: 'api://someone-else',
      iss: 'https://login.example.test/other/v2.0',
      tid: '00000000-0000-0000-0000-000000000001',
      xms_cc: ['cp1'],
      [TEST_TOKEN_CLAIM]: true,
    });
    expect(payload).not.toHaveProperty('roles');
    // `audience` alone: Entra's default version (1).
    expect((await mint({ audience: 'api://anything' })).payload).toMatchObject({
      aud: 'api://anything',
      ver: '1.0',
    });
  });

  it('the client: a registered one keeps its service principal as oid; by default a new app id naming nothing', async () => {
    const partner = await mint({ resource: API_URI, clientAppId: f.provisioned.partner.appId.toUpperCase() });
    expect(partner.payload).toMatchObject({
      azp: f.provisioned.partner.appId,
      oid: f.provisioned.partner.servicePrincipalId,
      sub: f.provisioned.partner.servicePrincipalId,
    });
    const a = (await mint({ resource: API_URI })).payload;
    const b = (await mint({ resource: API_URI })).payload;
    expect(a.azp).not.toBe(b.azp);
    expect(f.emulator.signInLog.newestFirst().next().value?.attempt).toMatchObject({ appId: b.azp });
  });

  it('records each minted token in the sign-in log, marked as minted, with client and resource', async () => {
    const before = mintedCount();
    await mint({ resource: 'https://vault.azure.net', clientAppId: f.provisioned.partner.appId });
    expect(mintedCount()).toBe(before + 1);
    const newest = f.emulator.signInLog.newestFirst().next().value!;
    expect(newest.attempt).toMatchObject({
      minted: true,
      appId: f.provisioned.partner.appId,
      appDisplayName: 'contoso-partner',
      servicePrincipalId: f.provisioned.partner.servicePrincipalId,
      resourceAppId: 'cfa8b339-82a2-471a-a3c9-0fc0be7a4093',
      resourceDisplayName: 'Azure Key Vault',
      clientCredentialType: 'none',
      errorCode: 0,
      additionalDetails: expect.stringMatching(
        new RegExp(
          `/admin/testTokens.*did not issue it\\. Minted by ${f.emulator.admin.clientId.toLowerCase()}\\.$`,
        ),
      ),
    });
    expect(JSON.stringify(newest)).not.toMatch(/eyJ/); // never the token itself
  });

  it.each([
    ['an array', [], 'the body must be a JSON object'],
    ['nothing to address', {}, 'resource or audience is required'],
    ['an unknown field', { resource: API_URI, scope: 'x' }, "unknown field 'scope'"],
    [
      'an unknown resource',
      { resource: 'api://nobody' },
      "resource 'api://nobody' names no service principal",
    ],
    ['a numeric audience', { audience: 42 }, 'audience must be a string'],
    ['version 3', { resource: API_URI, version: 3 }, 'version must be 1 or 2'],
    ['roles not strings', { resource: API_URI, roles: [1] }, 'roles must be an array'],
    ['a bad client', { resource: API_URI, clientAppId: 'partner' }, 'clientAppId must be a GUID'],
    ['expired as a string', { resource: API_URI, expired: 'yes' }, 'expired must be true or false'],
    ['lifetime 0', { resource: API_URI, lifetimeSeconds: 0 }, 'lifetimeSeconds must be an integer from 1'],
    [
      'a fractional offset',
      { resource: API_URI, expOffsetSeconds: 1.5 },
      'expOffsetSeconds must be an integer',
    ],
    [
      'expired and notYetValid',
      { resource: API_URI, expired: true, notYetValid: true },
      'expired and notYetValid',
    ],
    [
      'expired and exp',
      { resource: API_URI, expired: true, expOffsetSeconds: 5 },
      'expired and expOffsetSeconds',
    ],
    ['claims not an object', { resource: API_URI, claims: 'x' }, 'claims must be a JSON object'],
    [
      'certflow_test overridden',
      { resource: API_URI, claims: { [TEST_TOKEN_CLAIM]: false } },
      `claims.${TEST_TOKEN_CLAIM} cannot be set`,
    ],
  ])('400 for %s, naming it, and nothing minted', async (_name, body, message) => {
    const before = mintedCount();
    const res = await post(body);
    expect(res.status).toBe(400);
    expect(res.json().error).toMatchObject({ code: 'Request_BadRequest' });
    expect(String((res.json().error as { message: string }).message)).toContain(message);
    expect(mintedCount()).toBe(before);
  });

  it('claims nested deeper than 32 levels: 400 naming claims (5,000 levels, too), nothing minted', async () => {
    const nested = (levels: number) =>
      `{"resource":"${API_URI}","claims":{"deep":${'['.repeat(levels - 1)}${']'.repeat(levels - 1)}}}`;
    expect((await post(undefined, adminToken, nested(32))).status).toBe(200);
    for (const levels of [33, 5000]) {
      const before = mintedCount();
      const res = await post(undefined, adminToken, nested(levels));
      expect(res.status, res.text.slice(0, 300)).toBe(400);
      expect((res.json().error as { message: string }).message).toBe(
        'testTokens: claims must not nest objects or arrays more than 32 levels deep',
      );
      expect(mintedCount()).toBe(before);
    }
  });

  it('400 for a body that is not JSON; 405 for GET', async () => {
    expect((await post(undefined, adminToken, '{not json')).status).toBe(400);
    const get = await https(f.emulator, `${f.emulator.url}/admin/testTokens`, {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    expect(get.status).toBe(405);
  });

  it('mintTestToken(): the same through the admin credentials of emulator.json', async () => {
    const token = await mintTestToken(f.emulator, {
      resource: API_URI,
      roles: ['Orders.Write'],
      expired: true,
    });
    expect(decodeJwt(token).payload).toMatchObject({ roles: ['Orders.Write'], [TEST_TOKEN_CLAIM]: true });
    const failure = await mintTestToken(f.emulator, { resource: API_URI, version: 7 as 1 }).catch(
      (e: unknown) => e,
    );
    expect(failure).toBeInstanceOf(GraphRequestError);
    expect(failure).toMatchObject({ status: 400, code: 'Request_BadRequest' });
    expect((failure as Error).message).toContain('version must be 1 or 2');
  });
});
