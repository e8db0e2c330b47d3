/**
 * DNS rebinding and cross-site requests against the API on loopback, over real HTTP with tokens
 * signed by the emulator: 421 for a foreign Host, 403 for a cross-site Origin, and no order made.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadApiConfig, validateApiConfig } from '../config/api-config';
import { ConfigError } from '../config/config-error';
import { appTokenClaims } from '../testing/access-tokens.test-helpers';
import { startApiWithEmulator, type ApiWithEmulator } from '../testing/api-with-emulator.test-helpers';

let stack: ApiWithEmulator;
let port: number;
let writer: string;

beforeAll(async () => {
  stack = await startApiWithEmulator('host-origin', { API_ALLOWED_HOSTS: 'orders.test' });
  port = Number(new URL(stack.api.url).port);
  writer = await stack.emulator.signAccessToken(
    appTokenClaims(stack.emulator, { roles: ['Orders.Read', 'Orders.Write'] }),
  );
});

afterAll(async () => {
  await stack?.close();
});

interface Answer {
  status: number;
  connection: string | undefined;
  body: Record<string, unknown>;
}

/** A request to the API's socket with any Host (fetch would not let the test choose it). */
function send(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        headers: {
          authorization: `Bearer ${writer}`,
          ...(text === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8').on('data', (d: string) => (data += d));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            connection: res.headers.connection,
            body: (data === '' ? {} : JSON.parse(data)) as Record<string, unknown>,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

const order = { customerReference: 'PO-REBIND', total: { amount: '1.00', currency: 'EUR' } };
const orderCount = async () =>
  ((await send('GET', '/orders', { host: `127.0.0.1:${port}` })).body['orders'] as unknown[]).length;

describe('Host and Origin on the API bound to loopback', () => {
  it('a rebound Host gets 421 (connection closed) and a cross-site Origin 403: no order is created', async () => {
    const before = await orderCount();
    const rebound = await send(
      'POST',
      '/orders',
      { host: `attacker.example:${port}`, origin: `http://attacker.example:${port}` },
      order,
    );
    expect(rebound).toMatchObject({
      status: 421,
      connection: 'close',
      body: { statusCode: 421, error: 'Misdirected Request', code: 'ERR_HOST_NOT_ALLOWED' },
    });
    expect(rebound.body['message']).toContain('attacker.example');
    const crossSite: Record<string, string>[] = [
      { host: `localhost:${port}`, origin: 'https://attacker.example' },
      { host: `localhost:${port}`, origin: 'null' },
      { host: `localhost:${port}`, 'sec-fetch-site': 'cross-site' },
    ];
    for (const headers of crossSite) {
      const answer = await send('POST', '/orders', headers, order);
      expect(answer).toMatchObject({
        status: 403,
        body: { statusCode: 403, error: 'Forbidden', code: 'ERR_ORIGIN_NOT_ALLOWED' },
      });
    }
    expect((await send('POST', '/orders', { host: `localhost:${port + 1}` }, order)).status).toBe(421);
    expect(await orderCount()).toBe(before);
  });

  it('the description, health and unknown paths are refused too, before routing', async () => {
    for (const path of ['/docs-json', '/health', '/nope'])
      expect((await send('GET', path, { host: 'attacker.example' })).status).toBe(421);
  });

  it('the gateway (Host 127.0.0.1:PORT), the loopback names, a configured name and the same origin are served', async () => {
    const before = await orderCount();
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `ORDERS.test:${port}`])
      expect((await send('GET', '/orders', { host })).status).toBe(200);
    const sameOrigin = await send(
      'POST',
      '/orders',
      { host: `localhost:${port}`, origin: `http://localhost:${port}`, 'sec-fetch-site': 'same-origin' },
      order,
    );
    expect(sameOrigin.status).toBe(201);
    expect(await orderCount()).toBe(before + 1);
  });
});

describe('API_ALLOWED_HOSTS', () => {
  const env = {
    ENTRA_TENANT_ID: '00000000-0000-4000-8000-000000000001',
    API_AUDIENCES: 'api://x',
  };

  it('is read comma-separated, trimmed and lower case', () => {
    expect(loadApiConfig({ ...env, API_ALLOWED_HOSTS: ' A.test, b.test ' }).allowedHosts).toEqual([
      'a.test',
      'b.test',
    ]);
    expect(loadApiConfig(env).allowedHosts).toEqual([]);
  });

  it.each(['a.test:3000', '*.test', 'a.test.', 'a.test,,b.test', 'http://a.test'])(
    'stops start-up naming the variable: %j',
    (value) => {
      const error = (() => {
        try {
          loadApiConfig({ ...env, API_ALLOWED_HOSTS: value });
        } catch (err) {
          return err;
        }
      })();
      expect(error).toBeInstanceOf(ConfigError);
      expect(error).toMatchObject({ variable: 'API_ALLOWED_HOSTS' });
    },
  );

  it('is checked for configurations built in code as well', () => {
    const config = loadApiConfig(env);
    expect(() => validateApiConfig({ ...config, allowedHosts: ['a.test:1'] })).toThrow(/^API_ALLOWED_HOSTS /);
  });
});
