/**
 * Hostile tokens and headers against the real apps/api/apim/policy.xml (validate-jwt) behind the
 * gateway: each case is a request and the status the gateway must answer; none reaches the API.
 */
import { generateKeyPair, SignJWT } from 'jose';
import { createHmac, createPublicKey, createSign, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunningGateway, startGateway } from './gateway';
import {
  accessTokenClaims,
  EchoUpstream,
  httpsCall,
  newSigningKey,
  realPolicyOptions,
  startEchoUpstream,
  startTestIssuer,
  tempStateDir,
  TestIssuer,
} from './test-servers.test-helpers';

const API_APP_ID = randomUUID();
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

describe('hostile tokens and headers (real policy.xml)', () => {
  const state = tempStateDir();
  let issuer: TestIssuer;
  let upstream: EchoUpstream;
  let gateway: RunningGateway;
  const cases: Array<{ name: string; headers: () => Promise<Record<string, string>>; path?: string }> = [];

  beforeAll(async () => {
    issuer = await startTestIssuer(state.dir);
    upstream = await startEchoUpstream();
    gateway = await startGateway({
      ...realPolicyOptions(state.dir, issuer, API_APP_ID, upstream.url),
      accessLog: false,
    });
  });

  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
    await issuer?.close();
    state.remove();
  });

  const claims = (overrides: Record<string, unknown> = {}) =>
    accessTokenClaims(issuer, API_APP_ID, overrides);
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const signed = async (
    overrides: Record<string, unknown> = {},
    opts: Parameters<TestIssuer['sign']>[1] = {},
  ) => bearer(await issuer.sign(claims(overrides), opts));
  const now = () => Math.floor(Date.now() / 1000);
  const add = (name: string, headers: () => Promise<Record<string, string>>, path?: string) =>
    cases.push({ name, headers, ...(path ? { path } : {}) });

  add('no Authorization header', async () => ({}));
  add('Bearer without a token', async () => ({ authorization: 'Bearer' }));
  add('Bearer with only spaces', async () => ({ authorization: 'Bearer    ' }));
  add('Basic scheme', async () => ({ authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }));
  add('token without a scheme', async () => ({ authorization: await issuer.sign(claims()) }));
  add('scheme and token with trailing garbage', async () => ({
    authorization: `Bearer ${await issuer.sign(claims())} extra`,
  }));
  add('two-part token', async () => bearer(`${b64({ alg: 'RS256' })}.${b64(claims())}`));
  add('four-part token', async () => bearer(`${await issuer.sign(claims())}.abc`));
  add('not base64url at all', async () => bearer('!!!.###.$$$'));
  add('header is not JSON', async () =>
    bearer(`${Buffer.from('not json').toString('base64url')}.${b64(claims())}.c2ln`),
  );
  add('alg none, unsigned', async () => bearer(`${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`));
  add('alg "None" (case games)', async () => bearer(`${b64({ alg: 'None', typ: 'JWT' })}.${b64(claims())}.`));
  add('HS256 keyed with the issuer public key', async () => {
    const publicPem = createPublicKey(issuer.keys[0]!.privateKeyPem)
      .export({ type: 'spki', format: 'pem' })
      .toString();
    const input = `${b64({ alg: 'HS256', typ: 'JWT', kid: issuer.keys[0]!.kid })}.${b64(claims())}`;
    return bearer(`${input}.${createHmac('sha256', publicPem).update(input).digest('base64url')}`);
  });
  add('ES256 token (algorithm APIM does not list)', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    return bearer(
      await new SignJWT(claims())
        .setProtectedHeader({ alg: 'ES256', kid: issuer.keys[0]!.kid })
        .sign(privateKey),
    );
  });
  add('signature stripped', async () => {
    const [h, p] = (await issuer.sign(claims())).split('.');
    return bearer(`${h}.${p}.`);
  });
  add('payload tampered after signing (aud kept, roles raised)', async () => {
    const [h, , s] = (await issuer.sign(claims({ roles: [] }))).split('.');
    return bearer(`${h}.${b64(claims({ roles: ['Orders.Read', 'Admin'] }))}.${s}`);
  });
  add('RS256 signature relabelled PS256', async () => {
    const [, p, s] = (await issuer.sign(claims())).split('.');
    return bearer(`${b64({ alg: 'PS256', typ: 'JWT', kid: issuer.keys[0]!.kid })}.${p}.${s}`);
  });
  add('signed by an attacker key using the issuer kid', async () =>
    signed({}, { key: { ...newSigningKey(), kid: issuer.keys[0]!.kid } }),
  );
  add('signed by an attacker key with an unknown kid', async () => signed({}, { key: newSigningKey() }));
  add('attacker key embedded as jwk in the header', async () => {
    const attacker = newSigningKey();
    return signed({}, { key: attacker, header: { jwk: attacker.publicJwk } });
  });
  add('attacker jku and x5u in the header', async () =>
    signed(
      {},
      {
        key: newSigningKey(),
        header: { jku: 'https://attacker.example/keys', x5u: 'https://attacker.example/cert' },
      },
    ),
  );
  add('kid with path traversal', async () =>
    signed({}, { key: { ...newSigningKey(), kid: '../../../../etc/passwd' } }),
  );
  add('unknown critical header extension (signed by the real key)', async () => {
    const input = `${b64({ alg: 'RS256', typ: 'JWT', kid: issuer.keys[0]!.kid, crit: ['exp-x'], 'exp-x': 1 })}.${b64(claims())}`;
    return bearer(
      `${input}.${createSign('RSA-SHA256').update(input).sign(issuer.keys[0]!.privateKeyPem).toString('base64url')}`,
    );
  });
  add('expired', async () => signed({ iat: now() - 7200, nbf: now() - 7200, exp: now() - 3600 }));
  add('not yet valid (nbf in an hour)', async () => signed({ nbf: now() + 3600 }));
  add('no exp', async () => signed({ exp: undefined }));
  add('exp as a string', async () => signed({ exp: String(now() + 3600) }));
  add('aud of another API', async () => signed({ aud: randomUUID() }));
  add('aud array without this API', async () => signed({ aud: ['api://other', randomUUID()] }));
  add('issuer of another tenant', async () => signed({ iss: `${issuer.url}/${randomUUID()}/v2.0` }));
  add('no iss', async () => signed({ iss: undefined }));
  add('issuer with a trailing slash', async () => signed({ iss: `${issuer.issuer}/` }));
  add('token in the query string instead of the header', async () => ({}), `/orders?access_token=${'x'}`);
  add('valid token in a custom header only', async () => ({
    'x-authorization': `Bearer ${await issuer.sign(claims())}`,
  }));

  it(`rejects every hostile case with 401 in APIM form, without calling the API`, async () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
    const before = upstream.received.length;
    const failures: string[] = [];
    for (const c of cases) {
      const res = await httpsCall(`${gateway.url}${c.path ?? '/orders'}`, {
        caPem: issuer.caPem,
        headers: await c.headers(),
      });
      const body = res.json() as { statusCode?: number; message?: string };
      if (res.status !== 401 || body.statusCode !== 401 || typeof body.message !== 'string')
        failures.push(`${c.name}: ${res.status} ${res.text}`);
    }
    expect(failures).toEqual([]);
    expect(upstream.received.length).toBe(before);
    // and the control: a well-formed token passes
    expect(
      (await httpsCall(`${gateway.url}/orders`, { caPem: issuer.caPem, headers: await signed() })).status,
    ).toBe(200);
  });

  it('replaces spoofed forwarding and certificate headers (hostile headers)', async () => {
    const res = await httpsCall(`${gateway.url}/orders`, {
      caPem: issuer.caPem,
      headers: {
        ...(await signed()),
        'x-forwarded-for': '1.2.3.4',
        'x-forwarded-proto': 'http',
        'x-forwarded-port': '1',
        'x-forwarded-host': 'evil.example',
        forwarded: 'for=1.2.3.4',
        'x-original-host': 'evil.example',
        'x-original-url': '/admin',
        'x-appgw-trace-id': 'spoofed',
        'x-client-cert': 'forged',
        'x-client-cert-verification': 'SUCCESS',
        'x-client-cert-fingerprint': 'aa',
      },
    });
    const h = (res.json() as { headers: Record<string, string> }).headers;
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('https');
    expect(h['x-forwarded-port']).toBe(gateway.url.split(':')[2]);
    expect(h['x-forwarded-host']).toBeUndefined();
    expect(h.forwarded).toBeUndefined();
    expect(h['x-original-host']).toBe(gateway.url.slice('https://'.length));
    expect(h['x-original-url']).toBe('/orders');
    expect(h['x-appgw-trace-id']).not.toBe('spoofed');
    expect(h['x-client-cert']).toBeUndefined();
    expect(h['x-client-cert-verification']).toBeUndefined();
    expect(h['x-client-cert-fingerprint']).toBeUndefined();
  });
});
