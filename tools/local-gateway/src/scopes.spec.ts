import { DevelopmentCa } from '@certflow/certs';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OperationPolicy, RunningGateway, startGateway } from './gateway';
import {
  EchoedRequest,
  EchoUpstream,
  httpsCall,
  startEchoUpstream,
  tempStateDir,
} from './test-servers.test-helpers';

const header = (name: string, value: string) =>
  `<set-header name="${name}" exists-action="append"><value>${value}</value></set-header>`;

describe('policy scopes (global → API → operation) and on-error', () => {
  const state = tempStateDir();
  let caPem: string;
  let upstream: EchoUpstream;
  const gateways: RunningGateway[] = [];

  const file = (xml: string): string => {
    const f = join(state.dir, `policy-${randomUUID()}.xml`);
    writeFileSync(f, xml);
    return f;
  };
  async function gatewayFor(
    api: string,
    global?: string,
    operations: Array<Omit<OperationPolicy, 'policyFile'> & { xml: string }> = [],
  ): Promise<RunningGateway> {
    const g = await startGateway({
      stateDir: state.dir,
      backendUrl: upstream.url,
      accessLog: false,
      policyFile: file(api),
      ...(global ? { globalPolicyFile: file(global) } : {}),
      operations: operations.map((o) => ({
        method: o.method,
        urlTemplate: o.urlTemplate,
        policyFile: file(o.xml),
      })),
    });
    gateways.push(g);
    return g;
  }
  const call = (g: RunningGateway, path = '/orders', method = 'GET') =>
    httpsCall(`${g.url}${path}`, { caPem, method });
  const trail = async (g: RunningGateway, path = '/orders', method = 'GET') =>
    (await call(g, path, method)).json() as EchoedRequest;

  beforeAll(async () => {
    caPem = DevelopmentCa.loadOrCreate(state.dir).certificatePem;
    upstream = await startEchoUpstream();
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.close()));
    await upstream?.close();
    state.remove();
  });

  const GLOBAL = `<policies><inbound>${header('x-trail', 'global')}</inbound><backend><forward-request timeout="20" /></backend><outbound>${header('x-out', 'global')}</outbound></policies>`;

  it('<base /> inserts the parent scope where it stands; no <base /> drops the parent', async () => {
    const g = await gatewayFor(
      `<policies><inbound>${header('x-trail', 'api-before')}<base />${header('x-trail', 'api-after')}</inbound><backend><base /></backend><outbound><base />${header('x-out', 'api')}</outbound></policies>`,
      GLOBAL,
      [
        {
          method: 'GET',
          urlTemplate: '/orders/{id}',
          xml: `<policies><inbound><base />${header('x-trail', 'operation')}</inbound><outbound><base /></outbound></policies>`,
        },
        {
          method: 'POST',
          urlTemplate: '/orders',
          xml: `<policies><inbound>${header('x-trail', 'post-only')}</inbound></policies>`,
        },
      ],
    );
    expect((await trail(g)).headers['x-trail']).toBe('api-before, global, api-after');
    const op = await call(g, '/orders/42?x=1');
    expect((op.json() as EchoedRequest).headers['x-trail']).toBe('api-before, global, api-after, operation');
    expect(op.headers['x-out']).toBe('global, api');
    expect((await trail(g, '/orders/42/items')).headers['x-trail']).toBe('api-before, global, api-after'); // template does not match
    expect((await trail(g, '/orders', 'POST')).headers['x-trail']).toBe('post-only'); // no <base />: API and global dropped
  });

  it('on-error runs for a failure in any scope, with context.LastError, and can replace the answer', async () => {
    const g = await gatewayFor(
      `<policies><inbound><base /><check-header name="x-key" failed-check-httpcode="401" failed-check-error-message="Key required" ignore-case="false" /></inbound>
<on-error><base />${header('x-error-reason', '@(context.LastError.Source + &quot;/&quot; + context.LastError.Reason)')}</on-error></policies>`,
      `<policies><inbound /><on-error>${header('x-global-error', '@(context.LastError.Message)')}</on-error></policies>`,
      [
        {
          method: '*',
          urlTemplate: '/teapot',
          xml: '<policies><inbound><base /></inbound><on-error><return-response><set-status code="418" reason="Teapot" /><set-body>short and stout</set-body></return-response></on-error></policies>',
        },
      ],
    );
    const res = await call(g);
    expect(res.status).toBe(401);
    expect(res.json()).toEqual({ statusCode: 401, message: 'Key required' });
    expect(res.headers['x-error-reason']).toBe('check-header/HeaderNotFound');
    expect(res.headers['x-global-error']).toBe('Key required');
    const teapot = await call(g, '/teapot');
    expect(teapot.status).toBe(418);
    expect(teapot.text).toBe('short and stout');
  });

  it('names the file of the scope that does not load', async () => {
    const bad = `<policies>\n<inbound>\n<frobnicate />\n</inbound>\n</policies>`;
    await expect(gatewayFor('<policies />', bad)).rejects.toThrow(/policy-[0-9a-f-]+\.xml:3: <frobnicate>:/);
    await expect(
      gatewayFor('<policies />', undefined, [{ method: 'GET', urlTemplate: '/x', xml: bad }]),
    ).rejects.toThrow(/policy-[0-9a-f-]+\.xml:3: <frobnicate>:/);
  });
});
