/**
 * GET /metrics (Prometheus, prom-client) and the request's trace context in the logs and the
 * `x-request-id` header, over real HTTP against the API and the Entra ID emulator.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Controller, Get, Module } from '@nestjs/common';
import { Public } from '@certflow/nest-entra-auth';
import { startEmulator, type RunningEmulator } from '@certflow/entra-emulator';
import { startApi, type RunningApi } from '../api-app';
import { JsonLogger } from '../logging/json-logger';
import { apiConfigFor } from '../testing/api-with-emulator.test-helpers';
import { appTokenClaims } from '../testing/access-tokens.test-helpers';

let stateDir: string;
let emulator: RunningEmulator;
let api: RunningApi;
const logs: Record<string, unknown>[] = [];

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'certflow-api-observability-'));
  emulator = await startEmulator({ stateDir, port: 0 });
  api = await startApi(apiConfigFor(emulator), {
    logger: new JsonLogger((line) => logs.push(JSON.parse(line) as Record<string, unknown>)),
  });
});

afterAll(async () => {
  await api?.close();
  await emulator?.close();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_SPAN = '00f067aa0ba902b7';

function send(
  path: string,
  init: { token?: string; traceparent?: string; method?: string; body?: unknown } = {},
) {
  const headers: Record<string, string> = {};
  if (init.token) headers['authorization'] = `Bearer ${init.token}`;
  if (init.traceparent) headers['traceparent'] = init.traceparent;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  return fetch(`${api.url}${path}`, {
    method: init.method ?? 'GET',
    headers,
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
}

/** The log lines of one request, once its access line is written. */
async function linesOf(requestId: string): Promise<Record<string, unknown>[]> {
  for (let i = 0; i < 50 && !logs.some((l) => l['event'] === 'request' && l['requestId'] === requestId); i++)
    await new Promise((resolve) => setTimeout(resolve, 20));
  return logs.filter((l) => l['requestId'] === requestId);
}

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('GET /metrics', () => {
  it('counts requests by route template, auth failures by code, and the verified-token cache', async () => {
    const token = await emulator.signAccessToken(appTokenClaims(emulator));
    for (let i = 0; i < 3; i++) expect((await send('/orders', { token })).status).toBe(200);
    expect((await send('/orders')).status).toBe(401);
    expect((await send('/orders/ord-does-not-exist-1', { token })).status).toBe(404);
    expect((await send('/orders/ord-does-not-exist-2', { token })).status).toBe(404);
    expect((await send('/no/such/route/1234')).status).toBe(404);

    const response = await send('/metrics');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await response.text();
    expect(sample(text, 'api_requests_total{route="/orders",method="GET",status="200"}')).toBe(3);
    expect(sample(text, 'api_requests_total{route="/orders",method="GET",status="401"}')).toBe(1);
    expect(sample(text, 'api_requests_total{route="/orders/:id",method="GET",status="404"}')).toBe(2);
    expect(sample(text, 'api_requests_total{route="unmatched",method="GET",status="404"}')).toBe(1);
    expect(sample(text, 'api_auth_failures_total{code="ERR_TOKEN_MISSING"}')).toBe(1);
    expect(sample(text, 'api_request_duration_seconds_count{route="/orders"}')).toBe(4);
    expect(text).toMatch(/^api_request_duration_seconds_bucket\{le="0.001",route="\/orders"\} \d+$/m);
    // One full verification, then the cache for the same token (five lookups: three 200s, two 404s).
    expect(sample(text, 'api_verified_token_cache_misses_total')).toBe(1);
    expect(sample(text, 'api_verified_token_cache_hits_total')).toBe(4);
    // Bounded labels: never a raw path.
    expect(text).not.toContain('ord-does-not-exist');
    expect(text).not.toContain('/no/such/route');
  });
});

describe('trace context and request id', () => {
  it('continues the caller’s trace: x-request-id and every log line of the request carry it', async () => {
    const response = await send('/orders', { traceparent: `00-${TRACE_ID}-${PARENT_SPAN}-01` });
    expect(response.status).toBe(401);
    expect(response.headers.get('x-request-id')).toBe(TRACE_ID);
    const lines = await linesOf(TRACE_ID);
    const refused = lines.find((l) => l['event'] === 'auth_rejected');
    const access = lines.find((l) => l['event'] === 'request');
    expect(refused).toMatchObject({ traceId: TRACE_ID, requestId: TRACE_ID, code: 'ERR_TOKEN_MISSING' });
    expect(access).toMatchObject({ traceId: TRACE_ID, route: '/orders', method: 'GET', status: 401 });
    expect(access!['spanId']).toMatch(/^[0-9a-f]{16}$/);
    expect(access!['spanId']).not.toBe(PARENT_SPAN);
    expect(access!['parentSpanId']).toBe(PARENT_SPAN);
    expect(refused!['spanId']).toBe(access!['spanId']);
  });

  it('starts a trace when there is none (or it is malformed), also for a request with a body', async () => {
    for (const traceparent of [undefined, '00-not-a-trace']) {
      const response = await send('/orders', {
        method: 'POST',
        body: { item: 'x', quantity: 1 },
        ...(traceparent ? { traceparent } : {}),
      });
      expect(response.status).toBe(401);
      const requestId = response.headers.get('x-request-id')!;
      expect(requestId).toMatch(/^[0-9a-f]{32}$/);
      const lines = await linesOf(requestId);
      expect(lines.map((l) => l['event'])).toEqual(['auth_rejected', 'request']);
      expect(new Set(lines.map((l) => `${l['traceId']} ${l['spanId']}`)).size).toBe(1);
    }
  });

  it('gives every request its own id, those refused by the Host and Origin check included', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) ids.add((await send('/health')).headers.get('x-request-id')!);
    expect(ids.size).toBe(5);
    // A cross-site request is refused before routing (403 ERR_ORIGIN_NOT_ALLOWED): it has an id too.
    const crossSite = await fetch(`${api.url}/health`, { headers: { 'sec-fetch-site': 'cross-site' } });
    expect(crossSite.status).toBe(403);
    expect(crossSite.headers.get('x-request-id')).toMatch(/^[0-9a-f]{32}$/);
  });

  it('puts the trace ids on the log line of an unexpected error', async () => {
    @Controller('broken')
    class BrokenController {
      @Public()
      @Get()
      fail(): never {
        throw new Error('internal detail');
      }
    }
    @Module({ controllers: [BrokenController] })
    class BrokenModule {}
    // Nest's Logger is process-wide: this app writes to the same capture.
    const broken = await startApi(apiConfigFor(emulator), {
      logger: new JsonLogger((line) => logs.push(JSON.parse(line) as Record<string, unknown>)),
      modules: [BrokenModule],
    });
    try {
      const traceId = 'a'.repeat(31) + 'b';
      const answer = await fetch(`${broken.url}/broken`, {
        headers: { traceparent: `00-${traceId}-${PARENT_SPAN}-00` },
      });
      expect(answer.status).toBe(500);
      const lines = await linesOf(traceId);
      expect(lines.find((l) => l['event'] === 'internal_error')).toMatchObject({
        level: 'error',
        traceId,
        spanId: expect.stringMatching(/^[0-9a-f]{16}$/),
      });
      expect(lines.find((l) => l['event'] === 'request')).toMatchObject({ status: 500, route: '/broken' });
    } finally {
      await broken.close();
    }
  });
});
