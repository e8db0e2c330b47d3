/**
 * Microsoft Graph replicates: an application or service principal created a moment ago may not
 * be found yet. Writes that refer to one this run created are retried a few times; others are not.
 * Against a real HTTPS server answering as Graph does in that window.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DevelopmentCa } from '@certflow/certs';
import { json, rejectionOf, startHttpsServer, tempDir, type TestServer } from '@certflow/testing';
import { GraphCallError, GraphRest } from './graph-rest';
import { Run } from './reconcile-types';

describe('writes right after a create', () => {
  const dir = tempDir('topology-replication-');
  let server: TestServer;
  let graph: GraphRest;
  let misses = 0;
  let calls = 0;

  beforeAll(async () => {
    const ca = DevelopmentCa.loadOrCreate(join(dir.path, 'state'));
    server = await startHttpsServer(ca, (req, _body, res) => {
      calls++;
      if (req.url === '/v1.0/applications') return json(res, 201, { id: 'object-1', appId: 'app-1' });
      if (req.url === '/v1.0/servicePrincipals' && misses > 0) {
        misses--;
        return json(res, 400, {
          error: {
            code: 'Request_BadRequest',
            message:
              "The appId 'app-1' of the service principal does not reference a valid application object.",
          },
        });
      }
      return json(res, 201, { id: 'sp-1' });
    });
    graph = new GraphRest({
      baseUrl: `${server.url}/v1.0`,
      token: async () => 'token',
      ca: ca.certificatePem,
    });
  });

  afterAll(async () => {
    graph.close();
    await server.close();
    dir.remove();
  });

  it('retries the service principal of an application it just created until Graph finds it', async () => {
    const run = new Run(graph, true, 10);
    const app = await run.createApplication<{ id: string; appId: string }>(
      { displayName: 'x' },
      'create partner x',
    );
    misses = 2;
    calls = 0;
    expect(await run.createServicePrincipal(app.appId, 'partner x')).toBe('sp-1');
    expect(calls).toBe(3);
    expect(run.created).toEqual(new Set(['object-1', 'app-1', 'sp-1']));
  });

  it('gives up after five attempts, and does not retry for an object it did not create', async () => {
    const run = new Run(graph, true, 1);
    await run.createApplication({ displayName: 'x' }, 'create partner x');
    misses = 10;
    calls = 0;
    const err = await rejectionOf<GraphCallError>(run.createServicePrincipal('app-1', 'partner x'));
    expect([err.status, err.code, calls]).toEqual([400, 'Request_BadRequest', 5]);

    misses = 1;
    calls = 0;
    const other = await rejectionOf<GraphCallError>(
      new Run(graph, true, 1).createServicePrincipal('app-1', 'partner x'),
    );
    expect([other.status, calls]).toEqual([400, 1]);
  });
});
