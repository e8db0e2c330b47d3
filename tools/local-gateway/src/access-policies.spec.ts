import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DevelopmentCa } from '@certflow/certs';
import { RunningGateway, startGateway } from './gateway';
import { EchoUpstream, httpsCall, startEchoUpstream, tempStateDir } from './test-servers.test-helpers';

describe('check-header, ip-filter, set-backend-service', () => {
  const state = tempStateDir();
  let caPem: string;
  let upstream: EchoUpstream;
  let other: EchoUpstream;
  const gateways: RunningGateway[] = [];

  async function gatewayFor(
    inbound: string,
    extra: Partial<Parameters<typeof startGateway>[0]> = {},
  ): Promise<RunningGateway> {
    const policyFile = join(state.dir, `policy-${randomUUID()}.xml`);
    writeFileSync(policyFile, `<policies>\n<inbound>\n<base />\n${inbound}\n</inbound>\n</policies>`);
    const g = await startGateway({
      stateDir: state.dir,
      policyFile,
      backendUrl: upstream.url,
      accessLog: false,
      namedValues: { 'other-backend': other.url },
      ...extra,
    });
    gateways.push(g);
    return g;
  }
  const call = (g: RunningGateway, headers: Record<string, string> = {}, path = '/orders?x=1') =>
    httpsCall(`${g.url}${path}`, { caPem, headers });

  beforeAll(async () => {
    caPem = DevelopmentCa.loadOrCreate(state.dir).certificatePem;
    upstream = await startEchoUpstream();
    other = await startEchoUpstream();
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.close()));
    await upstream?.close();
    await other?.close();
    state.remove();
  });

  it('check-header: presence, allowed values, ignore-case, and the configured status and message', async () => {
    const g = await gatewayFor(
      '<check-header name="X-Partner" failed-check-httpcode="403" failed-check-error-message="Unknown partner" ignore-case="true"><value>Contoso</value><value>Fabrikam</value></check-header>',
    );
    expect((await call(g, { 'x-partner': 'contoso' })).status).toBe(200);
    expect((await call(g, { 'x-partner': 'FABRIKAM' })).status).toBe(200);
    const wrong = await call(g, { 'x-partner': 'evil' });
    expect(wrong.status).toBe(403);
    expect(wrong.json()).toEqual({ statusCode: 403, message: 'Unknown partner' });
    expect((await call(g)).json()).toEqual({ statusCode: 403, message: 'Unknown partner' });

    const exact = await gatewayFor(
      '<check-header name="X-Partner" failed-check-httpcode="401" failed-check-error-message="no" ignore-case="false"><value>Contoso</value></check-header>',
    );
    expect((await call(exact, { 'x-partner': 'contoso' })).status).toBe(401);
    const presence = await gatewayFor(
      '<check-header name="X-Trace" failed-check-httpcode="400" failed-check-error-message="X-Trace is required" ignore-case="false" />',
    );
    expect((await call(presence, { 'x-trace': 'anything' })).status).toBe(200);
    expect((await call(presence)).status).toBe(400);
    await expect(
      gatewayFor('<check-header name="X" failed-check-httpcode="401" failed-check-error-message="m" />'),
    ).rejects.toThrow(/<check-header>: attribute ignore-case is required/);
  });

  it('ip-filter: uses the connection address, never X-Forwarded-For; address and address-range; allow and forbid', async () => {
    expect(
      (await call(await gatewayFor('<ip-filter action="allow"><address>127.0.0.1</address></ip-filter>')))
        .status,
    ).toBe(200);
    const onlyTen = await gatewayFor(
      '<ip-filter action="allow"><address>10.0.0.1</address><address-range from="192.168.0.1" to="192.168.0.255" /></ip-filter>',
    );
    const refused = await call(onlyTen, { 'x-forwarded-for': '10.0.0.1' });
    expect(refused.status).toBe(403);
    expect(refused.json()).toEqual({ statusCode: 403, message: 'Forbidden' });
    expect(
      (
        await call(
          await gatewayFor(
            '<ip-filter action="forbid"><address-range from="127.0.0.0" to="127.255.255.255" /></ip-filter>',
          ),
        )
      ).status,
    ).toBe(403);
    expect(
      (
        await call(
          await gatewayFor(
            '<ip-filter action="forbid"><address>::1</address><address>10.0.0.1</address></ip-filter>',
          ),
        )
      ).status,
    ).toBe(200);
    await expect(
      gatewayFor('<ip-filter action="allow"><address>localhost</address></ip-filter>'),
    ).rejects.toThrow(/<address>: 'localhost' is not an IP address/);
    await expect(
      gatewayFor('<ip-filter action="deny"><address>1.2.3.4</address></ip-filter>'),
    ).rejects.toThrow(/action must be allow or forbid/);
    await expect(
      gatewayFor('<ip-filter action="allow"><address-range from="10.0.0.1" to="::1" /></ip-filter>'),
    ).rejects.toThrow(/same IP version/);
  });

  it('set-backend-service: forwards to base-url (path and query kept); refuses backend-id and https', async () => {
    const g = await gatewayFor('<set-backend-service base-url="{{other-backend}}/v2" />');
    const before = upstream.received.length;
    const res = await call(g);
    expect(res.status).toBe(200);
    expect(other.received.at(-1)?.url).toBe('/v2/orders?x=1');
    expect(upstream.received.length).toBe(before);
    await expect(gatewayFor('<set-backend-service backend-id="orders" />')).rejects.toThrow(
      /attribute backend-id is not supported/,
    );
    await expect(gatewayFor('<set-backend-service base-url="https://example.com" />')).rejects.toThrow(
      /must be an http:\/\/ URL/,
    );
  });

  it('subscription keys (opt-in): header or query parameter, APIM 401 messages, context.Subscription.Id, key not forwarded', async () => {
    const subscriptionKeys = {
      required: true,
      subscriptions: [{ id: 'contoso', keys: ['primary-key-0001', 'secondary-key-0001'] }],
    };
    const g = await gatewayFor(
      '<set-header name="X-Subscription"><value>@(context.Subscription.Id)</value></set-header>',
      { subscriptionKeys },
    );
    const missing = await call(g);
    expect(missing.status).toBe(401);
    expect(missing.json()).toEqual({
      statusCode: 401,
      message:
        'Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.',
    });
    const invalid = await call(g, { 'ocp-apim-subscription-key': 'primary-key-0002' });
    expect(invalid.json()).toEqual({
      statusCode: 401,
      message:
        'Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.',
    });
    const ok = await call(g, { 'Ocp-Apim-Subscription-Key': 'secondary-key-0001' });
    expect(ok.status).toBe(200);
    const echoed = ok.json() as { headers: Record<string, string> };
    expect(echoed.headers['x-subscription']).toBe('contoso');
    expect(echoed.headers['ocp-apim-subscription-key']).toBeUndefined();
    expect((await call(g, {}, '/orders?subscription-key=primary-key-0001')).status).toBe(200);

    const optional = await gatewayFor('', { subscriptionKeys: { ...subscriptionKeys, required: false } });
    expect((await call(optional)).status).toBe(200);
    expect((await call(optional, { 'ocp-apim-subscription-key': 'wrong-key-000' })).status).toBe(401);
    await expect(
      gatewayFor('', { subscriptionKeys: { required: true, subscriptions: [{ id: 'x', keys: ['short'] }] } }),
    ).rejects.toThrow(/at least 8 characters/);
  });
});
