import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunningGateway, startGateway } from './gateway';
import {
  accessTokenClaims,
  EchoUpstream,
  httpsCall,
  startEchoUpstream,
  startTestIssuer,
  tempStateDir,
  TestIssuer,
} from './test-servers.test-helpers';

const API_APP_ID = randomUUID();
const PARTNER = randomUUID();

describe('validate-azure-ad-token', () => {
  const state = tempStateDir();
  let issuer: TestIssuer;
  let upstream: EchoUpstream;
  let gateway: RunningGateway;
  const gateways: RunningGateway[] = [];

  async function gatewayFor(inbound: string): Promise<RunningGateway> {
    const policyFile = join(state.dir, `policy-${randomUUID()}.xml`);
    writeFileSync(policyFile, `<policies>\n<inbound>\n<base />\n${inbound}\n</inbound>\n</policies>`);
    const g = await startGateway({
      stateDir: state.dir,
      policyFile,
      backendUrl: upstream.url,
      trustedCaPem: issuer.caPem,
      accessLog: false,
      entraInstance: issuer.url,
      namedValues: { 'tenant-id': issuer.tenantId, 'api-app-id': API_APP_ID, partner: PARTNER },
    });
    gateways.push(g);
    return g;
  }
  const call = (g: RunningGateway, token?: string) =>
    httpsCall(`${g.url}/orders`, {
      caPem: issuer.caPem,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
  const sign = (overrides = {}) =>
    issuer.sign(accessTokenClaims(issuer, API_APP_ID, { azp: PARTNER, ...overrides }));

  beforeAll(async () => {
    issuer = await startTestIssuer(state.dir);
    upstream = await startEchoUpstream();
    gateway = await gatewayFor(`
<validate-azure-ad-token tenant-id="{{tenant-id}}" output-token-variable-name="jwt">
  <client-application-ids><application-id>{{partner}}</application-id></client-application-ids>
  <backend-application-ids><application-id>{{api-app-id}}</application-id></backend-application-ids>
  <required-claims><claim name="roles" match="any"><value>Orders.Read</value></claim></required-claims>
</validate-azure-ad-token>
<set-header name="X-Client"><value>@(((Jwt)context.Variables["jwt"]).Claims.GetValueOrDefault("azp", ""))</value></set-header>`);
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.close()));
    await upstream?.close();
    await issuer?.close();
    state.remove();
  });

  it('accepts a token of the tenant, for the backend app, from an allowed client, keys from the tenant openid-config', async () => {
    const res = await call(gateway, await sign());
    expect(res.status).toBe(200);
    expect((res.json() as { headers: Record<string, string> }).headers['x-client']).toBe(PARTNER);
    expect(issuer.counts.metadata).toBeGreaterThanOrEqual(1);
  });

  it('accepts the v1 form: appid, the sts.windows.net issuer and the api:// audience', async () => {
    const v1 = await issuer.sign({
      ...accessTokenClaims(issuer, `api://${API_APP_ID}`, {
        iss: `https://sts.windows.net/${issuer.tenantId}/`,
        appid: PARTNER,
        ver: '1.0',
      }),
      azp: undefined,
    });
    expect((await call(gateway, v1)).status).toBe(200);
  });

  it('rejects: no token, another client, another audience, another tenant issuer, a missing role', async () => {
    expect((await call(gateway)).json()).toEqual({ statusCode: 401, message: 'JWT not present.' });
    expect((await call(gateway, await sign({ azp: randomUUID() }))).json()).toEqual({
      statusCode: 401,
      message: 'Client application is not allowed. Access denied.',
    });
    expect((await call(gateway, await sign({ aud: randomUUID() }))).status).toBe(401);
    expect((await call(gateway, await sign({ iss: `${issuer.url}/${randomUUID()}/v2.0` }))).status).toBe(401);
    expect((await call(gateway, await sign({ roles: ['Orders.Write'] }))).status).toBe(401);
  });

  it('uses failed-validation-httpcode and -error-message; refuses two token sources and a missing tenant-id', async () => {
    const g = await gatewayFor(
      '<validate-azure-ad-token tenant-id="{{tenant-id}}" failed-validation-httpcode="403" failed-validation-error-message="Nope"><client-application-ids><application-id>{{partner}}</application-id></client-application-ids></validate-azure-ad-token>',
    );
    expect((await call(g, await sign({ azp: randomUUID() }))).json()).toEqual({
      statusCode: 403,
      message: 'Nope',
    });
    expect((await call(g)).json()).toEqual({ statusCode: 403, message: 'Nope' });
    await expect(
      gatewayFor('<validate-azure-ad-token tenant-id="x" header-name="X-Token" token-value="abc" />'),
    ).rejects.toThrow(
      /:4: <validate-azure-ad-token>: header-name, query-parameter-name and token-value are mutually exclusive/,
    );
    await expect(gatewayFor('<validate-azure-ad-token />')).rejects.toThrow(
      /:4: <validate-azure-ad-token>: attribute tenant-id is required/,
    );
    // Without client-application-ids any application of the tenant would pass: refused, as APIM does.
    await expect(
      gatewayFor(
        '<validate-azure-ad-token tenant-id="{{tenant-id}}"><backend-application-ids><application-id>{{api-app-id}}</application-id></backend-application-ids></validate-azure-ad-token>',
      ),
    ).rejects.toThrow(/:4: <validate-azure-ad-token>: <client-application-ids> is required/);
  });
});
