import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessLogEntry } from './access-log';
import { HEALTH_PATH, RunningGateway, startGateway } from './gateway';
import {
  accessTokenClaims,
  EchoedRequest,
  EchoUpstream,
  httpsCall,
  startEchoUpstream,
  startTestIssuer,
  tempStateDir,
  TestIssuer,
} from './test-servers.test-helpers';
import { OffsetClock } from '@certflow/clock';

const API_APP_ID = randomUUID();
const API_APP_ID_URI = 'api://certflow-orders';
const REAL_POLICY = resolve(__dirname, '../../../apps/api/apim/policy.xml');

function policyXml(validateJwtAttributes = '', extraInbound = '', outbound = ''): string {
  return `<policies>
  <inbound>
    <base />
    <validate-jwt header-name="Authorization"${validateJwtAttributes}>
      <openid-config url="{{entra-instance}}/{{tenant-id}}/v2.0/.well-known/openid-configuration" />
      <audiences><audience>{{api-app-id}}</audience></audiences>
    </validate-jwt>
    ${extraInbound}
  </inbound>
  <backend><forward-request timeout="5" /></backend>
  <outbound><base />${outbound}</outbound>
  <on-error><base /></on-error>
</policies>`;
}

describe('local gateway', () => {
  const state = tempStateDir();
  let issuer: TestIssuer;
  let upstream: EchoUpstream;
  let gateway: RunningGateway;
  const log: AccessLogEntry[] = [];
  const gateways: RunningGateway[] = [];
  const clock = new OffsetClock();

  const namedValues = (): Record<string, string> => ({
    'entra-instance': issuer.url,
    'tenant-id': issuer.tenantId,
    'api-app-id': API_APP_ID,
    'api-app-id-uri': API_APP_ID_URI,
  });

  async function gatewayFor(
    xml: string | { file: string },
    extra: Partial<Parameters<typeof startGateway>[0]> = {},
  ): Promise<RunningGateway> {
    let policyFile: string;
    if (typeof xml === 'string') {
      policyFile = join(state.dir, `policy-${randomUUID()}.xml`);
      writeFileSync(policyFile, xml);
    } else {
      policyFile = xml.file;
    }
    const g = await startGateway({
      stateDir: state.dir,
      policyFile,
      namedValues: namedValues(),
      backendUrl: upstream.url,
      trustedCaPem: issuer.caPem,
      accessLog: (e) => log.push(e),
      clock,
      ...extra,
    });
    gateways.push(g);
    return g;
  }

  const call = (g: RunningGateway, path: string, opts: Omit<Parameters<typeof httpsCall>[1], 'caPem'> = {}) =>
    httpsCall(`${g.url}${path}`, { caPem: issuer.caPem, ...opts });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const token = (overrides = {}) => issuer.sign(accessTokenClaims(issuer, API_APP_ID, overrides));

  beforeAll(async () => {
    issuer = await startTestIssuer(state.dir);
    upstream = await startEchoUpstream();
    gateway = await gatewayFor(policyXml());
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.close()));
    await upstream?.close();
    await issuer?.close();
    state.remove();
  });

  it('answers the health probe with 200 without running the policy', async () => {
    const res = await call(gateway, HEALTH_PATH);
    expect(res.status).toBe(200);
    expect(upstream.received.some((r) => r.url === HEALTH_PATH)).toBe(false);
  });

  it('serves HTTPS on https://localhost:PORT with a certificate from the development CA', () => {
    expect(gateway.url).toMatch(/^https:\/\/localhost:\d+$/);
  });

  it('proxies a request with a valid token and sets the forwarding headers itself', async () => {
    const jwt = await token();
    const res = await call(gateway, '/orders?page=2', {
      headers: {
        ...bearer(jwt),
        'x-forwarded-for': '6.6.6.6',
        'x-forwarded-proto': 'http',
        'x-original-host': 'evil.example',
        'x-drop-me': 'hop',
        connection: 'keep-alive, x-drop-me',
        'x-partner': 'contoso',
        origin: gateway.url,
        'sec-fetch-site': 'same-origin',
      },
    });
    expect(res.status).toBe(200);
    expect(res.headers['x-upstream']).toBe('echo');
    const echoed = res.json() as EchoedRequest;
    expect(echoed.url).toBe('/orders?page=2');
    expect(echoed.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(echoed.headers['x-forwarded-proto']).toBe('https');
    expect(echoed.headers['x-forwarded-port']).toBe(String(gateway.url.split(':')[2]));
    expect(echoed.headers['x-original-host']).toBe(gateway.url.slice('https://'.length));
    expect(echoed.headers['x-drop-me']).toBeUndefined();
    expect(echoed.headers['x-partner']).toBe('contoso');
    expect(echoed.headers.authorization).toBe(`Bearer ${jwt}`); // the API validates again
    // Checked by the gateway; behind it the gateway is the browser's origin, not the API.
    expect(echoed.headers.origin).toBeUndefined();
    expect(echoed.headers['sec-fetch-site']).toBeUndefined();
  });

  it('sends a request body to the backend with its own Content-Length, and the response back', async () => {
    const body = 'x'.repeat(200_000);
    const res = await call(gateway, '/orders', {
      method: 'POST',
      headers: { ...bearer(await token()), 'content-type': 'text/plain' },
      body: [body.slice(0, 1000), body.slice(1000)],
    });
    expect(res.status).toBe(200);
    const echoed = res.json() as EchoedRequest;
    expect(echoed.body).toBe(body);
    expect(echoed.headers['content-length']).toBe(String(body.length));
    expect(echoed.headers['transfer-encoding']).toBeUndefined();
  });

  it('answers 401 "JWT not present." without a token, and does not call the backend', async () => {
    const before = upstream.received.length;
    const res = await call(gateway, '/orders');
    expect(res.status).toBe(401);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toEqual({ statusCode: 401, message: 'JWT not present.' });
    expect(upstream.received.length).toBe(before);
  });

  it('requires the Bearer scheme in the Authorization header', async () => {
    const jwt = await token();
    expect((await call(gateway, '/orders', { headers: { authorization: jwt } })).json()).toEqual({
      statusCode: 401,
      message: 'JWT not present.',
    });
    expect((await call(gateway, '/orders', { headers: { authorization: `Basic ${jwt}` } })).status).toBe(401);
    expect((await call(gateway, '/orders', { headers: { authorization: `bearer ${jwt}` } })).status).toBe(
      200,
    );
  });

  it('refuses a malformed token', async () => {
    const res = await call(gateway, '/orders', { headers: bearer('not-a-jwt') });
    expect(res.json()).toEqual({ statusCode: 401, message: 'Invalid JWT.' });
  });

  it('refuses a token for another audience', async () => {
    const res = await call(gateway, '/orders', { headers: bearer(await token({ aud: randomUUID() })) });
    expect(res.status).toBe(401);
    expect((res.json() as { message: string }).message).toMatch(
      /^Audience validation failed\..*Access denied\.$/,
    );
  });

  it('refuses an expired token', async () => {
    const past = Math.floor(Date.now() / 1000) - 7200;
    const res = await call(gateway, '/orders', {
      headers: bearer(await token({ iat: past, nbf: past, exp: past + 3600 })),
    });
    expect(res.status).toBe(401);
    expect((res.json() as { message: string }).message).toMatch(
      /^Lifetime validation failed\. The token is expired\./,
    );
  });

  it('refuses a token without exp (require-expiration-time defaults to true)', async () => {
    const claims = accessTokenClaims(issuer, API_APP_ID);
    delete claims.exp;
    const res = await call(gateway, '/orders', { headers: bearer(await issuer.sign(claims)) });
    expect(res.status).toBe(401);
    expect((res.json() as { message: string }).message).toMatch(/missing an Expiration Time/);
  });

  it('refuses a token from another issuer (the openid-config issuer is required when <issuers> is absent)', async () => {
    const res = await call(gateway, '/orders', {
      headers: bearer(await token({ iss: `https://login.microsoftonline.com/${issuer.tenantId}/v2.0` })),
    });
    expect(res.status).toBe(401);
    expect((res.json() as { message: string }).message).toMatch(/^Issuer validation failed\./);
  });

  it('refuses alg "none" and HS256 signed with the issuer public key', async () => {
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const claims = accessTokenClaims(issuer, API_APP_ID);
    const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`;
    const none = await call(gateway, '/orders', { headers: bearer(unsigned) });
    expect(none.status).toBe(401);
    expect((none.json() as { message: string }).message).toMatch(/Algorithm 'none' is not supported/);

    const { createHmac, createPublicKey } = await import('node:crypto');
    const publicPem = createPublicKey(issuer.keys[0]!.privateKeyPem)
      .export({ type: 'spki', format: 'pem' })
      .toString();
    const input = `${b64({ alg: 'HS256', typ: 'JWT', kid: issuer.keys[0]!.kid })}.${b64(claims)}`;
    const forged = `${input}.${createHmac('sha256', publicPem).update(input).digest('base64url')}`;
    const hs = await call(gateway, '/orders', { headers: bearer(forged) });
    expect(hs.status).toBe(401);
    expect((hs.json() as { message: string }).message).toMatch(/Algorithm 'HS256' is not supported/);
  });

  it('refuses a token whose signature does not match', async () => {
    const jwt = await token();
    const [h, p] = jwt.split('.');
    const other = await issuer.sign({ other: true });
    const res = await call(gateway, '/orders', { headers: bearer(`${h}.${p}.${other.split('.')[2]}`) });
    expect(res.status).toBe(401);
    expect((res.json() as { message: string }).message).toMatch(/^Signature validation failed/);
  });

  it('accepts PS256 and RS512 tokens', async () => {
    for (const alg of ['PS256', 'RS512']) {
      const res = await call(gateway, '/orders', {
        headers: bearer(await issuer.sign(accessTokenClaims(issuer, API_APP_ID), { alg })),
      });
      expect(res.status, alg).toBe(200);
    }
  });

  it('re-fetches the keys on an unknown kid at most once per 5 minutes', async () => {
    const g = await gatewayFor(policyXml());
    expect((await call(g, '/orders', { headers: bearer(await token()) })).status).toBe(200);
    const pulls = issuer.counts.jwks;

    // an unknown kid right after the first pull: no new pull allowed yet
    const unknown = await issuer.sign(accessTokenClaims(issuer, API_APP_ID), {
      header: { kid: 'no-such-key' },
    });
    const first = await call(g, '/orders', { headers: bearer(unknown) });
    expect(first.json()).toEqual({
      statusCode: 401,
      message: "Signature validation failed. Unable to match key: kid: 'no-such-key'. Access denied.",
    });
    expect(issuer.counts.jwks).toBe(pulls);

    // 5 minutes later: pulled once more, still unknown → 401; and not again right after
    clock.set(clock.offsetMs + 5 * 60_000);
    expect((await call(g, '/orders', { headers: bearer(unknown) })).status).toBe(401);
    expect(issuer.counts.jwks).toBe(pulls + 1);
    expect((await call(g, '/orders', { headers: bearer(unknown) })).status).toBe(401);
    expect(issuer.counts.jwks).toBe(pulls + 1);
  });

  it('accepts a token signed with a rotated key once the refetch is allowed', async () => {
    const g = await gatewayFor(policyXml());
    expect((await call(g, '/orders', { headers: bearer(await token()) })).status).toBe(200);
    const pulls = issuer.counts.jwks;
    const next = issuer.addKey();
    const rotated = await issuer.sign(accessTokenClaims(issuer, API_APP_ID), { key: next });

    clock.set(clock.offsetMs + 5 * 60_000);
    const res = await call(g, '/orders', { headers: bearer(rotated) });
    expect(res.status).toBe(200);
    expect(issuer.counts.jwks).toBe(pulls + 1);
    // the old key still works (both published)
    expect((await call(g, '/orders', { headers: bearer(await token()) })).status).toBe(200);
    expect(issuer.counts.jwks).toBe(pulls + 1);
  });

  it('uses failed-validation-httpcode and failed-validation-error-message', async () => {
    const g = await gatewayFor(
      policyXml(
        ' failed-validation-httpcode="403" failed-validation-error-message="Unauthorized. Access token is missing or invalid."',
      ),
    );
    const res = await call(g, '/orders');
    expect(res.status).toBe(403);
    expect(res.json()).toEqual({
      statusCode: 403,
      message: 'Unauthorized. Access token is missing or invalid.',
    });
  });

  it('reads the token from a query parameter and honours clock-skew', async () => {
    const xml = policyXml().replace(
      'header-name="Authorization"',
      'query-parameter-name="access_token" clock-skew="60"',
    );
    const g = await gatewayFor(xml);
    const past = Math.floor(clock.nowMs() / 1000) - 3630; // the gateway's clock
    const justExpired = await token({ iat: past, nbf: past, exp: past + 3600 }); // expired 30 s ago
    expect((await call(g, `/orders?access_token=${justExpired}`)).status).toBe(200);
    expect((await call(g, '/orders', { headers: bearer(justExpired) })).json()).toEqual({
      statusCode: 401,
      message: 'JWT not present.',
    });
    const longExpired = await token({ iat: past - 60, nbf: past - 60, exp: past + 3540 }); // 90 s ago
    expect((await call(g, `/orders?access_token=${longExpired}`)).status).toBe(401);
  });

  it('runs set-header in inbound and outbound, and return-response', async () => {
    const g = await gatewayFor(
      policyXml(
        '',
        `<set-header name="x-partner" exists-action="delete" />
         <set-header name="x-gateway" exists-action="override"><value>certflow</value></set-header>`,
        `<set-header name="x-upstream" exists-action="append"><value>gateway</value></set-header>`,
      ),
    );
    const res = await call(g, '/orders', { headers: { ...bearer(await token()), 'x-partner': 'contoso' } });
    expect(res.status).toBe(200);
    const echoed = res.json() as EchoedRequest;
    expect(echoed.headers['x-partner']).toBeUndefined();
    expect(echoed.headers['x-gateway']).toBe('certflow');
    expect(res.headers['x-upstream']).toBe('echo, gateway');

    const returning = await gatewayFor(`<policies><inbound>
      <return-response><set-status code="418" reason="Teapot" /><set-header name="content-type"><value>text/plain</value></set-header><set-body>short and stout</set-body></return-response>
    </inbound></policies>`);
    const before = upstream.received.length;
    const teapot = await call(returning, '/anything');
    expect(teapot.status).toBe(418);
    expect(teapot.text).toBe('short and stout');
    expect(upstream.received.length).toBe(before);
  });

  it('answers 413 for a body over the limit (declared or streamed)', async () => {
    const g = await gatewayFor(policyXml(), { maxRequestBodyBytes: 1024 });
    const jwt = await token();
    const declared = await call(g, '/orders', {
      method: 'POST',
      headers: { ...bearer(jwt), 'content-type': 'text/plain' },
      body: 'y'.repeat(4096),
    });
    expect(declared.status).toBe(413);
    expect(declared.json()).toEqual({
      statusCode: 413,
      message: 'The request body is larger than the limit of 1024 bytes.',
    });
    const streamed = await call(g, '/orders', {
      method: 'POST',
      headers: { ...bearer(jwt), 'transfer-encoding': 'chunked' },
      body: ['z'.repeat(800), 'z'.repeat(800)],
    });
    expect(streamed.status).toBe(413);
    expect((await call(g, '/orders', { method: 'POST', headers: bearer(jwt), body: 'small' })).status).toBe(
      200,
    );
  });

  it('answers 504 in APIM form when the backend does not answer: the policy timeout, else upstreamTimeoutMs', async () => {
    const silent = createServer(() => undefined); // reads the request, never answers
    await new Promise<void>((done) => silent.listen(0, '127.0.0.1', done));
    const silentUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    try {
      const byDefault = await gatewayFor(policyXml().replace(' timeout="5"', ''), {
        backendUrl: silentUrl,
        upstreamTimeoutMs: 300,
      });
      const res = await call(byDefault, '/orders', { headers: bearer(await token()) });
      expect(res.status).toBe(504);
      expect(res.json()).toEqual({ statusCode: 504, message: 'The backend did not answer within 0.3 s' });
      // A forward-request timeout in the policy wins over the gateway's default.
      const byPolicy = await gatewayFor(policyXml().replace('timeout="5"', 'timeout="1"'), {
        backendUrl: silentUrl,
        upstreamTimeoutMs: 60_000,
      });
      const late = await call(byPolicy, '/orders', { headers: bearer(await token()) });
      expect(late.status).toBe(504);
      expect(late.json()).toEqual({ statusCode: 504, message: 'The backend did not answer within 1 s' });
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });

  it('answers 502 in APIM form when the backend is down', async () => {
    const down = await startEchoUpstream();
    const downUrl = down.url;
    await down.close();
    const g = await gatewayFor(policyXml(), { backendUrl: downUrl });
    const res = await call(g, '/orders', { headers: bearer(await token()) });
    expect(res.status).toBe(502);
    const body = res.json() as { statusCode: number; message: string };
    expect(body.statusCode).toBe(502);
    expect(body.message).toMatch(/^The backend service is unavailable: .*ECONNREFUSED/);
  });

  it('survives a client that aborts mid-request', async () => {
    const jwt = await token();
    await new Promise<void>((done) => {
      const req = httpsRequest(`${gateway.url}/orders`, {
        method: 'POST',
        ca: issuer.caPem,
        agent: false,
        headers: { ...bearer(jwt), 'content-length': '100000' },
      });
      req.on('error', () => done());
      req.write('partial');
      setTimeout(() => {
        req.destroy();
        done();
      }, 100);
    });
    expect((await call(gateway, HEALTH_PATH)).status).toBe(200);
    expect((await call(gateway, '/orders', { headers: bearer(jwt) })).status).toBe(200);
  });

  it('logs one JSON line per request without the Authorization header or the token', async () => {
    const jwt = await token();
    log.length = 0;
    await call(gateway, `/orders?access_token=${jwt}`, { headers: bearer(jwt) });
    await call(gateway, '/orders', { headers: bearer(`${jwt}x`) });
    await new Promise((r) => setTimeout(r, 50));
    expect(log).toHaveLength(2);
    const text = JSON.stringify(log);
    expect(text).not.toContain(jwt.split('.')[1]!);
    expect(text).not.toContain(jwt.split('.')[2]!);
    expect(text.toLowerCase()).not.toContain('authorization');
    expect(log[0]).toMatchObject({
      event: 'request',
      method: 'GET',
      path: '/orders',
      status: 200,
      policy: 'forwarded',
    });
    expect(log[1]).toMatchObject({
      status: 401,
      policy: 'rejected',
      errorSource: 'validate-jwt',
      errorReason: 'TokenSignatureInvalid',
    });
    expect(typeof log[0]!.durationMs).toBe('number');
  });

  describe('with the real apps/api/apim/policy.xml', () => {
    let real: RunningGateway;
    beforeAll(async () => {
      real = await gatewayFor({ file: REAL_POLICY });
    });

    it('accepts a v2 token whose aud is the API app id, and one whose aud is the App ID URI', async () => {
      expect((await call(real, '/orders', { headers: bearer(await token()) })).status).toBe(200);
      const v1Style = await issuer.sign(accessTokenClaims(issuer, API_APP_ID_URI));
      expect((await call(real, '/orders', { headers: bearer(v1Style) })).status).toBe(200);
    });

    it("accepts a v1 token (the v1 document's issuer, aud the App ID URI), not one of another tenant", async () => {
      const v1 = (iss: string) =>
        issuer.sign(accessTokenClaims(issuer, API_APP_ID_URI, { iss, ver: '1.0', azp: undefined }));
      expect((await call(real, '/orders', { headers: bearer(await v1(issuer.v1Issuer)) })).status).toBe(200);
      const otherTenant = issuer.v1Issuer.replace(issuer.tenantId, randomUUID());
      expect((await call(real, '/orders', { headers: bearer(await v1(otherTenant)) })).status).toBe(401);
    });

    it('refuses any other aud, and a missing token', async () => {
      const wrong = await call(real, '/orders', {
        headers: bearer(await issuer.sign(accessTokenClaims(issuer, 'api://someone-else'))),
      });
      expect(wrong.status).toBe(401);
      expect(wrong.json()).toEqual({
        statusCode: 401,
        message: 'Claim aud value of api://someone-else is not allowed. Access denied.',
      });
      expect((await call(real, '/orders')).json()).toEqual({ statusCode: 401, message: 'JWT not present.' });
    });
  });
});
