/**
 * Hostile and malformed requests, one row each: every one gets the status and AADSTS code
 * Entra would give (or Graph's error code), never a 5xx, and the emulator keeps serving.
 * token-endpoint.spec.ts covers the basic refusals; these are the nastier variants.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHmac, createSign, randomUUID } from 'node:crypto';
import { createSelfSignedCertificate, parseCertificate, pemToDer } from '@certflow/certs';
import {
  API_URI,
  assertionForm,
  clientAssertion,
  https,
  postForm,
  startFixture,
  type Fixture,
  type HttpResult,
} from './emulator.test-helpers';

let f: Fixture;
let secondCert: ReturnType<typeof createSelfSignedCertificate>;
beforeAll(async () => {
  f = await startFixture();
  secondCert = createSelfSignedCertificate({ commonName: 'second' });
  await f.graph.addCertificate(f.provisioned.partner.objectId, pemToDer(secondCert.certificatePem));
});
afterAll(async () => {
  await f?.close();
});

const partnerId = () => f.provisioned.partner.appId;
const nowS = () => Math.floor(Date.now() / 1000);
const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const thumbs = () => parseCertificate(f.partnerCert.certificatePem).thumbprints;
const goodClaims = () => ({
  aud: f.emulator.tokenEndpoint,
  iss: partnerId(),
  sub: partnerId(),
  jti: randomUUID(),
  nbf: nowS(),
  exp: nowS() + 600,
});

/** RS256 over arbitrary header and payload, with the partner's real key. */
function rs256(header: Record<string, unknown>, payload: unknown): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const signature = createSign('sha256')
    .update(input)
    .sign(f.partnerCert.privateKeyPem)
    .toString('base64url');
  return `${input}.${signature}`;
}

const withAssertion = (assertion: string) => postForm(f.emulator, assertionForm(partnerId(), assertion));
const form = (
  fields: Record<string, string>,
  options: { url?: string; headers?: Record<string, string> } = {},
) => postForm(f.emulator, fields, options);
const raw = (
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
) => https(f.emulator, `${f.emulator.url}${path}`, options);
const secretForm = (extra: Record<string, string> = {}) => ({
  grant_type: 'client_credentials',
  client_id: partnerId(),
  client_secret: 'not-the-secret',
  scope: `${API_URI}/.default`,
  ...extra,
});

type Case = [name: string, send: () => Promise<HttpResult>, status: number, code: number | string];

const cases: Case[] = [
  // Algorithm attacks
  [
    'alg none, empty signature',
    async () =>
      withAssertion(
        `${b64({ alg: 'none', typ: 'JWT', 'x5t#S256': thumbs().sha256Base64Url })}.${b64(goodClaims())}.`,
      ),
    401,
    50027,
  ],
  [
    'alg none with a junk signature',
    async () =>
      withAssertion(
        `${b64({ alg: 'none', 'x5t#S256': thumbs().sha256Base64Url })}.${b64(goodClaims())}.AAAA`,
      ),
    401,
    50027,
  ],
  [
    'HS256 keyed with the certificate PEM (algorithm confusion)',
    async () => {
      const input = `${b64({ alg: 'HS256', typ: 'JWT', 'x5t#S256': thumbs().sha256Base64Url })}.${b64(goodClaims())}`;
      return withAssertion(
        `${input}.${createHmac('sha256', f.partnerCert.certificatePem).update(input).digest('base64url')}`,
      );
    },
    401,
    50027,
  ],
  [
    'HS256 keyed with the public key (SPKI PEM)',
    async () => {
      const input = `${b64({ alg: 'HS256', x5t: thumbs().sha1Base64Url })}.${b64(goodClaims())}`;
      const spki = parseCertificate(f.partnerCert.certificatePem).publicKey.export({
        type: 'spki',
        format: 'pem',
      });
      return withAssertion(`${input}.${createHmac('sha256', spki).update(input).digest('base64url')}`);
    },
    401,
    50027,
  ],
  [
    'alg ES256 on an RSA certificate',
    async () => withAssertion(rs256({ alg: 'ES256', 'x5t#S256': thumbs().sha256Base64Url }, goodClaims())),
    401,
    50027,
  ],
  [
    'alg in lower case (rs256)',
    async () => withAssertion(rs256({ alg: 'rs256', x5t: thumbs().sha1Base64Url }, goodClaims())),
    401,
    50027,
  ],
  [
    'alg missing',
    async () => withAssertion(rs256({ x5t: thumbs().sha1Base64Url }, goodClaims())),
    401,
    50027,
  ],
  [
    'RS256 signature presented as PS256',
    async () => withAssertion(rs256({ alg: 'PS256', x5t: thumbs().sha1Base64Url }, goodClaims())),
    401,
    50013,
  ],
  // Thumbprint games
  [
    'x5t#S256 in hex',
    async () => withAssertion(rs256({ alg: 'RS256', 'x5t#S256': thumbs().sha256Hex }, goodClaims())),
    401,
    700027,
  ],
  [
    'the SHA-1 thumbprint put in x5t#S256',
    async () => withAssertion(rs256({ alg: 'RS256', 'x5t#S256': thumbs().sha1Base64Url }, goodClaims())),
    401,
    700027,
  ],
  [
    'x5t with colons, as some tools print it',
    async () =>
      withAssertion(rs256({ alg: 'RS256', x5t: thumbs().sha1Hex.match(/../g)!.join(':') }, goodClaims())),
    401,
    700027,
  ],
  [
    'x5t and x5t#S256 naming two different registered certificates',
    async () =>
      withAssertion(
        rs256(
          {
            alg: 'RS256',
            x5t: thumbs().sha1Base64Url,
            'x5t#S256': parseCertificate(secondCert.certificatePem).thumbprints.sha256Base64Url,
          },
          goodClaims(),
        ),
      ),
    401,
    700027,
  ],
  [
    'x5t#S256 as a number',
    async () => withAssertion(rs256({ alg: 'RS256', 'x5t#S256': 12345 }, goodClaims())),
    401,
    50027,
  ],
  [
    'a valid x5t#S256 next to an x5t that is an object',
    async () =>
      withAssertion(
        rs256({ alg: 'RS256', x5t: { sha1: 'x' }, 'x5t#S256': thumbs().sha256Base64Url }, goodClaims()),
      ),
    401,
    50027,
  ],
  [
    'only a kid, no thumbprint',
    async () => withAssertion(rs256({ alg: 'RS256', kid: thumbs().sha1Base64Url }, goodClaims())),
    401,
    50027,
  ],
  [
    'a registered certificate in x5c but an unregistered thumbprint',
    async () =>
      withAssertion(
        rs256(
          {
            alg: 'RS256',
            x5t: 'AAAAAAAAAAAAAAAAAAAAAAAAAAA',
            x5c: [pemToDer(f.partnerCert.certificatePem).toString('base64')],
          },
          goodClaims(),
        ),
      ),
    401,
    700027,
  ],
  // Structure
  [
    'header is a JSON array',
    async () => withAssertion(`${b64([1, 2])}.${b64(goodClaims())}.c2ln`),
    401,
    50027,
  ],
  [
    'payload is not JSON',
    async () =>
      withAssertion(`${b64({ alg: 'RS256', x5t: thumbs().sha1Base64Url })}.${b64('not json')}.c2ln`),
    401,
    50027,
  ],
  [
    'four segments',
    async () => withAssertion(`${rs256({ alg: 'RS256', x5t: thumbs().sha1Base64Url }, goodClaims())}.extra`),
    401,
    50027,
  ],
  ['standard base64 characters (+/) in a segment', async () => withAssertion('ab+/.cd+/.ef+/'), 401, 50027],
  [
    'a 60 KB assertion of noise',
    async () => withAssertion(`${'A'.repeat(20_000)}.${'B'.repeat(20_000)}.${'C'.repeat(20_000)}`),
    401,
    50027,
  ],
  // Claims
  [
    'aud as an array of wrong values',
    async () =>
      withAssertion(
        rs256(
          { alg: 'RS256', x5t: thumbs().sha1Base64Url },
          { ...goodClaims(), aud: ['https://evil.example/token', 'x'] },
        ),
      ),
    401,
    700023,
  ],
  [
    'aud of the v1 endpoint sent to the v2.0 endpoint',
    async () =>
      withAssertion(
        rs256(
          { alg: 'RS256', x5t: thumbs().sha1Base64Url },
          { ...goodClaims(), aud: `${f.emulator.authority}/oauth2/token` },
        ),
      ),
    401,
    700023,
  ],
  [
    'aud of another tenant on this host',
    async () =>
      withAssertion(
        rs256(
          { alg: 'RS256', x5t: thumbs().sha1Base64Url },
          { ...goodClaims(), aud: f.emulator.tokenEndpoint.replace(f.emulator.tenantId, randomUUID()) },
        ),
      ),
    401,
    700023,
  ],
  [
    'sub missing',
    async () =>
      withAssertion(
        rs256({ alg: 'RS256', x5t: thumbs().sha1Base64Url }, { ...goodClaims(), sub: undefined }),
      ),
    401,
    50048,
  ],
  [
    'iss = sub = another client id',
    async () =>
      withAssertion(
        rs256(
          { alg: 'RS256', x5t: thumbs().sha1Base64Url },
          { ...goodClaims(), iss: f.provisioned.api.appId, sub: f.provisioned.api.appId },
        ),
      ),
    401,
    50048,
  ],
  [
    'exp as a string',
    async () =>
      withAssertion(
        rs256({ alg: 'RS256', x5t: thumbs().sha1Base64Url }, { ...goodClaims(), exp: String(nowS() + 600) }),
      ),
    401,
    700024,
  ],
  [
    'nbf an hour ahead',
    async () =>
      withAssertion(
        rs256(
          { alg: 'RS256', x5t: thumbs().sha1Base64Url },
          { ...goodClaims(), nbf: nowS() + 3600, exp: nowS() + 4200 },
        ),
      ),
    401,
    700024,
  ],
  [
    'exp a day ago',
    async () =>
      withAssertion(
        rs256(
          { alg: 'RS256', x5t: thumbs().sha1Base64Url },
          { ...goodClaims(), nbf: nowS() - 87_000, exp: nowS() - 86_400 },
        ),
      ),
    401,
    700024,
  ],
  [
    'an assertion for the partner sent with the API as client_id',
    async () =>
      form(
        assertionForm(
          f.provisioned.api.appId,
          await clientAssertion(f.emulator.tokenEndpoint, partnerId(), f.partnerCert),
        ),
      ),
    401,
    700027,
  ],
  // Parameters
  [
    'wrong client_assertion_type',
    async () =>
      form({
        ...assertionForm(partnerId(), 'a.b.c'),
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:saml2-bearer',
      }),
    400,
    9002313,
  ],
  [
    'client_assertion without client_assertion_type',
    async () =>
      form({
        grant_type: 'client_credentials',
        client_id: partnerId(),
        scope: `${API_URI}/.default`,
        client_assertion: 'a.b.c',
      }),
    400,
    900144,
  ],
  [
    'client_id with path traversal',
    async () => form({ ...secretForm(), client_id: '../../etc/passwd' }),
    400,
    700016,
  ],
  [
    'client_id with a NUL byte',
    async () => form({ ...secretForm(), client_id: `${partnerId()}\u0000` }),
    400,
    700016,
  ],
  [
    'client_id in upper case is the same client (wrong secret)',
    async () => form({ ...secretForm(), client_id: partnerId().toUpperCase() }),
    401,
    7000215,
  ],
  [
    'a 50 KB client_secret',
    async () => form(secretForm({ client_secret: 'x'.repeat(50_000) })),
    401,
    7000215,
  ],
  [
    'scope of only /.default',
    async () =>
      form(
        assertionForm(
          partnerId(),
          await clientAssertion(f.emulator.tokenEndpoint, partnerId(), f.partnerCert),
          '/.default',
        ),
      ),
    400,
    70011,
  ],
  [
    'a 10 KB scope',
    async () => form(secretForm({ scope: `api://${'a'.repeat(10_000)}/.default` })),
    401,
    7000215,
  ],
  [
    'grant_type with a trailing space',
    async () => form(secretForm({ grant_type: 'client_credentials ' })),
    400,
    70003,
  ],
  [
    'grant_type password',
    async () => form(secretForm({ grant_type: 'password', username: 'u', password: 'p' })),
    400,
    70003,
  ],
  [
    'a form body sent as text/plain',
    async () => form(secretForm(), { headers: { 'content-type': 'text/plain' } }),
    400,
    900144,
  ],
  [
    'a multipart body',
    async () => form(secretForm(), { headers: { 'content-type': 'multipart/form-data; boundary=x' } }),
    400,
    900144,
  ],
  [
    'Authorization: Bearer instead of client credentials',
    async () =>
      form(
        { grant_type: 'client_credentials', client_id: partnerId(), scope: `${API_URI}/.default` },
        { headers: { authorization: 'Bearer abc' } },
      ),
    401,
    7000218,
  ],
  [
    'Authorization: Basic that is not base64 of id:secret',
    async () =>
      form(
        { grant_type: 'client_credentials', scope: `${API_URI}/.default` },
        { headers: { authorization: 'Basic !!!!' } },
      ),
    400,
    9002313,
  ],
  // Paths and methods
  [
    'PUT on the token endpoint',
    async () => raw(`/${f.emulator.tenantId}/oauth2/v2.0/token`, { method: 'PUT' }),
    400,
    900561,
  ],
  [
    'DELETE on the v1 token endpoint',
    async () => raw(`/${f.emulator.tenantId}/oauth2/token`, { method: 'DELETE' }),
    400,
    900561,
  ],
  [
    'tenant with an encoded slash',
    async () => form(secretForm(), { url: `${f.emulator.url}/a%2Fb/oauth2/v2.0/token` }),
    400,
    90002,
  ],
  [
    'tenant with a bad percent-encoding',
    async () => form(secretForm(), { url: `${f.emulator.url}/%zz/oauth2/v2.0/token` }),
    400,
    90002,
  ],
  [
    'the organizations endpoint',
    async () => form(secretForm(), { url: `${f.emulator.url}/organizations/oauth2/v2.0/token` }),
    400,
    9001023,
  ],
  ['path traversal', async () => raw('/../../etc/passwd'), 404, 'not_found'],
  ['an 8 KB path', async () => raw(`/${'a'.repeat(8000)}`), 404, 'not_found'],
  [
    'POST on JWKS',
    async () => raw(`/${f.emulator.tenantId}/discovery/v2.0/keys`, { method: 'POST' }),
    405,
    'invalid_request',
  ],
  [
    'GET on the admin rotation route',
    async () =>
      raw('/admin/signingKeys/rotate', {
        headers: { authorization: `Bearer ${await f.graph.accessToken()}` },
      }),
    405,
    'Request_BadRequest',
  ],
  [
    'an unknown admin route',
    async () =>
      raw('/admin/nothing/here', { headers: { authorization: `Bearer ${await f.graph.accessToken()}` } }),
    400,
    'BadRequest',
  ],
  [
    'Graph with a truncated JSON body',
    async () =>
      raw('/graph/v1.0/applications', {
        method: 'POST',
        headers: {
          authorization: `Bearer ${await f.graph.accessToken()}`,
          'content-type': 'application/json',
        },
        body: '{"displayName":',
      }),
    400,
    'BadRequest',
  ],
  [
    'Graph with a token signed by a stranger',
    async () =>
      raw('/graph/v1.0/applications', {
        headers: {
          authorization: `Bearer ${rs256({ alg: 'RS256', kid: 'x' }, { aud: 'https://graph.microsoft.com' })}`,
        },
      }),
    401,
    'InvalidAuthenticationToken',
  ],
];

describe(`${cases.length} hostile or malformed requests`, () => {
  it('there are at least 40 distinct ones', () => {
    expect(new Set(cases.map(([name]) => name)).size).toBe(cases.length);
    expect(cases.length).toBeGreaterThanOrEqual(40);
  });

  it.each(cases.map(([name, send, status, code]) => [name, status, code, send] as const))(
    '%s → %i %s',
    async (_name, status, code, send) => {
      const res = await send();
      expect(res.status, res.text).toBe(status);
      expect(res.status).toBeLessThan(500);
      const body = res.json();
      if (typeof code === 'number') expect(body.error_codes, res.text).toEqual([code]);
      else
        expect(
          typeof body.error === 'object' && body.error !== null
            ? (body.error as { code: string }).code
            : body.error,
        ).toBe(code);
    },
  );

  it.each([
    [
      'alg header',
      () =>
        withAssertion(rs256({ alg: 'A'.repeat(9000), 'x5t#S256': thumbs().sha256Base64Url }, goodClaims())),
    ],
    ['grant_type', () => form({ ...secretForm(), grant_type: 'A'.repeat(9000) })],
    [
      'scope',
      async () =>
        form({
          ...assertionForm(
            partnerId(),
            await clientAssertion(f.emulator.tokenEndpoint, partnerId(), f.partnerCert),
          ),
          scope: 'A'.repeat(9000),
        }),
    ],
    ['client_id', () => form(secretForm({ client_id: 'A'.repeat(9000) }))],
  ])('a long %s is repeated in the error cut to 64 characters and "…"', async (_name, send) => {
    const res = await send();
    expect(res.status, res.text).toBeLessThan(500);
    const description = String(res.json().error_description);
    expect(description).toContain(`${'A'.repeat(64)}…`);
    expect(description).not.toContain('A'.repeat(65));
  });

  it('the emulator still serves afterwards', async () => {
    const res = await withAssertion(
      await clientAssertion(f.emulator.tokenEndpoint, partnerId(), f.partnerCert),
    );
    expect(res.status, res.text).toBe(200);
    expect((await https(f.emulator, f.emulator.jwksUri)).status).toBe(200);
  });
});
