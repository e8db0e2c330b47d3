import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { createSelfSignedCertificate, parseCertificate, pemToDer } from '@certflow/certs';
import {
  API_URI,
  assertionForm,
  clientAssertion,
  decodeJwt,
  https,
  postForm,
  startFixture,
  type Fixture,
} from './emulator.test-helpers';

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f?.close();
});

const partnerId = () => f.provisioned.partner.appId;

async function verifyWithJwks(token: string, issuer: string, audience: string) {
  const keys = (await https(f.emulator, f.emulator.jwksUri)).json() as unknown as JSONWebKeySet;
  return jwtVerify(token, createLocalJWKSet(keys), { issuer, audience, algorithms: ['RS256'] });
}

function expectEntraError(
  res: Awaited<ReturnType<typeof postForm>>,
  status: number,
  error: string,
  code: number,
) {
  expect(res.status, res.text).toBe(status);
  const body = res.json();
  expect(body.error).toBe(error);
  expect(body.error_codes).toEqual([code]);
  expect(String(body.error_description)).toMatch(
    new RegExp(
      `^AADSTS${code}: .+\\r\\nTrace ID: [0-9a-f-]{36}\\r\\nCorrelation ID: [0-9a-f-]{36}\\r\\nTimestamp: \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ$`,
    ),
  );
  expect(body.timestamp).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
  expect(body.trace_id).toMatch(/^[0-9a-f-]{36}$/);
  expect(body.correlation_id).toMatch(/^[0-9a-f-]{36}$/);
  expect(body.error_uri).toBe(`https://login.microsoftonline.com/error?code=${code}`);
  return body;
}

describe('client credentials with a certificate', () => {
  for (const alg of ['PS256', 'RS256'] as const) {
    it(`accepts ${alg} with ${alg === 'PS256' ? 'x5t#S256' : 'x5t'} and issues a v2 token verifiable with the JWKS`, async () => {
      const assertion = await clientAssertion(f.emulator.tokenEndpoint, partnerId(), f.partnerCert, { alg });
      const res = await postForm(f.emulator, assertionForm(partnerId(), assertion));
      expect(res.status, res.text).toBe(200);
      const body = res.json();
      expect(Object.keys(body).sort()).toEqual([
        'access_token',
        'expires_in',
        'ext_expires_in',
        'token_type',
      ]);
      expect(body.token_type).toBe('Bearer');
      expect(body.expires_in).toBeGreaterThanOrEqual(3600);
      expect(body.expires_in).toBeLessThanOrEqual(5400);
      expect(body.ext_expires_in).toBe(body.expires_in);

      const token = String(body.access_token);
      const { payload, protectedHeader } = await verifyWithJwks(
        token,
        f.emulator.issuer,
        f.provisioned.api.appId,
      );
      expect(protectedHeader).toEqual({ typ: 'JWT', alg: 'RS256', kid: expect.any(String) });
      expect(Object.keys(payload).sort()).toEqual(
        [
          'aud',
          'azp',
          'azpacr',
          'exp',
          'iat',
          'idtyp',
          'iss',
          'nbf',
          'oid',
          'roles',
          'sub',
          'tid',
          'uti',
          'ver',
        ].sort(),
      );
      expect(payload).toMatchObject({
        aud: f.provisioned.api.appId,
        iss: f.emulator.issuer,
        azp: partnerId(),
        azpacr: '2',
        idtyp: 'app',
        oid: f.provisioned.partner.servicePrincipalId,
        sub: f.provisioned.partner.servicePrincipalId,
        tid: f.emulator.tenantId,
        roles: ['Orders.Read'],
        ver: '2.0',
      });
      expect(payload.exp! - payload.iat!).toBe(body.expires_in);
      expect(payload.nbf).toBe(payload.iat);
    });
  }

  it('accepts the domain form of the tenant, in the URL and in aud', async () => {
    const url = f.emulator.tokenEndpoint.replace(f.emulator.tenantId, f.emulator.tenantDomain);
    const assertion = await clientAssertion(url, partnerId(), f.partnerCert);
    const res = await postForm(f.emulator, assertionForm(partnerId(), assertion), { url });
    expect(res.status, res.text).toBe(200);
  });

  it('accepts an assertion addressed to 127.0.0.1 when the client connected there', async () => {
    const url = f.emulator.tokenEndpoint.replace('localhost', '127.0.0.1');
    const assertion = await clientAssertion(url, partnerId(), f.partnerCert);
    expect((await postForm(f.emulator, assertionForm(partnerId(), assertion), { url })).status).toBe(200);
  });

  it('tolerates MSAL-style nbf one second after iat, and reuse of the same assertion (same jti)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const assertion = await clientAssertion(f.emulator.tokenEndpoint, partnerId(), f.partnerCert, {
      claims: { iat: now, nbf: now + 1 },
    });
    for (let i = 0; i < 3; i++)
      expect((await postForm(f.emulator, assertionForm(partnerId(), assertion))).status).toBe(200);
  });

  it('matches any of several registered certificates (rotation)', async () => {
    const next = createSelfSignedCertificate({ commonName: 'contoso-partner-next' });
    await f.graph.addCertificate(f.provisioned.partner.objectId, next.certificatePem, 'next');
    for (const cert of [f.partnerCert, next]) {
      const assertion = await clientAssertion(f.emulator.tokenEndpoint, partnerId(), cert, { alg: 'RS256' });
      expect((await postForm(f.emulator, assertionForm(partnerId(), assertion))).status).toBe(200);
    }
  });

  it('echoes a GUID client-request-id as the correlation id, and ignores telemetry fields', async () => {
    const requestId = '11111111-2222-4333-8444-555555555555';
    const form = {
      ...assertionForm(partnerId(), 'x.y.z'),
      'x-client-SKU': 'msal.js.node',
      'client-request-id': requestId,
    };
    const res = await postForm(f.emulator, form, {
      url: `${f.emulator.tokenEndpoint}?client-request-id=${requestId}`,
    });
    const body = expectEntraError(res, 401, 'invalid_client', 50027);
    expect(body.correlation_id).toBe(requestId);
    expect(res.headers['client-request-id']).toBe(requestId);
  });
});

describe('client credentials with a secret', () => {
  let secret: string;
  beforeAll(async () => {
    secret = (await f.graph.addPassword(f.provisioned.partner.objectId, 'test')).secretText!;
  });

  it('accepts client_secret in the body (azpacr 1)', async () => {
    const res = await postForm(f.emulator, {
      grant_type: 'client_credentials',
      client_id: partnerId(),
      client_secret: secret,
      scope: `${API_URI}/.default`,
    });
    expect(res.status, res.text).toBe(200);
    expect(decodeJwt(String(res.json().access_token)).payload.azpacr).toBe('1');
  });

  it('accepts HTTP Basic authentication', async () => {
    const basic = Buffer.from(`${encodeURIComponent(partnerId())}:${encodeURIComponent(secret)}`).toString(
      'base64',
    );
    const res = await postForm(
      f.emulator,
      { grant_type: 'client_credentials', scope: `${API_URI}/.default` },
      { headers: { authorization: `Basic ${basic}` } },
    );
    expect(res.status, res.text).toBe(200);
  });

  it('refuses a wrong secret with 7000215 and an expired one with 7000222', async () => {
    const form = { grant_type: 'client_credentials', client_id: partnerId(), scope: `${API_URI}/.default` };
    expectEntraError(
      await postForm(f.emulator, { ...form, client_secret: `${secret}x` }),
      401,
      'invalid_client',
      7000215,
    );
    const app = await f.graph.getApplication(f.provisioned.partner.objectId);
    const expired = await f.graph.addPassword(app.id, 'old');
    f.setClockOffset(3 * 365 * 86_400_000);
    try {
      expectEntraError(
        await postForm(f.emulator, { ...form, client_secret: expired.secretText! }),
        401,
        'invalid_client',
        7000222,
      );
    } finally {
      f.setClockOffset(0);
    }
  });
});

describe('v1 tokens for resources that do not ask for v2', () => {
  it('uses the sts.windows.net issuer, the App ID URI as aud, appid/appidacr and x5t', async () => {
    const v1 = await f.graph.createApplication({
      displayName: 'legacy API',
      identifierUris: ['https://legacy.certflow.test'],
    });
    await f.graph.createServicePrincipal(v1.appId);
    const assertion = await clientAssertion(f.emulator.tokenEndpoint, partnerId(), f.partnerCert);
    const res = await postForm(
      f.emulator,
      assertionForm(partnerId(), assertion, 'https://legacy.certflow.test/.default'),
    );
    expect(res.status, res.text).toBe(200);
    const token = String(res.json().access_token);
    const { payload, protectedHeader } = await verifyWithJwks(
      token,
      `https://sts.windows.net/${f.emulator.tenantId}/`,
      'https://legacy.certflow.test',
    );
    expect(protectedHeader.x5t).toBe(protectedHeader.kid);
    expect(payload).toMatchObject({
      appid: partnerId(),
      appidacr: '2',
      ver: '1.0',
      idtyp: 'app',
      tid: f.emulator.tenantId,
    });
    expect(payload.roles).toBeUndefined(); // nothing assigned: Entra omits the claim
    expect(payload.azp).toBeUndefined();
  });
});

describe('refusals, shaped like Entra ID', () => {
  it('700027 for a certificate that is not registered, naming its thumbprint', async () => {
    const stranger = createSelfSignedCertificate({ commonName: 'stranger' });
    const assertion = await clientAssertion(f.emulator.tokenEndpoint, partnerId(), stranger);
    const body = expectEntraError(
      await postForm(f.emulator, assertionForm(partnerId(), assertion)),
      401,
      'invalid_client',
      700027,
    );
    const { thumbprints } = parseCertificate(stranger.certificatePem);
    expect(body.error_description).toContain(thumbprints.sha256Hex);
  });

  it('takes x5t#S256 in standard base64 with padding, as MSAL for Go sends it (Entra ID reads both)', async () => {
    const sha256 = Buffer.from(
      parseCertificate(f.partnerCert.certificatePem).thumbprints.sha256Hex,
      'hex',
    ).toString('base64');
    expect(sha256).toMatch(/=$/); // 32 bytes: always padded, so this never equals the base64url form
    const assertion = await clientAssertion(f.emulator.tokenEndpoint, partnerId(), f.partnerCert, {
      header: { 'x5t#S256': sha256 },
    });
    const res = await postForm(f.emulator, assertionForm(partnerId(), assertion));
    expect(res.status, res.text).toBe(200);
  });

  it('50013 when the registered certificate is named but another key signed', async () => {
    const other = createSelfSignedCertificate({ commonName: 'other' });
    const assertion = await clientAssertion(f.emulator.tokenEndpoint, partnerId(), other, {
      headerCert: f.partnerCert,
    });
    expectEntraError(
      await postForm(f.emulator, assertionForm(partnerId(), assertion)),
      401,
      'invalid_client',
      50013,
    );
  });

  it('700023 for the wrong audience', async () => {
    const assertion = await clientAssertion(
      'https://login.microsoftonline.com/x/oauth2/v2.0/token',
      partnerId(),
      f.partnerCert,
    );
    expectEntraError(
      await postForm(f.emulator, assertionForm(partnerId(), assertion)),
      401,
      'invalid_client',
      700023,
    );
  });

  it('50048 when iss and sub differ', async () => {
    const assertion = await clientAssertion(f.emulator.tokenEndpoint, partnerId(), f.partnerCert, {
      claims: { sub: f.provisioned.api.appId },
    });
    expectEntraError(
      await postForm(f.emulator, assertionForm(partnerId(), assertion)),
      401,
      'invalid_client',
      50048,
    );
  });

  it('700024 for an expired assertion, one not yet valid, and one without exp', async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const claims of [
      { nbf: now - 1300, iat: now - 1300, exp: now - 700 },
      { nbf: now + 600, exp: now + 1200 },
      { exp: undefined },
    ]) {
      const assertion = await clientAssertion(f.emulator.tokenEndpoint, partnerId(), f.partnerCert, {
        claims,
      });
      expectEntraError(
        await postForm(f.emulator, assertionForm(partnerId(), assertion)),
        401,
        'invalid_client',
        700024,
      );
    }
  });

  it('700027 once the certificate has expired', async () => {
    const shortLived = createSelfSignedCertificate({ commonName: 'short', days: 1 });
    await f.graph.addCertificate(f.provisioned.partner.objectId, pemToDer(shortLived.certificatePem));
    const twoDays = 2 * 86_400_000;
    f.setClockOffset(twoDays);
    try {
      const nowSeconds = Math.floor((Date.now() + twoDays) / 1000);
      const assertion = await clientAssertion(f.emulator.tokenEndpoint, partnerId(), shortLived, {
        nowSeconds,
      });
      const body = expectEntraError(
        await postForm(f.emulator, assertionForm(partnerId(), assertion)),
        401,
        'invalid_client',
        700027,
      );
      expect(body.error_description).toContain('The key used is expired');
    } finally {
      f.setClockOffset(0);
    }
  });

  it('50027 for an unsupported algorithm, a missing thumbprint, or garbage', async () => {
    const hs = await new SignJWT({ iss: partnerId(), sub: partnerId(), aud: f.emulator.tokenEndpoint })
      .setProtectedHeader({ alg: 'HS256', x5t: 'abc' })
      .setExpirationTime('5m')
      .sign(new Uint8Array(32));
    const noThumbprint = await clientAssertion(f.emulator.tokenEndpoint, partnerId(), f.partnerCert, {
      header: { 'x5t#S256': undefined },
    });
    for (const assertion of [hs, noThumbprint, 'not-a-jwt', 'a.b.c', '%%%.%%%.%%%']) {
      expectEntraError(
        await postForm(f.emulator, assertionForm(partnerId(), assertion)),
        401,
        'invalid_client',
        50027,
      );
    }
  });

  it('400 unauthorized_client 700016 for an unknown client', async () => {
    const unknown = '00000000-1111-4222-8333-444444444444';
    const assertion = await clientAssertion(f.emulator.tokenEndpoint, unknown, f.partnerCert);
    const body = expectEntraError(
      await postForm(f.emulator, assertionForm(unknown, assertion)),
      400,
      'unauthorized_client',
      700016,
    );
    expect(body.error_description).toContain(unknown);
  });

  it('7000218 without any credential', async () => {
    const res = await postForm(f.emulator, {
      grant_type: 'client_credentials',
      client_id: partnerId(),
      scope: `${API_URI}/.default`,
    });
    expectEntraError(res, 401, 'invalid_client', 7000218);
  });

  it('the resource named by its app id ({appId}/.default) gets the same token as by its App ID URI', async () => {
    const assertion = await clientAssertion(f.emulator.tokenEndpoint, partnerId(), f.partnerCert);
    const apiAppId = f.provisioned.api.appId;
    const byAppId = await postForm(f.emulator, assertionForm(partnerId(), assertion, `${apiAppId}/.default`));
    expect(byAppId.status).toBe(200);
    const claims = decodeJwt(byAppId.json().access_token as string).payload;
    expect(claims).toMatchObject({ aud: apiAppId, azp: partnerId(), roles: ['Orders.Read'] });
    const byUri = await postForm(f.emulator, assertionForm(partnerId(), assertion, `${API_URI}/.default`));
    expect(decodeJwt(byUri.json().access_token as string).payload).toMatchObject({
      aud: apiAppId,
      roles: ['Orders.Read'],
    });
  });

  it('ignores the OpenID Connect scopes MSAL for Go adds (openid offline_access profile); 1002012 for them alone', async () => {
    const assertion = await clientAssertion(f.emulator.tokenEndpoint, partnerId(), f.partnerCert);
    const res = await postForm(
      f.emulator,
      assertionForm(partnerId(), assertion, `${API_URI}/.default openid offline_access profile`),
    );
    expect(res.status, res.text).toBe(200);
    expectEntraError(
      await postForm(f.emulator, assertionForm(partnerId(), assertion, 'openid profile')),
      400,
      'invalid_scope',
      1002012,
    );
  });

  it('1002012 for a scope without /.default, 70011 for several, 500011 for an unknown resource', async () => {
    const assertion = await clientAssertion(f.emulator.tokenEndpoint, partnerId(), f.partnerCert);
    expectEntraError(
      await postForm(f.emulator, assertionForm(partnerId(), assertion, `${API_URI}/Orders.Read`)),
      400,
      'invalid_scope',
      1002012,
    );
    expectEntraError(
      await postForm(
        f.emulator,
        assertionForm(partnerId(), assertion, `${API_URI}/.default https://graph.microsoft.com/.default`),
      ),
      400,
      'invalid_scope',
      70011,
    );
    expectEntraError(
      await postForm(f.emulator, assertionForm(partnerId(), assertion, 'api://nobody/.default')),
      400,
      'invalid_resource',
      500011,
    );
  });

  it('900144 for each missing parameter, including grant_type sent only in the query string', async () => {
    const full = assertionForm(partnerId(), 'x.y.z');
    for (const name of ['grant_type', 'client_id', 'scope', 'client_assertion_type']) {
      const form: Record<string, string> = { ...full };
      delete form[name];
      const body = expectEntraError(await postForm(f.emulator, form), 400, 'invalid_request', 900144);
      expect(body.error_description).toContain(`'${name}'`);
    }
    const { grant_type: _grant, ...rest } = full;
    const res = await postForm(f.emulator, rest, {
      url: `${f.emulator.tokenEndpoint}?grant_type=client_credentials`,
    });
    expectEntraError(res, 400, 'invalid_request', 900144);
  });

  it('70003 for another grant type', async () => {
    const res = await postForm(f.emulator, {
      grant_type: 'password',
      client_id: partnerId(),
      scope: `${API_URI}/.default`,
    });
    expectEntraError(res, 400, 'unsupported_grant_type', 70003);
  });

  it('90002 invalid_tenant for an unknown tenant, on every endpoint', async () => {
    const unknown = f.emulator.tokenEndpoint.replace(f.emulator.tenantId, 'contoso.onmicrosoft.com');
    expectEntraError(
      await postForm(f.emulator, assertionForm(partnerId(), 'x.y.z'), { url: unknown }),
      400,
      'invalid_tenant',
      90002,
    );
    const discovery = await https(
      f.emulator,
      f.emulator.openIdConfigurationUrl.replace(f.emulator.tenantId, '22222222-2222-4222-8222-222222222222'),
    );
    expect(discovery.status).toBe(400);
    expect(discovery.json().error_codes).toEqual([90002]);
  });

  it('refuses two credentials at once, and repeated parameters', async () => {
    const assertion = await clientAssertion(f.emulator.tokenEndpoint, partnerId(), f.partnerCert);
    expectEntraError(
      await postForm(f.emulator, { ...assertionForm(partnerId(), assertion), client_secret: 'x' }),
      400,
      'invalid_request',
      9002313,
    );
    const body = `${new URLSearchParams(assertionForm(partnerId(), assertion)).toString()}&scope=x`;
    const res = await https(f.emulator, f.emulator.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
    expectEntraError(res, 400, 'invalid_request', 9002313);
  });
});

describe('malformed requests get 4xx, never 500', () => {
  const post = (body: string | Buffer, contentType = 'application/x-www-form-urlencoded') =>
    https(f.emulator, f.emulator.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': contentType },
      body,
    });

  it.each([
    ['bad percent-encoding', 'grant_type=%zz&client_id=%E0%A4%A&scope=%'],
    [
      'invalid UTF-8',
      Buffer.from([0x67, 0x72, 0x61, 0x6e, 0x74, 0x5f, 0x74, 0x79, 0x70, 0x65, 0x3d, 0xff, 0xfe, 0xc3]),
    ],
    ['no body at all', ''],
    ['only separators', '&&&===&'],
    ['a JSON body', '{"grant_type":"client_credentials"}'],
    ['binary noise', Buffer.from(Array.from({ length: 2048 }, (_, i) => (i * 7919) % 256))],
  ])('%s → 400', async (_name, body) => {
    const res = await post(body);
    expect(res.status, res.text).toBe(400);
    expect(res.json().error).toMatch(/^(invalid_request|unsupported_grant_type)$/);
  });

  it('a JSON content type → 400 (Entra reads only form bodies)', async () => {
    const res = await post(JSON.stringify(assertionForm(partnerId(), 'x.y.z')), 'application/json');
    expectEntraError(res, 400, 'invalid_request', 900144);
  });

  it('a huge body → 413', async () => {
    const res = await post(`grant_type=client_credentials&client_assertion=${'a'.repeat(1024 * 1024)}`);
    expect(res.status).toBe(413);
    expect(res.json().error).toBe('invalid_request');
  });

  it('GET on the token endpoint → 400 AADSTS900561', async () => {
    expectEntraError(await https(f.emulator, f.emulator.tokenEndpoint), 400, 'invalid_request', 900561);
  });

  it('a malformed Authorization: Basic header → 400', async () => {
    const res = await postForm(
      f.emulator,
      { grant_type: 'client_credentials', scope: `${API_URI}/.default` },
      { headers: { authorization: 'Basic %%%' } },
    );
    expect(res.status).toBe(400);
  });
});

describe('discovery', () => {
  it('serves the v2 openid-configuration with a day of caching, for the GUID and the domain', async () => {
    for (const url of [
      f.emulator.openIdConfigurationUrl,
      f.emulator.openIdConfigurationUrl.replace(f.emulator.tenantId, f.emulator.tenantDomain),
    ]) {
      const res = await https(f.emulator, url);
      expect(res.status).toBe(200);
      expect(res.headers['cache-control']).toBe('max-age=86400, private');
      expect(res.json()).toMatchObject({
        issuer: f.emulator.issuer,
        token_endpoint: f.emulator.tokenEndpoint,
        jwks_uri: f.emulator.jwksUri,
        token_endpoint_auth_methods_supported: [
          'client_secret_post',
          'private_key_jwt',
          'client_secret_basic',
        ],
        id_token_signing_alg_values_supported: ['RS256'],
        subject_types_supported: ['pairwise'],
        request_uri_parameter_supported: false,
      });
    }
  });

  it('publishes the signing key with kty, use, kid, x5t, n, e, x5c and issuer', async () => {
    const res = await https(f.emulator, f.emulator.jwksUri);
    const [key] = res.json().keys as Record<string, unknown>[];
    expect(Object.keys(key!).sort()).toEqual(['e', 'issuer', 'kid', 'kty', 'n', 'use', 'x5c', 'x5t']);
    expect(key).toMatchObject({ kty: 'RSA', use: 'sig', issuer: f.emulator.issuer });
    expect(key!.x5t).toBe(key!.kid);
  });

  it('signAccessToken signs with the published key', async () => {
    const token = await f.emulator.signAccessToken({
      iss: f.emulator.issuer,
      aud: 'x',
      exp: Math.floor(Date.now() / 1000) + 60,
    });
    await expect(verifyWithJwks(token, f.emulator.issuer, 'x')).resolves.toBeDefined();
  });
});

describe('strict mode: single-use jti', () => {
  it('refuses a replayed assertion when enabled', async () => {
    const strict = await startFixture({ rejectReplayedAssertions: true });
    try {
      const assertion = await clientAssertion(
        strict.emulator.tokenEndpoint,
        strict.provisioned.partner.appId,
        strict.partnerCert,
      );
      const form = assertionForm(strict.provisioned.partner.appId, assertion);
      expect((await postForm(strict.emulator, form)).status).toBe(200);
      const replayed = await postForm(strict.emulator, form);
      expect(replayed.status).toBe(401);
      expect(replayed.json().error_description).toMatch(/has already been used/);

      // An assertion without a jti cannot be single-use: refused, never waved through.
      const noJti = await clientAssertion(
        strict.emulator.tokenEndpoint,
        strict.provisioned.partner.appId,
        strict.partnerCert,
        { claims: { jti: undefined } },
      );
      const refused = await postForm(strict.emulator, assertionForm(strict.provisioned.partner.appId, noJti));
      expect(refused.status).toBe(401);
      expect(refused.json().error_description).toMatch(/no jti claim; strict mode needs one/);
      expect(
        (await postForm(strict.emulator, assertionForm(strict.provisioned.partner.appId, noJti))).status,
      ).toBe(401);
    } finally {
      await strict.close();
    }
  });
});
