/** The orders resource over real HTTP, with tokens signed by the emulator. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '@certflow/entra-emulator';
import { startApi, type RunningApi } from '../api-app';
import { loadApiConfig } from '../config/api-config';
import { API_APP_ID, appTokenClaims } from '../testing/access-tokens.test-helpers';
import { callApi } from '../testing/http.test-helpers';

let stateDir: string;
let emulator: RunningEmulator;
let api: RunningApi;
let reader: string;
let writer: string;

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'certflow-api-orders-'));
  emulator = await startEmulator({ stateDir, port: 0 });
  api = await startApi(
    loadApiConfig({
      PORT: '0',
      ENTRA_INSTANCE: emulator.url,
      ENTRA_TENANT_ID: emulator.tenantId,
      API_AUDIENCES: API_APP_ID,
      ENTRA_CA_FILE: emulator.caCertificatePath,
    }),
    { logger: false },
  );
  reader = await emulator.signAccessToken(appTokenClaims(emulator, { roles: ['Orders.Read'] }));
  writer = await emulator.signAccessToken(
    appTokenClaims(emulator, { roles: ['Orders.Read', 'Orders.Write'] }),
  );
});

afterAll(async () => {
  await api?.close();
  await emulator?.close();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

const validOrder = { customerReference: 'PO-7750', total: { amount: '19.99', currency: 'EUR' } };

describe('GET /orders/:id', () => {
  it('returns one order to a caller with Orders.Read', async () => {
    const { status, body } = await callApi(api.url, '/orders/ord-1002', reader);
    expect(status).toBe(200);
    expect(body).toMatchObject({ id: 'ord-1002', status: 'shipped', total: { currency: 'EUR' } });
  });

  it('answers 404 ERR_ORDER_NOT_FOUND for an unknown id', async () => {
    const { status, body } = await callApi(api.url, '/orders/ord-0000', reader);
    expect({ status, code: body['code'] }).toEqual({ status: 404, code: 'ERR_ORDER_NOT_FOUND' });
  });

  it('answers 401 without a token, before looking the order up', async () => {
    expect((await callApi(api.url, '/orders/ord-0000')).status).toBe(401);
  });
});

describe('POST /orders', () => {
  it('creates an order for a caller with Orders.Write, readable afterwards', async () => {
    const { status, body } = await callApi(api.url, '/orders', writer, { method: 'POST', body: validOrder });
    expect(status).toBe(201);
    expect(body).toMatchObject({
      id: expect.stringMatching(/^ord-/),
      status: 'received',
      ...validOrder,
      createdAt: expect.any(String),
    });
    const read = await callApi(api.url, `/orders/${String(body['id'])}`, reader);
    expect(read.body).toEqual(body);
    const list = await callApi(api.url, '/orders', reader);
    expect(list.body['orders']).toContainEqual(body);
  });

  it('refuses with 403 a caller holding only Orders.Read', async () => {
    const { status, body } = await callApi(api.url, '/orders', reader, { method: 'POST', body: validOrder });
    expect({ status, code: body['code'] }).toEqual({ status: 403, code: 'ERR_APP_ROLE_MISSING' });
    expect(body['message']).toContain('Orders.Write');
  });

  it.each([
    [{ ...validOrder, customerReference: '' }, 'customerReference must be'],
    [{ ...validOrder, customerReference: 'x'.repeat(65) }, 'customerReference must be'],
    [{ ...validOrder, customerReference: 42 }, 'customerReference must be'],
    [{ customerReference: 'PO-1' }, 'total must be an object'],
    [{ ...validOrder, total: { amount: 19.99, currency: 'EUR' } }, 'total.amount must be a decimal string'],
    [{ ...validOrder, total: { amount: '-1', currency: 'EUR' } }, 'total.amount must be a decimal string'],
    [{ ...validOrder, total: { amount: '1.999', currency: 'EUR' } }, 'total.amount must be a decimal string'],
    [
      { ...validOrder, total: { amount: '1', currency: 'eur' } },
      'total.currency must be a 3-letter ISO 4217 code',
    ],
    [{ ...validOrder, status: 'delivered' }, 'status is not a known field'],
    [{ ...validOrder, total: { ...validOrder.total, fx: 1 } }, 'total.fx is not a known field'],
    [[validOrder], 'body must be a JSON object'],
  ])('answers 400 ERR_ORDER_INVALID to %j', async (input, problem) => {
    const { status, body } = await callApi(api.url, '/orders', writer, { method: 'POST', body: input });
    expect({ status, code: body['code'] }).toEqual({ status: 400, code: 'ERR_ORDER_INVALID' });
    expect(body['errors']).toEqual(expect.arrayContaining([expect.stringContaining(problem)]));
  });

  it('lists every problem of a body at once', async () => {
    const { body } = await callApi(api.url, '/orders', writer, {
      method: 'POST',
      body: { total: { amount: 'x' }, note: 1 },
    });
    expect(body['errors']).toHaveLength(4);
  });

  it('answers 400 to a body that is not JSON', async () => {
    const { status } = await callApi(api.url, '/orders', writer, {
      method: 'POST',
      body: '{"customerReference":',
    });
    expect(status).toBe(400);
  });

  it('answers 413 to a body beyond 16 KiB', async () => {
    const { status } = await callApi(api.url, '/orders', writer, {
      method: 'POST',
      body: { ...validOrder, customerReference: 'x'.repeat(20_000) },
    });
    expect(status).toBe(413);
  });
});
