import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiCallError, ApiClient } from './api-client';
import type { AcquiredToken, GetTokenOptions, TokenProvider } from './certificate-token-client';
import { DevelopmentCa } from '@certflow/certs';
import {
  json,
  rejectionOf,
  startHttpServer,
  startHttpsServer,
  tempDir,
  type TestServer,
} from '@certflow/testing';

/** Hands out token-1, token-2, … ; a forced refresh always makes a new one. */
class CountingTokens implements TokenProvider {
  calls: GetTokenOptions[] = [];
  private n = 1;
  async getToken(options: GetTokenOptions = {}): Promise<AcquiredToken> {
    this.calls.push(options);
    if (options.forceRefresh) this.n += 1;
    return {
      accessToken: `token-${this.n}`,
      expiresOn: new Date(Date.now() + 3600_000),
      source: options.forceRefresh ? 'network' : 'cache',
    };
  }
}

describe('ApiClient', () => {
  const dir = tempDir();
  let ca: DevelopmentCa;
  let api: TestServer;
  let gateway: TestServer;
  const seen: { url: string; auth: string | undefined; remotePort: number | undefined }[] = [];
  /** What /v1/echo-request received. */
  let received:
    { method?: string; headers: import('node:http').IncomingHttpHeaders; body: string } | undefined;

  beforeAll(async () => {
    ca = DevelopmentCa.loadOrCreate(dir.path);
    const handler = (
      req: import('node:http').IncomingMessage,
      body: string,
      res: import('node:http').ServerResponse,
    ) => {
      seen.push({ url: req.url ?? '', auth: req.headers.authorization, remotePort: req.socket.remotePort });
      if (req.url === '/v1/orders') return json(res, 200, [{ id: 1 }]);
      if (req.url === '/v1/echo-request') {
        received = { method: req.method, headers: req.headers, body };
        return json(res, 200, { ok: true });
      }
      if (req.url === '/v1/echo')
        return json(res, 200, { method: req.method, body: JSON.parse(body) as unknown });
      if (req.url === '/v1/revoked')
        return req.headers.authorization === 'Bearer token-2'
          ? json(res, 200, { ok: true })
          : json(res, 401, { statusCode: 401, message: 'Unauthorized' });
      if (req.url === '/v1/always-401') return json(res, 401, { statusCode: 401, message: 'Invalid JWT.' });
      if (req.url === '/v1/forbidden') return json(res, 403, { statusCode: 403, message: 'missing role' });
      if (req.url === '/v1/text')
        return void res.writeHead(200, { 'content-type': 'text/plain' }).end('hello');
      if (req.url === '/v1/slow') return void setTimeout(() => json(res, 200, {}), 1000);
      json(res, 404, { statusCode: 404 });
    };
    api = await startHttpServer(handler);
    gateway = await startHttpsServer(ca, handler);
  });
  afterAll(async () => {
    await api.close();
    await gateway.close();
    dir.remove();
  });

  it('sends the bearer token over HTTPS trusting the CA and parses JSON, reusing the connection', async () => {
    const tokens = new CountingTokens();
    const client = new ApiClient({ baseUrl: `${gateway.url}/v1`, tokens, ca: ca.certificatePem });
    seen.length = 0;
    const first = await client.get('/orders');
    const second = await client.get('/orders');
    expect(first).toMatchObject({ status: 200, body: [{ id: 1 }], retriedWithFreshToken: false });
    expect(second.status).toBe(200);
    expect(seen.map((s) => s.auth)).toEqual(['Bearer token-1', 'Bearer token-1']);
    expect(seen[0]?.remotePort).toBe(seen[1]?.remotePort); // keep-alive
    expect(tokens.calls).toEqual([{ forceRefresh: false }, { forceRefresh: false }]);
    client.close();
  });

  it('retries once with a fresh token after a 401', async () => {
    const tokens = new CountingTokens();
    const client = new ApiClient({ baseUrl: api.url + '/v1/', tokens });
    seen.length = 0;
    const res = await client.get('/revoked');
    expect(res).toMatchObject({ status: 200, retriedWithFreshToken: true });
    expect(seen.map((s) => s.auth)).toEqual(['Bearer token-1', 'Bearer token-2']);
    expect(tokens.calls).toEqual([{ forceRefresh: false }, { forceRefresh: true, rejectedToken: 'token-1' }]);
    client.close();
  });

  it('gives up after the one retry, and does not retry a 403', async () => {
    const tokens = new CountingTokens();
    const client = new ApiClient({ baseUrl: `${api.url}/v1`, tokens });
    seen.length = 0;
    expect(await client.get('/always-401')).toMatchObject({
      status: 401,
      retriedWithFreshToken: true,
      body: { message: 'Invalid JWT.' },
    });
    expect(seen).toHaveLength(2);
    seen.length = 0;
    expect(await client.get('/forbidden')).toMatchObject({ status: 403, retriedWithFreshToken: false });
    expect(seen).toHaveLength(1);
    client.close();
  });

  it('sends JSON bodies and keeps non-JSON responses as text', async () => {
    const client = new ApiClient({ baseUrl: `${api.url}/v1`, tokens: new CountingTokens() });
    expect((await client.request('/echo', { method: 'POST', body: { a: 1 } })).body).toEqual({
      method: 'POST',
      body: { a: 1 },
    });
    expect((await client.get('/text')).body).toBe('hello');
    client.close();
  });

  it("sends any method with the caller's headers and body; a string body as it is", async () => {
    const client = new ApiClient({ baseUrl: `${api.url}/v1`, tokens: new CountingTokens() });
    const text = '{"customerReference":"PO-1","customerReference":"PO-2"}'; // not re-encoded
    await client.request('/echo-request', {
      method: 'patch',
      headers: { 'Content-Type': 'application/merge-patch+json', 'X-Request-Id': 'r-1' },
      body: text,
    });
    expect(received).toMatchObject({
      method: 'PATCH',
      body: text,
      headers: {
        'content-type': 'application/merge-patch+json',
        'content-length': String(Buffer.byteLength(text)),
        'x-request-id': 'r-1',
        authorization: 'Bearer token-1',
      },
    });
    await client.request('/echo-request', { method: 'DELETE' });
    expect(received).toMatchObject({ method: 'DELETE', body: '' });
    expect(received?.headers['content-type']).toBeUndefined();
    client.close();
  });

  it('retries a POST once with a fresh token after a 401 (refused before anything acted on it)', async () => {
    const tokens = new CountingTokens();
    const client = new ApiClient({ baseUrl: `${api.url}/v1`, tokens });
    seen.length = 0;
    expect(await client.request('/revoked', { method: 'POST', body: {} })).toMatchObject({
      status: 200,
      retriedWithFreshToken: true,
      attempts: 2,
    });
    expect(seen.map((s) => s.auth)).toEqual(['Bearer token-1', 'Bearer token-2']);
    client.close();
  });

  it.each([
    [{ method: 'FETCH' }, 'ERR_INVALID_REQUEST', /unknown method "FETCH": use one of GET, HEAD, POST/],
    [{ method: 'GET', body: {} }, 'ERR_INVALID_REQUEST', /a GET request carries no body/],
    [{ method: 'HEAD', body: '' }, 'ERR_INVALID_REQUEST', /a HEAD request carries no body/],
    [
      { headers: { Authorization: 'Bearer mine' } },
      'ERR_INVALID_HEADER',
      /"Authorization" is set by the client/,
    ],
    [{ headers: { traceparent: 'x' } }, 'ERR_INVALID_HEADER', /"traceparent" is set by the client/],
    [{ headers: { Host: 'evil.example' } }, 'ERR_INVALID_HEADER', /"Host" is set by the client/],
    [
      { method: 'POST', body: 'x', headers: { 'Content-Length': '1' } },
      'ERR_INVALID_HEADER',
      /Content-Length/,
    ],
    [{ headers: { 'Transfer-Encoding': 'chunked' } }, 'ERR_INVALID_HEADER', /Transfer-Encoding/],
    [{ headers: { 'Bad Name': 'x' } }, 'ERR_INVALID_HEADER', /header "Bad Name"/],
    [{ headers: { 'X-A': 'one\r\nX-Injected: 1' } }, 'ERR_INVALID_HEADER', /header "X-A"/],
    [{ headers: { 'X-A': '1', 'x-a': '2' } }, 'ERR_INVALID_HEADER', /"x-a" is given twice/],
  ])('refuses %j before sending anything or asking for a token', async (request, code, message) => {
    const tokens = new CountingTokens();
    const client = new ApiClient({ baseUrl: `${api.url}/v1`, tokens });
    seen.length = 0;
    const err = await rejectionOf<ApiCallError>(client.request('/orders', request));
    expect(err).toBeInstanceOf(ApiCallError);
    expect(err).toMatchObject({ code, message: expect.stringMatching(message) });
    expect(seen).toEqual([]);
    expect(tokens.calls).toEqual([]);
    client.close();
  });

  it('refuses paths that would send the token elsewhere', async () => {
    const client = new ApiClient({ baseUrl: `${api.url}/v1`, tokens: new CountingTokens() });
    for (const path of ['https://evil.example/x', '//evil.example/x', 'orders', '/../admin']) {
      await expect(client.get(path)).rejects.toMatchObject({ code: 'ERR_INVALID_PATH' });
    }
    expect(client.urlFor('/orders?x=1').href).toBe(`${api.url}/v1/orders?x=1`);
    client.close();
  });

  it('times out, and names TLS failures', async () => {
    const slow = new ApiClient({ baseUrl: `${api.url}/v1`, tokens: new CountingTokens(), timeoutMs: 100 });
    await expect(slow.get('/slow')).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    slow.close();
    const untrusted = new ApiClient({ baseUrl: gateway.url + '/v1', tokens: new CountingTokens() });
    const err = (await untrusted.get('/orders').catch((e: unknown) => e)) as ApiCallError;
    expect(err).toBeInstanceOf(ApiCallError);
    expect(err.message).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER.*PARTNER_CA_FILE/);
    untrusted.close();
  });
});
