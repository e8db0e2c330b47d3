/**
 * Cheap validation, over real HTTP with tokens signed by the emulator: a token verified once
 * is not verified again (counted by how often the signing key is asked for — a spy that only
 * counts), and no check is weakened by the cache.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startEmulator, type RunningEmulator } from '@certflow/entra-emulator';
import { startApi, type RunningApi } from '../../src/api-app';
import { loadApiConfig } from '../../src/config/api-config';
import {
  API_APP_ID,
  API_APP_ID_URI,
  PARTNER_APP_ID,
  appTokenClaims,
} from '../../src/testing/access-tokens.test-helpers';
import { callApi } from '../../src/testing/http.test-helpers';
import { VerifiedTokenCache } from '@certflow/claims';
import { EntraAuthority } from '@certflow/nest-entra-auth';

let stateDir: string;
let emulator: RunningEmulator;
const apis: RunningApi[] = [];

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'certflow-api-cache-'));
  emulator = await startEmulator({ stateDir, port: 0 });
});

afterAll(async () => {
  await Promise.all(apis.map((api) => api.close()));
  await emulator?.close();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

async function apiWith(env: Record<string, string> = {}) {
  const api = await startApi(
    loadApiConfig({
      PORT: '0',
      ENTRA_INSTANCE: emulator.url,
      ENTRA_TENANT_ID: emulator.tenantId,
      API_AUDIENCES: `${API_APP_ID},${API_APP_ID_URI}`,
      ENTRA_CA_FILE: emulator.caCertificatePath,
      ...env,
    }),
    { logger: false },
  );
  apis.push(api);
  // Counts full verifications: every one asks for the signing key first; the spy changes nothing.
  const keyLookups = vi.spyOn(api.app.get(EntraAuthority), 'keyFor');
  return { api, keyLookups, cache: api.app.get(VerifiedTokenCache) };
}

const token = (overrides: Record<string, unknown> = {}) =>
  emulator.signAccessToken(appTokenClaims(emulator, overrides));

describe('a token presented again', () => {
  it('is verified once: later requests with it skip the signature check', async () => {
    const { api, keyLookups } = await apiWith();
    const bearer = await token();
    for (let i = 0; i < 5; i++) expect((await callApi(api.url, '/orders', bearer)).status).toBe(200);
    expect(keyLookups).toHaveBeenCalledTimes(1);
    expect((await callApi(api.url, '/orders', await token())).status).toBe(200);
    expect(keyLookups).toHaveBeenCalledTimes(2);
  });

  it('is verified every time when it was refused (refusals are not cached)', async () => {
    const { api, keyLookups } = await apiWith();
    const wrongAudience = await token({ aud: randomUUID() });
    for (let i = 0; i < 3; i++)
      expect((await callApi(api.url, '/orders', wrongAudience)).body['code']).toBe('ERR_TOKEN_AUDIENCE');
    expect(keyLookups).toHaveBeenCalledTimes(3);
  });

  it('still goes through the app-role check on every request', async () => {
    const { api, keyLookups } = await apiWith();
    const writerOnly = await token({ roles: ['Orders.Write'] });
    expect((await callApi(api.url, '/orders', writerOnly)).body['code']).toBe('ERR_APP_ROLE_MISSING');
    expect((await callApi(api.url, '/orders', writerOnly)).body['code']).toBe('ERR_APP_ROLE_MISSING');
    expect(keyLookups).toHaveBeenCalledTimes(1); // verified once, refused twice
  });

  it('still goes through the client checks (certificate-only, allow-list) on every request', async () => {
    const { api, keyLookups } = await apiWith({
      API_REQUIRE_CERTIFICATE_CLIENTS: 'true',
      API_ALLOWED_CLIENT_IDS: PARTNER_APP_ID,
    });
    const secretClient = await token({ azpacr: '1' });
    const otherClient = await token({ azp: randomUUID() });
    for (let i = 0; i < 2; i++) {
      expect((await callApi(api.url, '/orders', secretClient)).body['code']).toBe(
        'ERR_CLIENT_CERTIFICATE_REQUIRED',
      );
      expect((await callApi(api.url, '/orders', otherClient)).body['code']).toBe('ERR_CLIENT_NOT_ALLOWED');
    }
    expect(keyLookups).toHaveBeenCalledTimes(2);
  });

  it('is not shared between two APIs: one accepting it does not make the other accept it', async () => {
    const first = await apiWith();
    const second = await apiWith({ API_AUDIENCES: randomUUID() });
    const bearer = await token();
    expect((await callApi(first.api.url, '/orders', bearer)).status).toBe(200);
    expect((await callApi(second.api.url, '/orders', bearer)).body['code']).toBe('ERR_TOKEN_AUDIENCE');
  });

  it('keeps the cache bounded by API_TOKEN_CACHE_SIZE', async () => {
    const { api, cache } = await apiWith({ API_TOKEN_CACHE_SIZE: '3' });
    for (let i = 0; i < 6; i++) expect((await callApi(api.url, '/orders', await token())).status).toBe(200);
    expect(cache.size).toBe(3);
  });

  it('verifies every time with API_TOKEN_CACHE_SIZE=0', async () => {
    const { api, keyLookups } = await apiWith({ API_TOKEN_CACHE_SIZE: '0' });
    const bearer = await token();
    for (let i = 0; i < 3; i++) expect((await callApi(api.url, '/orders', bearer)).status).toBe(200);
    expect(keyLookups).toHaveBeenCalledTimes(3);
  });

  it('never serves a tampered copy of a cached token: a changed byte is verified and refused', async () => {
    const { api } = await apiWith();
    const bearer = await token();
    expect((await callApi(api.url, '/orders', bearer)).status).toBe(200);
    const [header, payload, signature] = bearer.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    const forged = `${header}.${Buffer.from(JSON.stringify({ ...claims, roles: ['Orders.Read', 'Orders.Write'] })).toString('base64url')}.${signature}`;
    expect((await callApi(api.url, '/orders', forged)).body['code']).toBe('ERR_TOKEN_SIGNATURE');
  });
});
