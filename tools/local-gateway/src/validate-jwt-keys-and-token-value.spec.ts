/**
 * Conformance: validate-jwt's issuer-signing-keys (symmetric `<key>` text, RSA `n`/`e`, `id`),
 * token-value, a custom header-name, require-scheme, require-expiration-time, required-claims
 * with match and separator, validate-azure-ad-token's token-value, and set-header's skip, each
 * with the request and the expected answer, through a real gateway over HTTPS.
 */
import { importPKCS8, JWTPayload, SignJWT } from 'jose';
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunningGateway, startGateway } from './gateway';
import { compilePolicyDocument } from './policy-document';
import { OpenIdMetadataCache } from './openid-metadata-cache';
import {
  accessTokenClaims,
  EchoUpstream,
  httpsCall,
  newSigningKey,
  startEchoUpstream,
  startTestIssuer,
  tempStateDir,
  TestIssuer,
} from './test-servers.test-helpers';

const API = randomUUID();
const SECRET = randomBytes(32);
const RSA_KID = randomUUID();
const RSA = newSigningKey(RSA_KID);
const std = (b64url: string): string => Buffer.from(b64url, 'base64url').toString('base64');
const nowS = (): number => Math.floor(Date.now() / 1000);
const claims = (overrides: JWTPayload = {}): JWTPayload => ({
  iss: 'https://partner-idp.test',
  aud: API,
  iat: nowS(),
  nbf: nowS(),
  exp: nowS() + 600,
  sub: 'partner',
  ...overrides,
});
const hs = (payload: JWTPayload, secret = SECRET, alg = 'HS256', kid?: string): Promise<string> =>
  new SignJWT(payload).setProtectedHeader({ typ: 'JWT', alg, ...(kid ? { kid } : {}) }).sign(secret);
const rs = async (payload: JWTPayload, key = RSA, kid: string | undefined = key.kid): Promise<string> =>
  new SignJWT(payload)
    .setProtectedHeader({ typ: 'JWT', alg: 'RS256', ...(kid ? { kid } : {}) })
    .sign(await importPKCS8(key.privateKeyPem, 'RS256'));

describe('validate-jwt issuer-signing-keys and token-value', () => {
  const state = tempStateDir();
  let issuer: TestIssuer;
  let upstream: EchoUpstream;
  const gateways: RunningGateway[] = [];

  async function gatewayFor(inbound: string): Promise<RunningGateway> {
    const policyFile = join(state.dir, `policy-${randomUUID()}.xml`);
    writeFileSync(policyFile, `<policies>\n<inbound>\n${inbound}\n</inbound>\n</policies>`);
    const g = await startGateway({
      stateDir: state.dir,
      policyFile,
      backendUrl: upstream.url,
      trustedCaPem: issuer.caPem,
      accessLog: false,
      entraInstance: issuer.url,
      namedValues: {
        'api-app-id': API,
        'tenant-id': issuer.tenantId,
        secret: SECRET.toString('base64'),
        n: std(RSA.publicJwk.n!),
        e: std(RSA.publicJwk.e!),
        kid: RSA_KID,
      },
    });
    gateways.push(g);
    return g;
  }
  const call = (g: RunningGateway, headers: Record<string, string> = {}, path = '/orders') =>
    httpsCall(`${g.url}${path}`, { caPem: issuer.caPem, headers });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const message = async (p: ReturnType<typeof call>): Promise<[number, string]> => {
    const res = await p;
    return [res.status, res.status === 200 ? '' : (res.json() as { message: string }).message];
  };

  beforeAll(async () => {
    issuer = await startTestIssuer(state.dir);
    upstream = await startEchoUpstream();
  });
  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.close()));
    await upstream?.close();
    await issuer?.close();
    state.remove();
  });

  it('issuer-signing-keys <key>base64</key>: HS256/HS512 signed with that key pass; another key, alg none and RS256 do not', async () => {
    const g = await gatewayFor(`<validate-jwt header-name="Authorization">
  <issuer-signing-keys><key>{{secret}}</key></issuer-signing-keys>
  <audiences><audience>{{api-app-id}}</audience></audiences>
</validate-jwt>`);
    expect(await message(call(g, bearer(await hs(claims()))))).toEqual([200, '']);
    expect(await message(call(g, bearer(await hs(claims(), SECRET, 'HS512'))))).toEqual([200, '']);
    expect(await message(call(g, bearer(await hs(claims(), randomBytes(32)))))).toEqual([
      401,
      'Signature validation failed. The signature does not match any of the issuer signing keys. Access denied.',
    ]);
    expect(await message(call(g, bearer(await hs(claims({ aud: 'other' })))))).toEqual([
      401,
      `Audience validation failed. Audiences: 'other'. Did not match: validAudiences: '${API}'. Access denied.`,
    ]);
    const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims())).toString('base64url')}.`;
    expect((await message(call(g, bearer(none))))[0]).toBe(401);
    // An RS256 token has no RSA key here: no symmetric key is ever used for it.
    expect(await message(call(g, bearer(await rs(claims()))))).toEqual([
      401,
      `Signature validation failed. Unable to match key: kid: '${RSA_KID}'. Access denied.`,
    ]);
  });

  it('issuer-signing-keys <key n e id>: RS256 with that key and kid passes; another kid, another key and HS256 do not', async () => {
    const g = await gatewayFor(`<validate-jwt header-name="Authorization">
  <issuer-signing-keys><key id="{{kid}}" n="{{n}}" e="{{e}}" /></issuer-signing-keys>
  <issuers><issuer>https://partner-idp.test</issuer></issuers>
</validate-jwt>`);
    expect(await message(call(g, bearer(await rs(claims()))))).toEqual([200, '']);
    expect(await message(call(g, bearer(await rs(claims(), RSA, undefined))))).toEqual([200, '']);
    expect(await message(call(g, bearer(await rs(claims(), RSA, 'other-kid'))))).toEqual([
      401,
      "Signature validation failed. Unable to match key: kid: 'other-kid'. Access denied.",
    ]);
    expect(await message(call(g, bearer(await rs(claims(), newSigningKey(RSA_KID)))))).toEqual([
      401,
      'Signature validation failed. The signature does not match any of the issuer signing keys. Access denied.',
    ]);
    expect((await message(call(g, bearer(await rs(claims({ iss: 'https://evil.test' }))))))[1]).toMatch(
      /^Issuer validation failed/,
    );
    expect(await message(call(g, bearer(await hs(claims()))))).toEqual([
      401,
      "Signature validation failed. Algorithm 'HS256' is not supported; expected one of RS256, PS256, RS512. Access denied.",
    ]);
  });

  it('issuer-signing-keys next to openid-config: keys from both, issuers from the openid-config', async () => {
    const g = await gatewayFor(`<validate-jwt header-name="Authorization">
  <openid-config url="${issuer.openIdConfigurationUrl}" />
  <issuer-signing-keys><key n="{{n}}" e="{{e}}" /></issuer-signing-keys>
</validate-jwt>`);
    expect((await call(g, bearer(await issuer.sign(accessTokenClaims(issuer, API))))).status).toBe(200);
    expect((await call(g, bearer(await rs(claims({ iss: issuer.issuer }))))).status).toBe(200);
    expect((await message(call(g, bearer(await rs(claims())))))[1]).toMatch(
      /^Issuer validation failed\. Issuer: 'https:\/\/partner-idp\.test'/,
    );
  });

  it('token-value: the expression gives the token; empty → JWT not present', async () => {
    const g =
      await gatewayFor(`<validate-jwt token-value="@(context.Request.Headers.GetValueOrDefault(&quot;X-Partner-Token&quot;, &quot;&quot;))">
  <openid-config url="${issuer.openIdConfigurationUrl}" />
  <audiences><audience>{{api-app-id}}</audience></audiences>
</validate-jwt>`);
    const token = await issuer.sign(accessTokenClaims(issuer, API));
    expect(await message(call(g, { 'x-partner-token': token }))).toEqual([200, '']);
    expect(await message(call(g, bearer(token)))).toEqual([401, 'JWT not present.']);
    expect(await message(call(g, { 'x-partner-token': `${token}x` }))).toEqual([
      401,
      'Signature validation failed. The signature does not match any of the issuer signing keys. Access denied.',
    ]);
    const q =
      await gatewayFor(`<validate-jwt token-value="@(context.Request.Url.Query.GetValueOrDefault(&quot;t&quot;))" failed-validation-httpcode="403">
  <openid-config url="${issuer.openIdConfigurationUrl}" />
</validate-jwt>`);
    expect((await call(q, {}, `/orders?t=${token}`)).status).toBe(200);
    expect(await message(call(q, {}, '/orders'))).toEqual([403, 'JWT not present.']);
  });

  it('validate-azure-ad-token token-value', async () => {
    const claims = accessTokenClaims(issuer, API);
    const g =
      await gatewayFor(`<validate-azure-ad-token tenant-id="{{tenant-id}}" token-value="@(context.Request.Headers.GetValueOrDefault(&quot;X-Partner-Token&quot;, &quot;&quot;))">
  <client-application-ids><application-id>${String(claims.azp)}</application-id></client-application-ids>
  <backend-application-ids><application-id>{{api-app-id}}</application-id></backend-application-ids>
</validate-azure-ad-token>`);
    const token = await issuer.sign(claims);
    expect(await message(call(g, { 'x-partner-token': token }))).toEqual([200, '']);
    expect(await message(call(g, bearer(token)))).toEqual([401, 'JWT not present.']);
  });

  it('refuses at load, naming file, line and element: certificate-id, bad keys, two token sources, unsupported token-value expressions', () => {
    const opts = { namedValues: {}, metadataCache: (url: string) => new OpenIdMetadataCache(url) };
    const load = (inner: string, attributes = 'header-name="Authorization"'): string => {
      try {
        compilePolicyDocument(
          `<policies>\n<inbound>\n<validate-jwt ${attributes}>\n${inner}\n</validate-jwt>\n</inbound>\n</policies>`,
          'p.xml',
          opts,
        );
      } catch (err) {
        return (err as Error).message;
      }
      return 'loaded';
    };
    const ok = `<issuer-signing-keys><key>${SECRET.toString('base64')}</key></issuer-signing-keys>`;
    expect(load(ok)).toBe('loaded');
    expect(load(`<issuer-signing-keys>\n<key certificate-id="my-cert" />\n</issuer-signing-keys>`)).toBe(
      'p.xml:5: <key>: attribute certificate-id is not supported by this gateway yet',
    );
    expect(load('<issuer-signing-keys>\n<key>not base64!</key>\n</issuer-signing-keys>')).toMatch(
      /^p\.xml:5: <key>: a <key> needs a base64 symmetric key/,
    );
    expect(load('<issuer-signing-keys>\n<key>c2hvcnQ=</key>\n</issuer-signing-keys>')).toBe(
      'p.xml:5: <key>: the symmetric key is shorter than 128 bits',
    );
    expect(load('<issuer-signing-keys>\n<key n="AQAB" e="AQAB" />\n</issuer-signing-keys>')).toBe(
      'p.xml:5: <key>: the RSA modulus n is shorter than 2048 bits',
    );
    expect(load(`<issuer-signing-keys>\n<key n="${RSA.publicJwk.n}" />\n</issuer-signing-keys>`)).toBe(
      'p.xml:5: <key>: an RSA <key> needs both n and e',
    );
    expect(load('<issuer-signing-keys>\n</issuer-signing-keys>')).toBe(
      'p.xml:4: <issuer-signing-keys>: at least one <key> is required',
    );
    expect(load('<audiences><audience>x</audience></audiences>')).toMatch(
      /^p\.xml:3: <validate-jwt>: an <openid-config url> or <issuer-signing-keys> is required/,
    );
    expect(load(ok, 'header-name="Authorization" token-value="abc"')).toMatch(
      /^p\.xml:3: <validate-jwt>: exactly one of header-name, query-parameter-name or token-value/,
    );
    expect(load(ok, 'token-value="@(context.Request.Body.As&lt;string&gt;())"')).toMatch(
      /^p\.xml:3: <validate-jwt>: attribute token-value: policy expression not supported by this gateway/,
    );
    expect(
      load(
        ok,
        'token-value="@(context.Request.Headers.GetValueOrDefault(&quot;X&quot;, &quot;&quot;))" require-scheme="Bearer"',
      ),
    ).toMatch(/require-scheme applies only to the Authorization header/);
    expect(load(ok, 'token-value="abc"')).toBe('loaded');
  });

  const keyed = (attributes: string, inner = '') =>
    gatewayFor(`<validate-jwt ${attributes}>
  <issuer-signing-keys><key>{{secret}}</key></issuer-signing-keys>
  <audiences><audience>{{api-app-id}}</audience></audiences>
  ${inner}
</validate-jwt>`);

  it('header-name other than Authorization: the raw token in that header, no scheme; Authorization is not read', async () => {
    const g = await keyed('header-name="X-Partner-Token"');
    const token = await hs(claims());
    expect(await message(call(g, { 'x-partner-token': token }))).toEqual([200, '']);
    expect((await message(call(g, bearer(token))))[0]).toBe(401);
    expect((await message(call(g, { 'x-partner-token': await hs(claims(), randomBytes(32)) })))[0]).toBe(401);
  });

  it('require-scheme: the Authorization header must use that scheme', async () => {
    const g = await keyed('header-name="Authorization" require-scheme="PoP"');
    const token = await hs(claims());
    expect(await message(call(g, { authorization: `PoP ${token}` }))).toEqual([200, '']);
    expect((await message(call(g, bearer(token))))[0]).toBe(401);
    expect((await message(call(g, { authorization: token })))[0]).toBe(401);
  });

  it('require-expiration-time: a token without exp is refused by default, accepted with "false"', async () => {
    const noExp = claims();
    delete noExp.exp;
    const token = await hs(noExp);
    expect((await message(call(await keyed('header-name="Authorization"'), bearer(token))))[0]).toBe(401);
    const lenient = await keyed('header-name="Authorization" require-expiration-time="false"');
    expect(await message(call(lenient, bearer(token)))).toEqual([200, '']);
    // An exp that is present is still enforced.
    expect((await message(call(lenient, bearer(await hs(claims({ exp: nowS() - 3600 }))))))[0]).toBe(401);
  });

  it('required-claims with separator: match="all" needs every value, match="any" one of them', async () => {
    const all = await keyed(
      'header-name="Authorization"',
      `<required-claims><claim name="scp" match="all" separator=" "><value>Orders.Read</value><value>Orders.Write</value></claim></required-claims>`,
    );
    expect(await message(call(all, bearer(await hs(claims({ scp: 'Orders.Write x Orders.Read' })))))).toEqual(
      [200, ''],
    );
    expect(await message(call(all, bearer(await hs(claims({ scp: 'Orders.Read' })))))).toEqual([
      401,
      'Claim scp value of Orders.Read is not allowed. Access denied.',
    ]);
    // Without the separator the whole string is one value.
    const whole = await keyed(
      'header-name="Authorization"',
      `<required-claims><claim name="scp" match="any"><value>Orders.Read</value></claim></required-claims>`,
    );
    expect(
      (await message(call(whole, bearer(await hs(claims({ scp: 'Orders.Read Orders.Write' }))))))[0],
    ).toBe(401);
    const any = await keyed(
      'header-name="Authorization"',
      `<required-claims><claim name="scp" match="any" separator=","><value>Orders.Read</value><value>Orders.Write</value></claim></required-claims>`,
    );
    expect(await message(call(any, bearer(await hs(claims({ scp: 'x,Orders.Write' })))))).toEqual([200, '']);
    expect((await message(call(any, bearer(await hs(claims({ scp: 'x,y' }))))))[0]).toBe(401);
    expect(await message(call(any, bearer(await hs(claims()))))).toEqual([
      401,
      'JWT token is missing the following claims: scp. Access denied.',
    ]);
  });

  it('set-header exists-action="skip": a header the client sent is kept, a missing one is set', async () => {
    const g = await gatewayFor(
      `<set-header name="x-tenant" exists-action="skip"><value>default-tenant</value></set-header>`,
    );
    const sent = await call(g, { 'x-tenant': 'contoso' });
    expect((sent.json() as { headers: Record<string, string> }).headers['x-tenant']).toBe('contoso');
    const missing = await call(g);
    expect((missing.json() as { headers: Record<string, string> }).headers['x-tenant']).toBe(
      'default-tenant',
    );
  });
});
