/**
 * GraphRest against a real HTTPS server (certificate from a development CA made for the test)
 * that answers as Microsoft Graph does: pages, errors, throttling. The reconcile tests run it
 * against the emulator's Graph.
 */
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DevelopmentCa } from '@certflow/certs';
import {
  json,
  rejectionOf,
  startHttpsServer,
  tempDir,
  type Handler,
  type TestServer,
} from '@certflow/testing';
import { GraphCallError, GraphPermissionError, GraphRest } from './graph-rest';

const TOKEN = 'eyJ0eXAiOiJKV1QifQ.secret-token-value.signature';

describe('GraphRest', () => {
  const dir = tempDir('graph-rest-');
  let ca: DevelopmentCa;
  let server: TestServer;
  let handler: Handler = (_req, _body, res) => void res.writeHead(500).end();
  const seen: { method: string; url: string; authorization: string | undefined; body: string }[] = [];

  beforeAll(async () => {
    ca = DevelopmentCa.loadOrCreate(join(dir.path, 'state'));
    server = await startHttpsServer(ca, (req: IncomingMessage, body, res) => {
      seen.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization, body });
      return handler(req, body, res);
    });
  });

  afterAll(async () => {
    await server.close();
    dir.remove();
  });

  function graph(timeoutMs?: number, maxResponseBytes?: number): GraphRest {
    seen.length = 0;
    return new GraphRest({
      baseUrl: `${server.url}/v1.0/`,
      token: async () => TOKEN,
      ca: ca.certificatePem,
      ...(timeoutMs ? { timeoutMs } : {}),
      ...(maxResponseBytes ? { maxResponseBytes } : {}),
    });
  }

  it('sends the bearer token and JSON, and reads JSON answers', async () => {
    handler = (req, body, res) =>
      req.method === 'DELETE' || req.method === 'PATCH'
        ? void res.writeHead(204).end()
        : json(res, req.method === 'POST' ? 201 : 200, {
            id: 'x',
            echo: body === '' ? null : JSON.parse(body),
          });
    const rest = graph();
    expect(await rest.get('/applications/x?$select=id')).toEqual({ id: 'x', echo: null });
    expect(await rest.post('/applications', { displayName: 'a' })).toEqual({
      id: 'x',
      echo: { displayName: 'a' },
    });
    await rest.patch('/applications/x', { displayName: 'b' });
    await rest.delete('/applications/x');
    expect(seen.map((s) => [s.method, s.url, s.authorization])).toEqual([
      ['GET', '/v1.0/applications/x?$select=id', `Bearer ${TOKEN}`],
      ['POST', '/v1.0/applications', `Bearer ${TOKEN}`],
      ['PATCH', '/v1.0/applications/x', `Bearer ${TOKEN}`],
      ['DELETE', '/v1.0/applications/x', `Bearer ${TOKEN}`],
    ]);
    rest.close();
  });

  it('follows @odata.nextLink to the end of a collection', async () => {
    handler = (req, _body, res) => {
      const page = Number(new URL(req.url!, server.url).searchParams.get('page') ?? '0');
      json(res, 200, {
        value: [`item ${page}a`, `item ${page}b`],
        ...(page < 2 ? { '@odata.nextLink': `${server.url}/v1.0/applications?page=${page + 1}` } : {}),
      });
    };
    const rest = graph();
    expect(await rest.list('/applications?$select=id')).toEqual([
      'item 0a',
      'item 0b',
      'item 1a',
      'item 1b',
      'item 2a',
      'item 2b',
    ]);
    expect(seen.map((s) => s.url)).toEqual([
      '/v1.0/applications?$select=id',
      '/v1.0/applications?page=1',
      '/v1.0/applications?page=2',
    ]);
    rest.close();
  });

  it('does not follow a nextLink to another origin with the token', async () => {
    handler = (_req, _body, res) =>
      json(res, 200, { value: [1], '@odata.nextLink': 'https://elsewhere.example/v1.0/x' });
    const rest = graph();
    const err = await rejectionOf(rest.list('/applications'));
    expect(err.message).toMatch(/another origin \(https:\/\/elsewhere\.example\); not following it/);
    expect(seen).toHaveLength(1);
    rest.close();
  });

  it("carries Graph's error code and message, never the token", async () => {
    handler = (_req, _body, res) =>
      json(res, 400, {
        error: {
          code: 'Request_BadRequest',
          message: "Property 'identifierUris' is invalid.",
          innerError: {},
        },
      });
    const rest = graph();
    const err = await rejectionOf<GraphCallError>(rest.post('/applications', {}, 'create api orders'));
    expect(err).toBeInstanceOf(GraphCallError);
    expect(err).not.toBeInstanceOf(GraphPermissionError);
    expect([err.status, err.code, err.operation]).toEqual([400, 'Request_BadRequest', 'create api orders']);
    expect(err.message).toBe(
      "create api orders: Microsoft Graph answered HTTP 400 Request_BadRequest: Property 'identifierUris' is invalid.",
    );
    expect(JSON.stringify({ ...err, message: err.message, stack: err.stack })).not.toContain(
      'secret-token-value',
    );
    rest.close();
  });

  it("prints Graph's error code and message with control and bidirectional characters escaped", async () => {
    handler = (req, _body, res) =>
      json(res, req.method === 'GET' ? 403 : 400, {
        error: { code: 'Bad\u001b[31mCode', message: 'invalid\u001b]0;owned\u0007 \u202eevil\r\nnext line' },
      });
    const rest = graph();
    const err = await rejectionOf<GraphCallError>(rest.post('/applications', {}, 'create api orders'));
    expect([err.code, err.message]).toEqual([
      'Bad\\u001b[31mCode',
      'create api orders: Microsoft Graph answered HTTP 400 Bad\\u001b[31mCode: invalid\\u001b]0;owned\\u0007 \\u202eevil\\u000d\\u000anext line',
    ]);
    const denied = await rejectionOf<GraphPermissionError>(
      rest.get('/applications', 'list the applications'),
    );
    expect(denied.message).toMatch(
      /^list the applications: Microsoft Graph refused it \(HTTP 403 Bad\\u001b\[31mCode: invalid\\u001b\]0;owned\\u0007 \\u202eevil\\u000d\\u000anext line\); /,
    );
    rest.close();
  });

  it.each([
    ['GET', '/applications', 'Application.Read.All'],
    ['GET', "/servicePrincipals?$filter=appId eq 'x'", 'Application.Read.All'],
    ['POST', '/applications', 'Application.ReadWrite.All'],
    ['PATCH', '/applications/x', 'Application.ReadWrite.All'],
    ['DELETE', '/applications/x', 'Application.ReadWrite.All'],
    ['GET', '/servicePrincipals/x/appRoleAssignments', 'Application.Read.All'],
    ['GET', '/servicePrincipals/x/appRoleAssignedTo', 'Application.Read.All'],
    ['POST', '/servicePrincipals/x/appRoleAssignedTo', 'AppRoleAssignment.ReadWrite.All'],
    ['DELETE', '/servicePrincipals/x/appRoleAssignedTo/y', 'AppRoleAssignment.ReadWrite.All'],
  ])('a 403 on %s %s names %s', async (method, path, permission) => {
    handler = (_req, _body, res) =>
      json(res, 403, {
        error: {
          code: 'Authorization_RequestDenied',
          message: 'Insufficient privileges to complete the operation.',
        },
      });
    const rest = graph();
    const call =
      method === 'GET'
        ? rest.get(path)
        : method === 'POST'
          ? rest.post(path, {})
          : method === 'PATCH'
            ? rest.patch(path, {})
            : rest.delete(path);
    const err = await rejectionOf<GraphPermissionError>(call);
    expect(err).toBeInstanceOf(GraphPermissionError);
    expect([err.status, err.code, err.permission]).toEqual([403, 'Authorization_RequestDenied', permission]);
    expect(err.message).toBe(
      `${method} /${path.split('?')[0]!.slice(1)}: Microsoft Graph refused it (HTTP 403 Authorization_RequestDenied: ` +
        `Insufficient privileges to complete the operation.); the identity running this needs the application permission ${permission}, granted with admin consent`,
    );
    rest.close();
  });

  it('waits Retry-After and retries when throttled (429, 503), then gives up', async () => {
    let calls = 0;
    handler = (_req, _body, res) => {
      calls++;
      if (calls <= 2)
        json(
          res,
          calls === 1 ? 429 : 503,
          { error: { code: 'TooManyRequests', message: 'slow down' } },
          { 'retry-after': '1' },
        );
      else json(res, 200, { id: 'done' });
    };
    const rest = graph();
    const started = Date.now();
    expect(await rest.get('/applications/done')).toEqual({ id: 'done' });
    expect(calls).toBe(3);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);

    handler = (_req, _body, res) =>
      json(res, 429, { error: { code: 'TooManyRequests', message: 'slow down' } }, { 'retry-after': '0' });
    const err = await rejectionOf<GraphCallError>(rest.get('/applications'));
    expect([err.status, err.code]).toEqual([429, 'TooManyRequests']);
    expect(seen).toHaveLength(3 + 5);
    rest.close();
  });

  it('gives up on a Graph that does not answer in time, naming the operation', async () => {
    handler = () => undefined; // never answers
    const rest = graph(300);
    const err = await rejectionOf(rest.get('/applications', 'list applications'));
    expect(err.message).toBe(`list applications: Graph did not answer within 300 ms (${server.url})`);
    rest.close();
  });

  it('trusts only public CAs and the given extra CA; refuses a URL that is not https', async () => {
    handler = (_req, _body, res) => json(res, 200, { id: 'x' });
    const untrusting = new GraphRest({ baseUrl: `${server.url}/v1.0`, token: async () => TOKEN });
    const err = await rejectionOf(untrusting.get('/applications/x'));
    expect(err.message).toMatch(
      /^GET \/applications\/x: could not reach Graph at https:\/\/localhost:\d+: (UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)$/,
    );
    untrusting.close();
    expect(() => new GraphRest({ baseUrl: 'http://graph.example/v1.0', token: async () => TOKEN })).toThrow(
      'GraphRest baseUrl must be an https:// URL, got "http://graph.example/v1.0"',
    );
  });

  it('never repeats a write Graph answered 503 (it may have been done); a 429 refusal is retried', async () => {
    const unavailable: Handler = (_req, _body, res) =>
      json(res, 503, { error: { code: 'ServiceUnavailable', message: 'busy' } }, { 'retry-after': '0' });
    handler = unavailable;
    const rest = graph();
    for (const write of [
      () => rest.post('/applications', {}),
      () => rest.patch('/applications/x', {}),
      () => rest.delete('/applications/x'),
    ]) {
      seen.length = 0;
      const err = await rejectionOf<GraphCallError>(write());
      expect([err.status, err.code]).toEqual([503, 'ServiceUnavailable']);
      expect(seen).toHaveLength(1);
    }
    let calls = 0;
    handler = (_req, _body, res) =>
      ++calls === 1
        ? json(res, 429, { error: { code: 'TooManyRequests', message: 'slow down' } }, { 'retry-after': '0' })
        : json(res, 201, { id: 'created' });
    seen.length = 0;
    expect(await rest.post('/applications', {})).toEqual({ id: 'created' });
    expect(seen.map((s) => s.method)).toEqual(['POST', 'POST']);
    rest.close();
  });

  it('stops a collection whose nextLink returns to a page already read, or that never ends', async () => {
    handler = (req, _body, res) => {
      const page = Number(new URL(req.url!, server.url).searchParams.get('page') ?? '0');
      json(res, 200, {
        value: [page],
        '@odata.nextLink': `${server.url}/v1.0/applications?page=${(page + 1) % 2}`,
      });
    };
    const rest = graph();
    const cycle = await rejectionOf<GraphCallError>(
      rest.list('/applications?page=0', 'list the applications'),
    );
    expect(cycle.message).toBe(
      'list the applications: stopped reading: its @odata.nextLink points at a page already read',
    );
    handler = (req, _body, res) => {
      const page = Number(new URL(req.url!, server.url).searchParams.get('page') ?? '0');
      json(res, 200, { value: [], '@odata.nextLink': `${server.url}/v1.0/applications?page=${page + 1}` });
    };
    seen.length = 0;
    const endless = await rejectionOf<GraphCallError>(rest.list('/applications', 'list the applications'));
    expect(endless.message).toBe('list the applications: stopped reading: it has more than 1000 pages');
    expect(seen).toHaveLength(1000);
    rest.close();
  }, 60_000);

  it('refuses an answer larger than maxResponseBytes', async () => {
    handler = (_req, _body, res) => json(res, 200, { value: ['x'.repeat(5000)] });
    const rest = graph(undefined, 4096);
    const err = await rejectionOf(rest.get('/applications'));
    expect(err.message).toBe("GET /applications: Graph's answer is larger than 4096 bytes; not read");
    rest.close();
  });

  it('gives up when the whole answer takes longer than the timeout, even if bytes keep coming', async () => {
    const timers: NodeJS.Timeout[] = [];
    handler = (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"value": [');
      timers.push(setInterval(() => res.write(' '), 50));
    };
    const rest = graph(400);
    const started = Date.now();
    const err = await rejectionOf(rest.get('/applications', 'list applications'));
    timers.forEach(clearInterval);
    expect(err.message).toBe(`list applications: Graph did not answer within 400 ms (${server.url})`);
    expect(Date.now() - started).toBeLessThan(2000);
    rest.close();
  });
});
