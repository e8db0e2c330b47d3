/**
 * Issuers and signing keys come from the tenant's OpenID metadata, read at start-up from the
 * real emulator over HTTPS. When it cannot be read the API still starts, answers /ready with
 * 503 naming the URL, refuses every protected request (401, fail closed), and tries again with
 * backoff until the authority is there; a tenant the authority does not know is logged as a
 * configuration error.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '@certflow/entra-emulator';
import { startApi } from '../src/api-app';
import { JsonLogger } from '../src/logging/json-logger';
import { apiConfigFor } from '../src/testing/api-with-emulator.test-helpers';
import { appTokenClaims } from '../src/testing/access-tokens.test-helpers';
import { callApi } from '../src/testing/http.test-helpers';

let stateDir: string;
const emulators: RunningEmulator[] = [];

beforeAll(() => {
  stateDir = mkdtempSync(join(tmpdir(), 'certflow-api-discovery-'));
});

afterAll(async () => {
  await Promise.all(emulators.map((e) => e.close()));
  rmSync(stateDir, { recursive: true, force: true });
});

async function emulatorOn(port: number): Promise<RunningEmulator> {
  const emulator = await startEmulator({ stateDir, port });
  emulators.push(emulator);
  return emulator;
}

async function eventually<T>(probe: () => Promise<T>, done: (value: T) => boolean, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('OpenID discovery', () => {
  it('starts without the authority, fails closed, and recovers once the authority comes up', async () => {
    // The emulator's state (tenant, CA, keys) is made once, then it is stopped: the API starts alone.
    const first = await emulatorOn(0);
    const { url, tenantId, caCertificatePath } = first;
    const port = Number(new URL(url).port);
    await first.close();
    const logs: Record<string, unknown>[] = [];
    const api = await startApi(apiConfigFor({ url, tenantId, caCertificatePath }), {
      logger: new JsonLogger((line) => logs.push(JSON.parse(line) as Record<string, unknown>)),
    });
    try {
      const metadataUrl = `${url}/${tenantId}/v2.0/.well-known/openid-configuration`;
      const ready = await callApi(api.url, '/ready');
      expect(ready).toMatchObject({
        status: 503,
        body: { code: 'ERR_NOT_READY', status: 'not_ready', failingUrl: metadataUrl },
      });
      expect(ready.body['message']).toContain(metadataUrl);
      expect((await callApi(api.url, '/health')).status).toBe(200);
      expect(logs).toContainEqual(
        expect.objectContaining({ event: 'openid_metadata_unavailable', url: metadataUrl, level: 'warn' }),
      );

      // Same state directory, same port: the same tenant, CA and signing keys.
      const authority = await emulatorOn(port);
      const token = await authority.signAccessToken(appTokenClaims(authority));
      const refused = await callApi(api.url, '/orders', token);
      // Either discovery has not retried yet (fail closed), or it has: never a 5xx, never a 200 before.
      if (refused.status !== 200)
        expect({ status: refused.status, code: refused.body['code'] }).toEqual({
          status: 401,
          code: 'ERR_ISSUER_METADATA_UNAVAILABLE',
        });
      const recovered = await eventually(
        () => callApi(api.url, '/ready'),
        (answer) => answer.status === 200,
      );
      expect(recovered).toMatchObject({ status: 200, body: { status: 'ready', signingKeys: 'loaded' } });
      expect((await callApi(api.url, '/orders', token)).status).toBe(200);
      const retries = logs.filter((l) => l['event'] === 'openid_metadata_unavailable');
      expect(retries.map((l) => l['retryInMs'])).toEqual(
        retries.map((_, i) => Math.min(500 * 2 ** i, 30_000)),
      );
      expect(logs).toContainEqual(
        expect.objectContaining({
          event: 'openid_metadata_loaded',
          tenantId,
          issuers: [`https://sts.windows.net/${tenantId}/`, `${url}/${tenantId}/v2.0`].sort(),
        }),
      );
    } finally {
      await api.close();
    }
  });

  it('refuses every protected request with 401 while the metadata is missing', async () => {
    const authority = emulators.at(-1)!;
    const api = await startApi(apiConfigFor(authority, { ENTRA_TENANT_ID: randomUUID() }), { logger: false });
    try {
      const token = await authority.signAccessToken(appTokenClaims(authority));
      // The token's own tenant is not configured; a token claiming the configured one has no issuer to match.
      expect((await callApi(api.url, '/orders', token)).body['code']).toBe('ERR_TOKEN_TENANT');
      expect((await callApi(api.url, '/ready')).status).toBe(503);
    } finally {
      await api.close();
    }
  });

  it('says plainly that a tenant unknown to the authority is a configuration error', async () => {
    const authority = emulators.at(-1)!;
    const tenantId = randomUUID();
    const logs: Record<string, unknown>[] = [];
    const api = await startApi(apiConfigFor(authority, { ENTRA_TENANT_ID: tenantId }), {
      logger: new JsonLogger((line) => logs.push(JSON.parse(line) as Record<string, unknown>)),
    });
    try {
      const metadataUrl = `${authority.url}/${tenantId}/v2.0/.well-known/openid-configuration`;
      const error = logs.find((l) => l['event'] === 'openid_metadata_configuration_error');
      expect(error).toMatchObject({ level: 'error', url: metadataUrl, status: expect.any(Number) });
      expect([400, 404]).toContain(error!['status']);
      expect(error!['message']).toMatch(/configuration error.*tenant does not exist/);
      const token = await authority.signAccessToken(appTokenClaims({ tenantId, issuer: authority.issuer }));
      expect(await callApi(api.url, '/orders', token)).toMatchObject({
        status: 401,
        body: { code: 'ERR_ISSUER_METADATA_UNAVAILABLE' },
      });
      expect((await callApi(api.url, '/ready')).body['failingUrl']).toBe(metadataUrl);
    } finally {
      await api.close();
    }
  });
});
