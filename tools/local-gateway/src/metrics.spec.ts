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

describe('/metrics', () => {
  const state = tempStateDir();
  let issuer: TestIssuer;
  let upstream: EchoUpstream;
  const gateways: RunningGateway[] = [];

  async function gatewayFor(
    extra: Partial<Parameters<typeof startGateway>[0]> = {},
  ): Promise<RunningGateway> {
    const file = (xml: string) => {
      const f = join(state.dir, `policy-${randomUUID()}.xml`);
      writeFileSync(f, xml);
      return f;
    };
    const g = await startGateway({
      stateDir: state.dir,
      policyFile: file(`<policies><inbound><validate-jwt header-name="Authorization">
  <openid-config url="{{entra-instance}}/{{tenant-id}}/v2.0/.well-known/openid-configuration" />
  <audiences><audience>{{api-app-id}}</audience></audiences>
</validate-jwt></inbound></policies>`),
      operations: [
        {
          method: 'GET',
          urlTemplate: '/orders/{id}',
          policyFile: file('<policies><inbound><base /></inbound></policies>'),
        },
      ],
      namedValues: { 'entra-instance': issuer.url, 'tenant-id': issuer.tenantId, 'api-app-id': API_APP_ID },
      backendUrl: upstream.url,
      trustedCaPem: issuer.caPem,
      accessLog: false,
      ...extra,
    });
    gateways.push(g);
    return g;
  }
  const call = (g: RunningGateway, path: string, headers: Record<string, string> = {}) =>
    httpsCall(`${g.url}${path}`, { caPem: issuer.caPem, headers });

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

  it('counts requests by route, method, status and outcome, policy errors by reason, and upstream latency; never tokens or paths', async () => {
    const g = await gatewayFor();
    const token = await issuer.sign(accessTokenClaims(issuer, API_APP_ID));
    expect((await call(g, '/orders?secret=query-secret', { authorization: `Bearer ${token}` })).status).toBe(
      200,
    );
    expect((await call(g, '/orders/123-private-id', { authorization: `Bearer ${token}` })).status).toBe(200);
    expect((await call(g, '/orders', { authorization: `Bearer ${token}x` })).status).toBe(401);
    expect((await call(g, '/orders')).status).toBe(401);

    const res = await call(g, '/metrics');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = res.text;
    expect(text).toContain(
      'local_gateway_requests_total{route="api",method="GET",status="200",outcome="forwarded"} 1',
    );
    expect(text).toContain(
      'local_gateway_requests_total{route="GET /orders/{id}",method="GET",status="200",outcome="forwarded"} 1',
    );
    expect(text).toContain(
      'local_gateway_requests_total{route="api",method="GET",status="401",outcome="rejected"} 2',
    );
    expect(text).toContain(
      'local_gateway_policy_errors_total{source="validate-jwt",reason="TokenNotPresent"} 1',
    );
    expect(text).toContain(
      'local_gateway_policy_errors_total{source="validate-jwt",reason="TokenSignatureInvalid"} 1',
    );
    expect(text).toContain('local_gateway_upstream_duration_seconds_count{route="api"} 1');
    expect(text).toContain('local_gateway_upstream_duration_seconds_bucket{le="+Inf",route="api"} 1');
    expect(text).toMatch(/# TYPE local_gateway_upstream_duration_seconds histogram/);
    expect(text).not.toContain(token.split('.')[1]!);
    expect(text).not.toContain('query-secret');
    expect(text).not.toContain('123-private-id');
  });

  it('can be moved or turned off (then the path goes to the API like any other)', async () => {
    const off = await gatewayFor({ metricsPath: false });
    expect((await call(off, '/metrics')).json()).toEqual({ statusCode: 401, message: 'JWT not present.' });
    const moved = await gatewayFor({ metricsPath: '/_gateway/metrics' });
    const text = (await call(moved, '/_gateway/metrics')).text;
    expect(text).toContain('# TYPE local_gateway_requests_total counter');
    // Each gateway counts in its own registry: the requests the other gateways served are not here.
    expect(text).not.toContain('outcome="forwarded"');
  });
});
