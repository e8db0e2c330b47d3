/** ApiClient against real local HTTP servers that misbehave: throttling, 5xx, resets, hangs. */
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, parseRetryAfter, type ApiCallError, type RetryEvent } from './api-client';
import type { AcquiredToken, TokenProvider } from './certificate-token-client';
import { json, rejectionOf, startHttpServer, type TestServer } from '@certflow/testing';

const tokens: TokenProvider = {
  getToken: async (): Promise<AcquiredToken> => ({
    accessToken: 'token-1',
    expiresOn: new Date(Date.now() + 3600_000),
    source: 'cache',
  }),
};

describe('parseRetryAfter', () => {
  it('reads delta-seconds and HTTP dates, ignores garbage', () => {
    expect(parseRetryAfter('2')).toBe(2000);
    expect(parseRetryAfter(' 0 ')).toBe(0);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:03 GMT', now)).toBe(3000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });
});

describe('ApiClient resilience', () => {
  let server: TestServer;
  /** Per path: how many requests it has seen. */
  const hits = new Map<string, number>();
  const count = (path: string) => {
    const n = (hits.get(path) ?? 0) + 1;
    hits.set(path, n);
    return n;
  };

  beforeAll(async () => {
    server = await startHttpServer((req, _body, res) => {
      const path = req.url ?? '';
      const n = count(`${req.method} ${path}`);
      switch (path) {
        case '/throttled': // 429 with Retry-After: 1, then OK
          return n === 1
            ? void res.writeHead(429, { 'retry-after': '1' }).end()
            : json(res, 200, { ok: true, n });
        case '/unavailable-long': // Retry-After longer than the client waits
          return void res.writeHead(503, { 'retry-after': '120' }).end();
        case '/flaky': // 500, 502, then OK
          if (n === 1) return json(res, 500, { statusCode: 500 });
          if (n === 2) return json(res, 502, { statusCode: 502 });
          return json(res, 200, { ok: true, n });
        case '/always-500':
          return json(res, 500, { statusCode: 500 });
        case '/unavailable-once': // 503 with Retry-After: 0, then OK
          return n === 1
            ? void res.writeHead(503, { 'retry-after': '0' }).end()
            : json(res, 200, { ok: true, n });
        case '/reset': // the connection is dropped twice without an answer, then OK
          if (n <= 2) return void req.socket.destroy();
          return json(res, 200, { ok: true, n });
        case '/hang':
          return; // never answers
        default:
          return json(res, 404, {});
      }
    });
  });
  afterAll(() => server.close());

  function client(opts: Partial<ConstructorParameters<typeof ApiClient>[0]> = {}) {
    const events: RetryEvent[] = [];
    const c = new ApiClient({
      baseUrl: server.url,
      tokens,
      retry: { baseDelayMs: 20, maxDelayMs: 100 },
      onRetry: (e) => events.push(e),
      ...opts,
    });
    return { c, events };
  }

  it('honours Retry-After on 429', async () => {
    const { c, events } = client();
    const res = await c.get('/throttled');
    expect(res).toMatchObject({ status: 200, attempts: 2 });
    expect(events).toEqual([{ attempt: 1, reason: 'retry-after', status: 429, delayMs: 1000 }]);
    c.close();
  });

  it('returns a 503 at once when Retry-After is longer than it may wait', async () => {
    const { c, events } = client();
    expect(await c.get('/unavailable-long')).toMatchObject({ status: 503, attempts: 1 });
    expect(events).toEqual([]);
    c.close();
  });

  it('backs off with jitter on 5xx, and never retries a POST that may have been processed', async () => {
    const { c, events } = client();
    expect(await c.get('/flaky')).toMatchObject({ status: 200, attempts: 3, body: { ok: true, n: 3 } });
    expect(events.map((e) => [e.reason, e.status])).toEqual([
      ['status', 500],
      ['status', 502],
    ]);
    expect(events.every((e) => e.delayMs >= 0 && e.delayMs <= 100)).toBe(true);
    expect(await c.request('/always-500', { method: 'POST', body: {} })).toMatchObject({
      status: 500,
      attempts: 1,
    });
    c.close();
  });

  describe('a POST or PATCH is repeated only when it cannot have been acted on', () => {
    const sent = (method: string, path: string) => hits.get(`${method} ${path}`) ?? 0;

    it('429: the rate limit refused it on arrival, so it is repeated', async () => {
      const { c, events } = client();
      hits.delete('POST /throttled');
      expect(await c.request('/throttled', { method: 'POST', body: {} })).toMatchObject({
        status: 200,
        attempts: 2,
      });
      expect(events.map((e) => [e.reason, e.status])).toEqual([['retry-after', 429]]);
      c.close();
    });

    it('503, even with Retry-After: returned as it is (GET is repeated)', async () => {
      const { c, events } = client();
      for (const method of ['POST', 'PATCH', 'GET']) hits.delete(`${method} /unavailable-once`);
      for (const method of ['POST', 'PATCH'])
        expect(await c.request('/unavailable-once', { method, body: {} })).toMatchObject({
          status: 503,
          attempts: 1,
        });
      expect(events).toEqual([]);
      expect(await c.get('/unavailable-once')).toMatchObject({ status: 200, attempts: 2 });
      expect([sent('POST', '/unavailable-once'), sent('PATCH', '/unavailable-once')]).toEqual([1, 1]);
      c.close();
    });

    it('a connection dropped or timed out after the request was sent: the error, sent once', async () => {
      const { c, events } = client({ timeoutMs: 200 });
      hits.delete('POST /reset');
      hits.delete('PATCH /hang');
      expect((await rejectionOf<ApiCallError>(c.request('/reset', { method: 'POST', body: {} }))).code).toBe(
        'ECONNRESET',
      );
      expect((await rejectionOf<ApiCallError>(c.request('/hang', { method: 'PATCH', body: {} }))).code).toBe(
        'ETIMEDOUT',
      );
      expect([sent('POST', '/reset'), sent('PATCH', '/hang')]).toEqual([1, 1]);
      expect(events).toEqual([]);
      c.close();
    });

    it('a refused connection: nothing was sent, so it is repeated', async () => {
      const closed = createServer();
      await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
      const port = (closed.address() as { port: number }).port;
      await new Promise((r) => closed.close(r));
      const { c, events } = client({ baseUrl: `http://127.0.0.1:${port}` });
      const err = await rejectionOf<ApiCallError>(c.request('/x', { method: 'POST', body: {} }));
      expect(err.code).toBe('ECONNREFUSED');
      expect(events.map((e) => e.code)).toEqual(['ECONNREFUSED', 'ECONNREFUSED', 'ECONNREFUSED']);
      c.close();
    });
  });

  it('stops after maxAttempts and returns the last answer', async () => {
    const { c, events } = client({ retry: { maxAttempts: 3, baseDelayMs: 10 } });
    hits.delete('GET /always-500');
    expect(await c.get('/always-500')).toMatchObject({ status: 500, attempts: 3 });
    expect(hits.get('GET /always-500')).toBe(3);
    expect(events).toHaveLength(2);
    c.close();
  });

  it('retries dropped connections (network errors)', async () => {
    const { c, events } = client();
    expect(await c.get('/reset')).toMatchObject({ status: 200, attempts: 3 });
    expect(events.map((e) => e.reason)).toEqual(['network', 'network']);
    expect(events[0]?.code).toBe('ECONNRESET');
    c.close();
  });

  it('retries a refused connection, then reports it', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));
    const { c, events } = client({ baseUrl: `http://127.0.0.1:${port}` });
    const err = await rejectionOf<ApiCallError>(c.get('/x'));
    expect(err.code).toBe('ECONNREFUSED');
    expect(events.map((e) => e.code)).toEqual(['ECONNREFUSED', 'ECONNREFUSED', 'ECONNREFUSED']);
    c.close();
  });

  it('the total time bounds waiting for a token too', async () => {
    const hanging: TokenProvider = { getToken: () => new Promise<AcquiredToken>(() => {}) };
    const { c } = client({ tokens: hanging, totalTimeoutMs: 300 });
    // Without the bound this call would never settle (the test's own timeout would fail it).
    const err = await rejectionOf<ApiCallError>(c.get('/x'));
    expect(err.code).toBe('ERR_DEADLINE');
    expect(err.message).toMatch(/GET .*\/x: no token within 300 ms/);
    expect(hits.get('GET /x')).toBeUndefined(); // nothing was sent without a token
    c.close();
  });

  it('bounds the total time of a call across attempts', async () => {
    const { c } = client({ timeoutMs: 10_000, totalTimeoutMs: 300 });
    const err = await rejectionOf<ApiCallError>(c.get('/hang'));
    expect(['ETIMEDOUT', 'ERR_DEADLINE']).toContain(err.code);
    expect(hits.get('GET /hang')).toBeLessThanOrEqual(4);
    c.close();
  });
});
