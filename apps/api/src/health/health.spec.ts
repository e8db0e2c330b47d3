/** Health, readiness (signing keys loaded) and the OpenAPI description, over real HTTP. */
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningEmulator } from '@certflow/entra-emulator';
import { startApi, type RunningApi } from '../api-app';
import { loadApiConfig } from '../config/api-config';
import { startApiWithEmulator, type ApiWithEmulator } from '../testing/api-with-emulator.test-helpers';
import { API_APP_ID } from '../testing/access-tokens.test-helpers';
import { callApi } from '../testing/http.test-helpers';

let emulator: RunningEmulator;
let api: RunningApi;
let stack: ApiWithEmulator | undefined;

beforeAll(async () => {
  stack = await startApiWithEmulator('health');
  ({ emulator, api } = stack);
});

afterAll(async () => {
  await stack?.close();
});

describe('GET /ready', () => {
  it('is ready once the signing keys are loaded, without a token', async () => {
    expect(await callApi(api.url, '/ready')).toMatchObject({
      status: 200,
      body: { status: 'ready', signingKeys: 'loaded' },
    });
  });

  it('answers 503 while the signing keys cannot be loaded', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadInstance = `https://localhost:${(closed.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const unready = await startApi(
      loadApiConfig({
        PORT: '0',
        ENTRA_INSTANCE: deadInstance,
        ENTRA_TENANT_ID: emulator.tenantId,
        API_AUDIENCES: API_APP_ID,
      }),
      { logger: false },
    );
    try {
      expect(await callApi(unready.url, '/health')).toMatchObject({ status: 200 });
      expect(await callApi(unready.url, '/ready')).toMatchObject({
        status: 503,
        body: { code: 'ERR_NOT_READY', signingKeys: 'unavailable' },
      });
    } finally {
      await unready.close();
    }
  });
});

describe('OpenAPI', () => {
  it('describes the routes and the bearer scheme at /docs-json, without a token', async () => {
    const { status, body } = await callApi(api.url, '/docs-json');
    expect(status).toBe(200);
    expect(body['openapi']).toMatch(/^3\./);
    expect(body).toMatchObject({
      components: { securitySchemes: { entra: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    });
    const paths = body['paths'] as Record<
      string,
      Record<string, { security?: unknown; 'x-app-roles'?: unknown }>
    >;
    expect(Object.keys(paths)).toEqual(
      expect.arrayContaining(['/orders', '/orders/{id}', '/health', '/ready']),
    );
    expect(paths['/orders']!['post']!.security).toEqual([{ entra: [] }]);
    expect(paths['/health']!['get']!.security).toBeUndefined();
    // The roles each operation requires, as tools read them (app-roles.ts).
    expect(paths['/orders']!['get']!['x-app-roles']).toEqual(['Orders.Read']);
    expect(paths['/orders/{id}']!['get']!['x-app-roles']).toEqual(['Orders.Read']);
    expect(paths['/orders']!['post']!['x-app-roles']).toEqual(['Orders.Write']);
    expect(paths['/health']!['get']!['x-app-roles']).toBeUndefined();
  });

  it('serves Swagger UI at /docs', async () => {
    const response = await fetch(`${api.url}/docs`);
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('swagger');
  });
});
