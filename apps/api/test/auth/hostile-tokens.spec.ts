/**
 * Hostile tokens, each its own test, over real HTTP against APIs that fetch the emulator's
 * JWKS: every one is refused with 401 (not authenticated) or 403 (authenticated, not allowed)
 * and a stable code; none reaches the orders. Tokens are signed by the emulator's real key
 * unless the case is about the key; `signAccessToken` also signs `none` and HS256.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '@certflow/entra-emulator';
import { startApi, type RunningApi } from '../../src/api-app';
import { loadApiConfig } from '../../src/config/api-config';
import {
  API_APP_ID,
  API_APP_ID_URI,
  PARTNER_APP_ID,
  appTokenClaims,
  kidOf,
  signWithUntrustedKey,
} from '../../src/testing/access-tokens.test-helpers';
import { callApi } from '../../src/testing/http.test-helpers';
import type { AuthFailureCode } from '@certflow/nest-entra-auth';

let stateDir: string;
let emulator: RunningEmulator;
/** Defaults: v1 and v2 tokens, any client. */
let lenient: RunningApi;
/** v2 only, certificate clients only, one allowed partner. */
let strict: RunningApi;

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'certflow-api-hostile-'));
  emulator = await startEmulator({ stateDir, port: 0 });
  const env = {
    PORT: '0',
    ENTRA_INSTANCE: emulator.url,
    ENTRA_TENANT_ID: emulator.tenantId,
    API_AUDIENCES: `${API_APP_ID},${API_APP_ID_URI}`,
    ENTRA_CA_FILE: emulator.caCertificatePath,
  };
  lenient = await startApi(loadApiConfig(env), { logger: false });
  strict = await startApi(
    loadApiConfig({
      ...env,
      API_ACCEPTED_TOKEN_VERSIONS: '2.0',
      API_REQUIRE_CERTIFICATE_CLIENTS: 'true',
      API_ALLOWED_CLIENT_IDS: PARTNER_APP_ID,
    }),
    { logger: false },
  );
});

afterAll(async () => {
  await lenient?.close();
  await strict?.close();
  await emulator?.close();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

const now = () => Math.floor(Date.now() / 1000);
const claims = (overrides: Record<string, unknown> = {}) => appTokenClaims(emulator, overrides);
const sign = (payload: Record<string, unknown>, header?: Record<string, unknown>) =>
  emulator.signAccessToken(payload, header);
const b64 = (value: string) => Buffer.from(value, 'utf8').toString('base64url');
const without = (payload: Record<string, unknown>, ...names: string[]) =>
  Object.fromEntries(Object.entries(payload).filter(([k]) => !names.includes(k)));

/** A real, valid token split into its segments. */
async function validSegments(): Promise<[string, string, string]> {
  return (await sign(claims())).split('.') as [string, string, string];
}

/** v1 claims as Entra issues them (sts.windows.net issuer, appid/appidacr). */
function v1Claims(overrides: Record<string, unknown> = {}) {
  return without(
    claims({
      ver: '1.0',
      iss: `https://sts.windows.net/${emulator.tenantId}/`,
      aud: API_APP_ID_URI,
      appid: PARTNER_APP_ID,
      appidacr: '2',
      ...overrides,
    }),
    'azp',
    'azpacr',
  );
}

interface HostileCase {
  name: string;
  token: () => Promise<string>;
  status: 401 | 403;
  code: AuthFailureCode;
  api?: 'lenient' | 'strict';
}

const cases: HostileCase[] = [
  // the algorithm
  {
    name: 'alg none, unsigned',
    token: () => sign(claims(), { alg: 'none' }),
    status: 401,
    code: 'ERR_TOKEN_ALGORITHM',
  },
  {
    name: 'alg "None" (case variant of none)',
    token: () =>
      sign(claims(), { alg: 'none' }).then((t) =>
        t.replace(/^[^.]+/, b64(JSON.stringify({ typ: 'JWT', alg: 'None', kid: 'x' }))),
      ),
    status: 401,
    code: 'ERR_TOKEN_ALGORITHM',
  },
  {
    name: 'alg none with a signature appended from a real token',
    token: async () => {
      const [, , sig] = await validSegments();
      const none = await sign(claims(), { alg: 'none' });
      return `${none}${sig}`;
    },
    status: 401,
    code: 'ERR_TOKEN_ALGORITHM',
  },
  {
    name: 'HS256 keyed with the published public key (algorithm confusion)',
    token: () => sign(claims(), { alg: 'HS256' }),
    status: 401,
    code: 'ERR_TOKEN_ALGORITHM',
  },
  {
    name: 'HS512 keyed with the published public key',
    token: () => sign(claims(), { alg: 'HS512' }),
    status: 401,
    code: 'ERR_TOKEN_ALGORITHM',
  },
  {
    name: 'RS384 with the real key (Entra signs RS256 only)',
    token: () => sign(claims(), { alg: 'RS384' }),
    status: 401,
    code: 'ERR_TOKEN_ALGORITHM',
  },
  {
    name: 'PS256 with the real key',
    token: () => sign(claims(), { alg: 'PS256' }),
    status: 401,
    code: 'ERR_TOKEN_ALGORITHM',
  },
  {
    name: 'alg missing from the header',
    token: async () => {
      const [, p, s] = await validSegments();
      return `${b64(JSON.stringify({ typ: 'JWT', kid: 'x' }))}.${p}.${s}`;
    },
    status: 401,
    code: 'ERR_TOKEN_ALGORITHM',
  },
  // the key and the signature
  {
    name: 'signed by a key the JWKS does not publish (unknown kid)',
    token: () => signWithUntrustedKey(claims(), randomUUID()),
    status: 401,
    code: 'ERR_TOKEN_SIGNING_KEY_UNKNOWN',
  },
  {
    name: 'signed by another key under the kid of the trusted one',
    token: async () => signWithUntrustedKey(claims(), kidOf(await sign(claims()))),
    status: 401,
    code: 'ERR_TOKEN_SIGNATURE',
  },
  {
    name: 'claims changed after signing (role added)',
    token: async () => {
      const [h, , s] = await validSegments();
      return `${h}.${b64(JSON.stringify(claims({ roles: ['Orders.Read', 'Orders.Write'] })))}.${s}`;
    },
    status: 401,
    code: 'ERR_TOKEN_SIGNATURE',
  },
  {
    name: 'signature of another valid token',
    token: async () => {
      const [h, p] = await validSegments();
      const [, , s] = await validSegments();
      return `${h}.${p}.${s}`;
    },
    status: 401,
    code: 'ERR_TOKEN_SIGNATURE',
  },
  {
    name: 'signature removed (RS256 with an empty signature)',
    token: async () => {
      const [h, p] = await validSegments();
      return `${h}.${p}.`;
    },
    status: 401,
    code: 'ERR_TOKEN_MALFORMED',
  },
  {
    name: 'signature truncated',
    token: async () => {
      const [h, p, s] = await validSegments();
      return `${h}.${p}.${s.slice(0, 40)}`;
    },
    status: 401,
    code: 'ERR_TOKEN_SIGNATURE',
  },
  // the header
  {
    name: 'no kid',
    token: async () => {
      const [, p, s] = await validSegments();
      return `${b64(JSON.stringify({ typ: 'JWT', alg: 'RS256' }))}.${p}.${s}`;
    },
    status: 401,
    code: 'ERR_TOKEN_HEADER',
  },
  { name: 'empty kid', token: () => sign(claims(), { kid: '' }), status: 401, code: 'ERR_TOKEN_HEADER' },
  {
    name: 'kid that is not a string',
    token: () => sign(claims(), { kid: 1 }),
    status: 401,
    code: 'ERR_TOKEN_HEADER',
  },
  {
    name: 'jku header pointing at an attacker JWKS',
    token: () => sign(claims(), { jku: 'https://attacker.example/keys' }),
    status: 401,
    code: 'ERR_TOKEN_HEADER',
  },
  {
    name: 'x5u header pointing at an attacker certificate',
    token: () => sign(claims(), { x5u: 'https://attacker.example/cert.pem' }),
    status: 401,
    code: 'ERR_TOKEN_HEADER',
  },
  {
    name: 'jwk header embedding the key to verify with',
    token: () => sign(claims(), { jwk: { kty: 'RSA', n: 'AQAB', e: 'AQAB' } }),
    status: 401,
    code: 'ERR_TOKEN_HEADER',
  },
  {
    name: 'x5c header embedding a certificate chain',
    token: () => sign(claims(), { x5c: ['MIIB'] }),
    status: 401,
    code: 'ERR_TOKEN_HEADER',
  },
  {
    name: 'crit header naming an extension',
    token: () => sign(claims(), { crit: ['exp'], exp: 1 }),
    status: 401,
    code: 'ERR_TOKEN_HEADER',
  },
  {
    name: 'typ at+jwt instead of JWT (typ mismatch)',
    token: () => sign(claims(), { typ: 'at+jwt' }),
    status: 401,
    code: 'ERR_TOKEN_HEADER',
  },
  {
    name: 'typ missing',
    token: async () => {
      const [, p, s] = await validSegments();
      return `${b64(JSON.stringify({ alg: 'RS256', kid: kidOf(await sign(claims())) }))}.${p}.${s}`;
    },
    status: 401,
    code: 'ERR_TOKEN_HEADER',
  },
  {
    name: 'x5t that disagrees with kid',
    token: () => sign(claims(), { x5t: 'another-thumbprint' }),
    status: 401,
    code: 'ERR_TOKEN_HEADER',
  },
  {
    name: 'duplicated header parameter (alg none, then RS256)',
    token: async () => {
      const [, p, s] = await validSegments();
      return `${b64(`{"typ":"JWT","alg":"none","alg":"RS256","kid":"k"}`)}.${p}.${s}`;
    },
    status: 401,
    code: 'ERR_TOKEN_MALFORMED',
  },
  // lifetime
  {
    name: 'expired an hour ago',
    token: () => sign(claims({ iat: now() - 7200, nbf: now() - 7200, exp: now() - 3600 })),
    status: 401,
    code: 'ERR_TOKEN_EXPIRED',
  },
  {
    name: 'expired beyond the clock tolerance',
    token: () => sign(claims({ iat: now() - 3700, nbf: now() - 3700, exp: now() - 120 })),
    status: 401,
    code: 'ERR_TOKEN_EXPIRED',
  },
  {
    name: 'nbf ten minutes in the future',
    token: () => sign(claims({ nbf: now() + 600, exp: now() + 4200 })),
    status: 401,
    code: 'ERR_TOKEN_NOT_YET_VALID',
  },
  {
    name: 'no exp (a token that would never expire)',
    token: () => sign(without(claims(), 'exp')),
    status: 401,
    code: 'ERR_TOKEN_CLAIMS',
  },
  {
    name: 'exp as a string',
    token: () => sign(claims({ exp: String(now() + 3600) })),
    status: 401,
    code: 'ERR_TOKEN_CLAIMS',
  },
  {
    name: 'nbf as a string',
    token: () => sign(claims({ nbf: String(now()) })),
    status: 401,
    code: 'ERR_TOKEN_CLAIMS',
  },
  // issuer, tenant, audience, version
  {
    name: 'issuer of another tenant',
    token: () => sign(claims({ iss: `${emulator.url}/${randomUUID()}/v2.0` })),
    status: 401,
    code: 'ERR_TOKEN_ISSUER',
  },
  {
    name: 'issuer on another host, same tenant path',
    token: () => sign(claims({ iss: `https://attacker.example/${emulator.tenantId}/v2.0` })),
    status: 401,
    code: 'ERR_TOKEN_ISSUER',
  },
  {
    name: 'issuer with a trailing slash added',
    token: () => sign(claims({ iss: `${emulator.issuer}/` })),
    status: 401,
    code: 'ERR_TOKEN_ISSUER',
  },
  {
    name: 'v1 issuer on a v2 token (issuer of the wrong version)',
    token: () => sign(claims({ iss: `https://sts.windows.net/${emulator.tenantId}/` })),
    status: 401,
    code: 'ERR_TOKEN_ISSUER',
  },
  {
    name: 'tid of another tenant',
    token: () => sign(claims({ tid: randomUUID() })),
    status: 401,
    code: 'ERR_TOKEN_TENANT',
  },
  { name: 'no tid', token: () => sign(without(claims(), 'tid')), status: 401, code: 'ERR_TOKEN_TENANT' },
  {
    name: 'audience of another API',
    token: () => sign(claims({ aud: randomUUID() })),
    status: 401,
    code: 'ERR_TOKEN_AUDIENCE',
  },
  {
    name: 'audience as an array that includes this API',
    token: () => sign(claims({ aud: [API_APP_ID, randomUUID()] })),
    status: 401,
    code: 'ERR_TOKEN_CLAIMS',
  },
  {
    name: 'no audience',
    token: () => sign(without(claims(), 'aud')),
    status: 401,
    code: 'ERR_TOKEN_AUDIENCE',
  },
  {
    name: 'v1 token where only v2 is accepted',
    token: () => sign(v1Claims()),
    status: 401,
    code: 'ERR_TOKEN_VERSION',
    api: 'strict',
  },
  { name: 'ver 3.0', token: () => sign(claims({ ver: '3.0' })), status: 401, code: 'ERR_TOKEN_VERSION' },
  // what the token says about the caller
  {
    name: 'roles as a string, not an array',
    token: () => sign(claims({ roles: 'Orders.Read' })),
    status: 401,
    code: 'ERR_TOKEN_CLAIMS',
  },
  {
    name: 'delegated user token (scp)',
    token: () => sign(claims({ scp: 'Orders.Read' })),
    status: 401,
    code: 'ERR_TOKEN_CLAIMS',
  },
  { name: 'idtyp user', token: () => sign(claims({ idtyp: 'user' })), status: 401, code: 'ERR_TOKEN_CLAIMS' },
  {
    name: 'azp that is not a GUID',
    token: () => sign(claims({ azp: 'contoso-partner' })),
    status: 401,
    code: 'ERR_TOKEN_CLAIMS',
  },
  {
    name: 'azpacr outside "0", "1", "2"',
    token: () => sign(claims({ azpacr: '3' })),
    status: 401,
    code: 'ERR_TOKEN_CLAIMS',
  },
  {
    name: 'no Orders.Read role',
    token: () => sign(claims({ roles: ['Orders.Write'] })),
    status: 403,
    code: 'ERR_APP_ROLE_MISSING',
  },
  {
    name: 'no roles claim at all',
    token: () => sign(without(claims(), 'roles')),
    status: 403,
    code: 'ERR_APP_ROLE_MISSING',
  },
  {
    name: 'role in another case (orders.read)',
    token: () => sign(claims({ roles: ['orders.read'] })),
    status: 403,
    code: 'ERR_APP_ROLE_MISSING',
  },
  {
    name: 'client-secret token under certificate-only',
    token: () => sign(claims({ azpacr: '1' })),
    status: 403,
    code: 'ERR_CLIENT_CERTIFICATE_REQUIRED',
    api: 'strict',
  },
  {
    name: 'public-client token under certificate-only',
    token: () => sign(claims({ azpacr: '0' })),
    status: 403,
    code: 'ERR_CLIENT_CERTIFICATE_REQUIRED',
    api: 'strict',
  },
  {
    name: 'client not on the allow-list',
    token: () => sign(claims({ azp: randomUUID() })),
    status: 403,
    code: 'ERR_CLIENT_NOT_ALLOWED',
    api: 'strict',
  },
  // form and size
  {
    name: 'oversized token (a 9 KB claim)',
    token: () => sign(claims({ padding: 'x'.repeat(9 * 1024) })),
    status: 401,
    code: 'ERR_TOKEN_TOO_LARGE',
  },
  { name: 'not a JWT at all', token: async () => 'not-a-jwt', status: 401, code: 'ERR_TOKEN_MALFORMED' },
  {
    name: 'two segments',
    token: async () => {
      const [h, p] = await validSegments();
      return `${h}.${p}`;
    },
    status: 401,
    code: 'ERR_TOKEN_MALFORMED',
  },
  {
    name: 'five segments (JWE form)',
    token: async () => `${(await validSegments()).join('.')}.a.b`,
    status: 401,
    code: 'ERR_TOKEN_MALFORMED',
  },
  {
    name: 'base64 with padding and +/ instead of base64url',
    token: async () => {
      const [h, p, s] = await validSegments();
      return `${Buffer.from(h, 'base64url').toString('base64')}.${p}.${s}`.replace(/=*\./, '==.');
    },
    status: 401,
    code: 'ERR_TOKEN_MALFORMED',
  },
  {
    name: 'payload segment that is not valid base64url (bad trailing bits)',
    token: async () => {
      const [h, p, s] = await validSegments();
      return `${h}.${p}B.${s}`;
    },
    status: 401,
    code: 'ERR_TOKEN_MALFORMED',
  },
  {
    name: 'header that is not JSON',
    token: async () => {
      const [, p, s] = await validSegments();
      return `${b64('{"alg":"RS256",')}.${p}.${s}`;
    },
    status: 401,
    code: 'ERR_TOKEN_MALFORMED',
  },
  {
    name: 'claims that are a JSON array',
    token: async () => {
      const [h, , s] = await validSegments();
      return `${h}.${b64('["aud"]')}.${s}`;
    },
    status: 401,
    code: 'ERR_TOKEN_MALFORMED',
  },
  {
    name: 'claims that are not UTF-8',
    token: async () => {
      const [h, , s] = await validSegments();
      return `${h}.${Buffer.from([0x7b, 0xff, 0xfe, 0x7d]).toString('base64url')}.${s}`;
    },
    status: 401,
    code: 'ERR_TOKEN_MALFORMED',
  },
  {
    name: 'duplicated claim (aud twice: another API, then this one)',
    token: async () => {
      const [h, , s] = await validSegments();
      const text = JSON.stringify(claims({ aud: randomUUID() })).replace(/^\{/, `{"aud":"${API_APP_ID}",`);
      return `${h}.${b64(text)}.${s}`;
    },
    status: 401,
    code: 'ERR_TOKEN_MALFORMED',
  },
  {
    name: 'duplicated claim hidden by an escape ("\\u0072oles")',
    token: async () => {
      const [h, , s] = await validSegments();
      return `${h}.${b64(JSON.stringify(claims()).replace(/^\{/, '{"\\u0072oles":["Orders.Write"],'))}.${s}`;
    },
    status: 401,
    code: 'ERR_TOKEN_MALFORMED',
  },
];

describe('hostile bearer tokens', () => {
  it('has at least 40 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
  });

  it.each(cases.map((c) => [c.name, c] as const))('refuses %s', async (_name, hostile) => {
    const api = hostile.api === 'strict' ? strict : lenient;
    const { status, body, challenge } = await callApi(api.url, '/orders', await hostile.token());
    expect({ status, code: body['code'] }).toEqual({ status: hostile.status, code: hostile.code });
    expect(body).toMatchObject({ statusCode: hostile.status, message: expect.any(String) });
    expect(body).not.toHaveProperty('orders');
    expect(challenge).toMatch(
      hostile.status === 401 ? /^Bearer error="invalid_token"/ : /^Bearer error="insufficient_scope"/,
    );
  });

  it('answers 431 to an Authorization header beyond the server limit, without reaching the API', async () => {
    const token = `${'a'.repeat(20 * 1024)}.b.c`;
    const { status } = await callApi(lenient.url, '/orders', token);
    expect(status).toBe(431);
  });

  it('refuses a token sent without the Bearer scheme as missing', async () => {
    const token = await sign(claims());
    for (const authorization of [token, `Basic ${token}`, `Bearer`]) {
      const response = await fetch(`${lenient.url}/orders`, { headers: { authorization } });
      expect(response.status).toBe(401);
      expect(((await response.json()) as { code: string }).code).toBe('ERR_TOKEN_MISSING');
    }
  });

  it('accepts the genuine tokens the hostile ones are made from (the cases fail for their flaw alone)', async () => {
    expect((await callApi(lenient.url, '/orders', await sign(claims()))).status).toBe(200);
    expect((await callApi(lenient.url, '/orders', await sign(v1Claims()))).status).toBe(200);
    expect((await callApi(strict.url, '/orders', await sign(claims()))).status).toBe(200);
  });
});
