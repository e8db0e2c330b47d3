/**
 * The API's answers outside its routes' own logic, over real HTTP: 405 with `Allow` for an
 * undeclared method, one error shape (with a `code`) for what Nest and Fastify refuse, and an
 * OpenAPI document that lists every such answer, the gateway's included.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Controller, Get, Module } from '@nestjs/common';
import { startApi, type RunningApi } from '../api-app';
import { Public } from '@certflow/nest-entra-auth';
import {
  apiConfigFor,
  startApiWithEmulator,
  type ApiWithEmulator,
} from '../testing/api-with-emulator.test-helpers';
import { appTokenClaims } from '../testing/access-tokens.test-helpers';

let stack: ApiWithEmulator | undefined;
let api: RunningApi;
let writer: string;

beforeAll(async () => {
  stack = await startApiWithEmulator('http-answers');
  api = stack.api;
  writer = await stack.emulator.signAccessToken(
    appTokenClaims(stack.emulator, { roles: ['Orders.Read', 'Orders.Write'] }),
  );
});

afterAll(async () => {
  await stack?.close();
});

/** Over node:http, which sends any method (fetch refuses TRACE). */
function send(
  method: string,
  path: string,
  init: { token?: string; contentType?: string; body?: string; host?: string } = {},
): Promise<{ status: number; allow: string | null; body: Record<string, unknown> }> {
  const headers: Record<string, string> = {};
  if (init.host) headers['host'] = init.host;
  if (init.token) headers['authorization'] = `Bearer ${init.token}`;
  if (init.contentType) headers['content-type'] = init.contentType;
  return new Promise((resolve, reject) => {
    const req = request(`${api.url}${path}`, { method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          allow: res.headers['allow'] ?? null,
          body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
        }),
      );
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

describe('an undeclared method on a known path', () => {
  it.each([
    ['DELETE', '/orders', 'GET, POST, HEAD'],
    ['PUT', '/orders', 'GET, POST, HEAD'],
    ['OPTIONS', '/orders', 'GET, POST, HEAD'],
    ['PATCH', '/orders/ord-1001', 'GET, HEAD'],
    ['POST', '/orders/ord-1001', 'GET, HEAD'],
    ['TRACE', '/health', 'GET, HEAD'],
    ['QUERY', '/ready', 'GET, HEAD'],
  ])('%s %s answers 405 with Allow: %s', async (method, path, allow) => {
    const answer = await send(method, path);
    expect(answer).toEqual({
      status: 405,
      allow,
      body: {
        statusCode: 405,
        error: 'Method Not Allowed',
        code: 'ERR_METHOD_NOT_ALLOWED',
        message: expect.stringContaining(allow),
      },
    });
  });

  it('comes after the Host check: a foreign Host still gets 421', async () => {
    const answer = await send('DELETE', '/orders', { host: 'attacker.example' });
    expect(answer).toMatchObject({ status: 421, allow: null, body: { code: 'ERR_HOST_NOT_ALLOWED' } });
  });

  it('answers 405 before reading the body: a body that is not JSON changes nothing', async () => {
    const answer = await send('DELETE', '/orders', { contentType: 'application/json', body: '{' });
    expect(answer.status).toBe(405);
  });

  it('leaves declared methods alone: HEAD where GET is, and an unknown path is still 404', async () => {
    expect((await send('HEAD', '/health')).status).toBe(200);
    expect((await send('DELETE', '/nowhere')).body).toMatchObject({ statusCode: 404, code: 'ERR_NOT_FOUND' });
  });
});

describe('every error of the API has its shape and a code', () => {
  const json = (body: string) => ({ contentType: 'application/json', body });
  it.each([
    ['an unknown route', 'GET', '/nowhere', 404, 'ERR_NOT_FOUND', {}],
    ['a body that is not JSON', 'POST', '/orders', 400, 'ERR_BAD_REQUEST', json('{')],
    ['an empty JSON body', 'POST', '/orders', 400, 'ERR_BAD_REQUEST', json('')],
    ['a body over 16 KiB', 'POST', '/orders', 413, 'ERR_BODY_TOO_LARGE', json(`"${'x'.repeat(20_000)}"`)],
    [
      'a body of another media type',
      'POST',
      '/orders',
      415,
      'ERR_UNSUPPORTED_MEDIA_TYPE',
      { contentType: 'application/xml', body: '<order/>' },
    ],
    ['an id that is not percent-encoded UTF-8', 'GET', '/orders/%E0%A4%A', 400, 'ERR_BAD_REQUEST', {}],
    ['an id over 100 characters', 'GET', `/orders/${'a'.repeat(101)}`, 414, 'ERR_URL_TOO_LONG', {}],
  ] as const)('%s: %s %s → %i %s', async (_what, method, path, status, code, init) => {
    const answer = await send(method, path, { ...init, token: writer });
    expect(answer.status).toBe(status);
    expect(answer.body).toEqual({
      statusCode: status,
      error: expect.any(String),
      code,
      message: expect.any(String),
    });
  });

  it('answers an unexpected error with 500 ERR_INTERNAL, naming nothing of the cause', async () => {
    @Controller('broken')
    class BrokenController {
      @Public()
      @Get()
      fail(): never {
        throw new Error('internal detail /srv/secret');
      }
    }
    @Module({ controllers: [BrokenController] })
    class BrokenModule {}
    const broken = await startApi(apiConfigFor(stack!.emulator), { logger: false, modules: [BrokenModule] });
    try {
      const answer = await fetch(`${broken.url}/broken`);
      expect(answer.status).toBe(500);
      expect(await answer.json()).toEqual({
        statusCode: 500,
        error: 'Internal Server Error',
        code: 'ERR_INTERNAL',
        message: 'internal error',
      });
    } finally {
      await broken.close();
    }
  });

  it('keeps the codes the API gives itself (with errors for an invalid order)', async () => {
    const answer = await send('POST', '/orders', {
      token: writer,
      contentType: 'application/json',
      body: '{}',
    });
    expect(answer.body).toMatchObject({
      statusCode: 400,
      code: 'ERR_ORDER_INVALID',
      errors: expect.any(Array),
    });
  });
});

describe('the OpenAPI document', () => {
  type Responses = Record<string, { content?: { 'application/json'?: { schema: unknown } } }>;
  let paths: Record<string, Record<string, { responses: Responses }>>;
  let schemas: Record<string, Record<string, unknown>>;

  beforeAll(async () => {
    const document = (await (await fetch(`${api.url}/docs-json`)).json()) as {
      paths: typeof paths;
      components: { schemas: typeof schemas };
    };
    ({ paths } = document);
    schemas = document.components.schemas;
  });

  const operations = () =>
    Object.entries(paths).flatMap(([path, item]) =>
      Object.entries(item).map(([method, operation]) => ({ label: `${method} ${path}`, operation })),
    );
  const schemaOf = (responses: Responses, status: number) =>
    responses[String(status)]?.content?.['application/json']?.schema;
  const gatewayError = { $ref: '#/components/schemas/GatewayError' };
  const apiError = { $ref: '#/components/schemas/ApiError' };

  it("documents the gateway's own answers on every operation, in APIM's shape", () => {
    for (const { label, operation } of operations()) {
      for (const status of [400, 401, 403, 408, 413, 414, 421, 429, 431, 502, 504]) {
        const schema = schemaOf(operation.responses, status) as { oneOf?: unknown[] } | undefined;
        expect(schema?.oneOf ?? [schema], `${label} ${status}`).toContainEqual(gatewayError);
      }
    }
  });

  it('gives a status both the API and the gateway answer both shapes, one of which must match', () => {
    const post = paths['/orders']!['post']!.responses;
    for (const status of [400, 401, 403, 413])
      expect(schemaOf(post, status)).toEqual({ oneOf: [apiError, gatewayError] });
    expect(schemaOf(post, 415)).toEqual(apiError); // the gateway never answers 415
    const health = paths['/health']!['get']!.responses;
    expect(schemaOf(health, 401)).toEqual(gatewayError); // public at the API, not at the gateway
    // The Host and Origin check runs before routing: on every operation, as at the gateway.
    for (const status of [403, 421])
      expect(schemaOf(health, status)).toEqual({ oneOf: [apiError, gatewayError] });
  });

  it('describes both error shapes closed, so that neither can match the other', () => {
    expect(schemas['ApiError']).toMatchObject({
      required: ['statusCode', 'error', 'code', 'message'],
      additionalProperties: false,
    });
    expect(schemas['GatewayError']).toMatchObject({
      required: ['statusCode', 'message'],
      additionalProperties: false,
    });
  });

  it('publishes the rules of the order body, and refuses unknown fields there', () => {
    expect(schemas['CreateOrderInput']).toMatchObject({
      additionalProperties: false,
      properties: { customerReference: { pattern: expect.any(String), maxLength: 64 } },
    });
    expect(schemas['Money']).toMatchObject({
      additionalProperties: false,
      properties: { amount: { pattern: expect.any(String) }, currency: { pattern: '^[A-Z]{3}$' } },
    });
  });
});
