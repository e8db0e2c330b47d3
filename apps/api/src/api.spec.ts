/**
 * The API end to end over real HTTP, against the Entra ID emulator: tokens signed with the
 * emulator's signing key, whose JWKS the API fetches over HTTPS (trusting the development CA
 * through ENTRA_CA_FILE), and hostile tokens (other keys, alg none, HS256 confusion).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type RunningApi } from './api-app';
import { loadApiConfig } from './config/api-config';
import { JsonLogger } from './logging/json-logger';
import { startEmulator, type RunningEmulator } from '@certflow/entra-emulator';
import {
  API_APP_ID,
  API_APP_ID_URI,
  PARTNER_APP_ID,
  appTokenClaims,
  kidOf,
  signWithUntrustedKey,
} from './testing/access-tokens.test-helpers';

let stateDir: string;
let authority: RunningEmulator;
let api: RunningApi;
const logLines: string[] = [];
const issuedTokens: string[] = [];

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'certflow-api-'));
  authority = await startEmulator({ stateDir, port: 0 });
  const config = loadApiConfig({
    PORT: '0',
    ENTRA_INSTANCE: authority.url,
    ENTRA_TENANT_ID: authority.tenantId,
    API_AUDIENCES: `${API_APP_ID},${API_APP_ID_URI}`,
    ENTRA_CA_FILE: authority.caCertificatePath,
  });
  api = await startApi(config, { logger: new JsonLogger((line) => logLines.push(line)) });
});

afterAll(async () => {
  await api?.close();
  await authority?.close();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

/** A token signed by the authority's real key. */
async function tokenFor(overrides: Record<string, unknown> = {}): Promise<string> {
  const token = await authority.signAccessToken(appTokenClaims(authority, overrides));
  issuedTokens.push(token);
  return token;
}

async function call(path: string, token?: string) {
  const response = await fetch(
    `${api.url}${path}`,
    token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } },
  );
  return {
    status: response.status,
    body: (await response.json()) as Record<string, unknown>,
    challenge: response.headers.get('www-authenticate'),
  };
}

async function expectRefused(token: string | undefined, status: 401 | 403, code: string) {
  const { status: actual, body, challenge } = await call('/orders', token);
  expect({ status: actual, code: body['code'] }).toEqual({ status, code });
  expect(body).toMatchObject({ statusCode: status, message: expect.any(String) });
  expect(body).not.toHaveProperty('orders');
  expect(challenge).toMatch(/^Bearer/);
  return body;
}

describe('GET /health', () => {
  it('answers without a token', async () => {
    expect(await call('/health')).toMatchObject({ status: 200, body: { status: 'ok' } });
  });
});

describe('GET /orders', () => {
  it('returns the orders and who called for a certificate client holding Orders.Read', async () => {
    const { status, body } = await call('/orders', await tokenFor());
    expect(status).toBe(200);
    expect(body['caller']).toEqual({
      clientAppId: PARTNER_APP_ID,
      tenantId: authority.tenantId,
      roles: ['Orders.Read'],
      clientAuthentication: 'certificate',
    });
    expect(body['orders']).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ id: expect.any(String), status: expect.any(String) }),
      ]),
    );
  });

  it('accepts a v1 token (sts.windows.net issuer, App ID URI audience, appid/appidacr)', async () => {
    const v1 = appTokenClaims(authority, {
      ver: '1.0',
      iss: `https://sts.windows.net/${authority.tenantId}/`,
      aud: API_APP_ID_URI,
      appid: PARTNER_APP_ID,
      appidacr: '1',
    });
    delete v1['azp'];
    delete v1['azpacr'];
    const { status, body } = await call('/orders', await authority.signAccessToken(v1));
    expect(status).toBe(200);
    expect(body['caller']).toMatchObject({ clientAppId: PARTNER_APP_ID, clientAuthentication: 'secret' });
  });

  it('refuses a request without a token with 401 and a bare Bearer challenge', async () => {
    const body = await expectRefused(undefined, 401, 'ERR_TOKEN_MISSING');
    expect(body['error']).toBe('Unauthorized');
    const { challenge } = await call('/orders');
    expect(challenge).toBe('Bearer');
  });

  it('refuses a token issued for another audience', async () => {
    await expectRefused(await tokenFor({ aud: randomUUID() }), 401, 'ERR_TOKEN_AUDIENCE');
  });

  it('refuses an expired token', async () => {
    const now = Math.floor(Date.now() / 1000);
    await expectRefused(
      await tokenFor({ iat: now - 7200, nbf: now - 7200, exp: now - 600 }),
      401,
      'ERR_TOKEN_EXPIRED',
    );
  });

  it('refuses a token that is not valid yet', async () => {
    const now = Math.floor(Date.now() / 1000);
    await expectRefused(await tokenFor({ nbf: now + 600, exp: now + 4200 }), 401, 'ERR_TOKEN_NOT_YET_VALID');
  });

  it('refuses a token from another issuer, even signed with the trusted key', async () => {
    await expectRefused(
      await tokenFor({ iss: `https://login.microsoftonline.com/${randomUUID()}/v2.0` }),
      401,
      'ERR_TOKEN_ISSUER',
    );
  });

  it('refuses a token whose tid disagrees with the configured tenant', async () => {
    await expectRefused(await tokenFor({ tid: randomUUID() }), 401, 'ERR_TOKEN_TENANT');
  });

  it('refuses a token signed by a key the JWKS does not publish', async () => {
    await expectRefused(
      await signWithUntrustedKey(appTokenClaims(authority), randomUUID()),
      401,
      'ERR_TOKEN_SIGNING_KEY_UNKNOWN',
    );
  });

  it('refuses a token signed by another key under the kid of a trusted one', async () => {
    const trustedKid = kidOf(await tokenFor());
    await expectRefused(
      await signWithUntrustedKey(appTokenClaims(authority), trustedKid),
      401,
      'ERR_TOKEN_SIGNATURE',
    );
  });

  it('refuses an unsigned token (alg none)', async () => {
    const token = await authority.signAccessToken(appTokenClaims(authority), { alg: 'none' });
    expect(token.endsWith('.')).toBe(true);
    await expectRefused(token, 401, 'ERR_TOKEN_ALGORITHM');
  });

  it('refuses HS256 keyed with the published public key (algorithm confusion)', async () => {
    await expectRefused(
      await authority.signAccessToken(appTokenClaims(authority), { alg: 'HS256' }),
      401,
      'ERR_TOKEN_ALGORITHM',
    );
  });

  it('refuses RS384, which Entra does not use for access tokens', async () => {
    await expectRefused(
      await authority.signAccessToken(appTokenClaims(authority), { alg: 'RS384' }),
      401,
      'ERR_TOKEN_ALGORITHM',
    );
  });

  it('refuses a garbage bearer value', async () => {
    await expectRefused('not-a-jwt', 401, 'ERR_TOKEN_MALFORMED');
  });

  it('refuses with 403 a valid token without the Orders.Read app role', async () => {
    const body = await expectRefused(
      await tokenFor({ roles: ['Orders.Write'] }),
      403,
      'ERR_APP_ROLE_MISSING',
    );
    expect(body['message']).toContain('Orders.Read');
    await expectRefused(await tokenFor({ roles: undefined }), 403, 'ERR_APP_ROLE_MISSING');
  });

  it('refuses a signed token whose claims are malformed (roles not an array)', async () => {
    const body = await expectRefused(await tokenFor({ roles: 'Orders.Read' }), 401, 'ERR_TOKEN_CLAIMS');
    expect(body['message']).toContain('roles');
  });

  it('refuses a signed user (delegated) token', async () => {
    await expectRefused(await tokenFor({ idtyp: 'user', scp: 'Orders.Read' }), 401, 'ERR_TOKEN_CLAIMS');
  });

  it('logs refusals as JSON without ever writing a token', async () => {
    expect(issuedTokens.length).toBeGreaterThan(5);
    const entries = logLines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(entries).toContainEqual(
      expect.objectContaining({ event: 'auth_rejected', code: 'ERR_TOKEN_AUDIENCE', status: 401 }),
    );
    for (const token of issuedTokens) {
      const signature = token.split('.')[2]!;
      expect(logLines.join('\n')).not.toContain(signature);
    }
  });
});

describe('when the signing keys cannot be fetched', () => {
  it('answers 503, not 401: the caller is not at fault', async () => {
    // An authority whose metadata the API reads at start-up, and which is gone before its keys are fetched.
    const goneDir = mkdtempSync(join(tmpdir(), 'certflow-api-gone-'));
    const gone = await startEmulator({ stateDir: goneDir, port: 0 });
    const unreachable = await startApi(
      loadApiConfig({
        PORT: '0',
        ENTRA_INSTANCE: gone.url,
        ENTRA_TENANT_ID: gone.tenantId,
        API_AUDIENCES: API_APP_ID,
        ENTRA_CA_FILE: gone.caCertificatePath,
      }),
      // Nest's Logger is process-wide: keep writing to the same capture.
      { logger: new JsonLogger((line) => logLines.push(line)) },
    );
    try {
      const token = await gone.signAccessToken(appTokenClaims(gone));
      await gone.close();
      const response = await fetch(`${unreachable.url}/orders`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(response.status).toBe(503);
      expect(await response.json()).toMatchObject({ statusCode: 503, code: 'ERR_SIGNING_KEYS_UNAVAILABLE' });
      // Two apps in one process keep their own strategy (passport's registry is global).
      expect((await call('/orders', await tokenFor())).status).toBe(200);
    } finally {
      await unreachable.close();
      await gone.close();
      rmSync(goneDir, { recursive: true, force: true });
    }
    expect((await call('/orders', await tokenFor())).status).toBe(200);
  });
});
