/**
 * A second NestJS application, built here from nothing but Nest and this library: one public
 * route and one route that needs an app role. Its authority is a real HTTPS server started by
 * the test (certificate from a CA made now) that publishes the two OpenID metadata documents and
 * a JWKS of a key generated now. The v1 document names an issuer no code could guess, so
 * accepting v1 tokens proves the issuer is read from the metadata. Tokens are signed here.
 */
import 'reflect-metadata';
import { createServer, type Server } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { randomUUID, createHmac, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Controller, Get, Injectable, Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { exportJWK, SignJWT } from 'jose';
import type { AppPrincipal } from '@certflow/claims';
import { createCertificateAuthority, issueCertificate } from '@certflow/certs';
import {
  CurrentPrincipal,
  EntraAuthModule,
  EntraAuthority,
  Public,
  RequireAppRoles,
  STARTUP_DISCOVERY_WAIT_MS,
  type EntraAuthOptions,
} from './index';

const TENANT = randomUUID();
const AUDIENCE = 'api://second-app';
const CLIENT = randomUUID();
const V1_ISSUER = `https://issuer-v1.invalid/${TENANT}/`;

@Controller()
class ItemsController {
  @Public()
  @Get('public')
  open() {
    return { open: true };
  }

  @RequireAppRoles('Items.Read')
  @Get('items')
  items(@CurrentPrincipal() caller: AppPrincipal) {
    return { items: [1, 2], caller: caller.clientAppId, version: caller.tokenVersion };
  }
}

let authority: Server;
let base: string;
let caPem: string;
let signingKey: KeyObject;
let publicKey: KeyObject;
let kid: string;
const apps: NestFastifyApplication[] = [];

beforeAll(async () => {
  const ca = createCertificateAuthority({ commonName: 'second-app test CA' });
  const tls = issueCertificate(ca, { commonName: 'localhost', dnsNames: ['localhost'], days: 1 });
  caPem = ca.certificatePem;
  signingKey = newRsaKey();
  publicKey = createPublicKey(signingKey);
  kid = randomUUID();
  const jwk = { ...(await exportJWK(publicKey)), kid, use: 'sig', kty: 'RSA' };
  authority = createServer({ key: tls.privateKeyPem, cert: tls.certificatePem }, (request, response) => {
    const documents: Record<string, unknown> = {
      [`/${TENANT}/v2.0/.well-known/openid-configuration`]: {
        issuer: `${base}/${TENANT}/v2.0`,
        jwks_uri: `${base}/${TENANT}/keys`,
      },
      [`/${TENANT}/.well-known/openid-configuration`]: {
        issuer: V1_ISSUER,
        jwks_uri: `${base}/${TENANT}/keys`,
      },
      [`/${TENANT}/keys`]: { keys: [jwk] },
    };
    const document = documents[request.url ?? ''];
    response.writeHead(document ? 200 : 404, { 'content-type': 'application/json' });
    response.end(JSON.stringify(document ?? { error: 'invalid_tenant' }));
  });
  await new Promise<void>((resolve) => authority.listen(0, '127.0.0.1', resolve));
  base = `https://localhost:${(authority.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await Promise.all(apps.map((app) => app.close()));
  await new Promise((resolve) => authority?.close(resolve));
});

async function start(auth: DynamicModule): Promise<string> {
  @Module({ imports: [auth], controllers: [ItemsController] })
  class SecondAppModule {}
  const app = await NestFactory.create<NestFastifyApplication>(SecondAppModule, new FastifyAdapter(), {
    logger: false,
    abortOnError: false,
  });
  apps.push(app);
  await app.listen(0, '127.0.0.1');
  return `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
}

function options(overrides: Partial<EntraAuthOptions> = {}): EntraAuthOptions {
  return { instance: base, tenantIds: [TENANT], audiences: [AUDIENCE], ca: caPem, ...overrides };
}

const newRsaKey = (): KeyObject => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

const now = () => Math.floor(Date.now() / 1000);

function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    aud: AUDIENCE,
    iss: `${base}/${TENANT}/v2.0`,
    iat: now(),
    nbf: now(),
    exp: now() + 600,
    azp: CLIENT,
    azpacr: '2',
    idtyp: 'app',
    oid: CLIENT,
    sub: CLIENT,
    tid: TENANT,
    roles: ['Items.Read'],
    ver: '2.0',
    ...overrides,
  };
}

function sign(
  payload: Record<string, unknown>,
  header: Record<string, unknown> = {},
  key: KeyObject = signingKey,
): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid, ...header }).sign(key);
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

async function get(url: string, token?: string) {
  const response = await fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  return {
    status: response.status,
    body: (await response.json()) as Record<string, unknown>,
    challenge: response.headers.get('www-authenticate'),
  };
}

describe('a second application with EntraAuthModule.forRoot', () => {
  let url: string;
  beforeAll(async () => {
    url = await start(EntraAuthModule.forRoot(options()));
  });

  it('serves the public route without a token and the protected one only with one', async () => {
    expect(await get(`${url}/public`)).toMatchObject({ status: 200, body: { open: true } });
    expect(await get(`${url}/items`)).toMatchObject({
      status: 401,
      body: { statusCode: 401, code: 'ERR_TOKEN_MISSING' },
      challenge: 'Bearer',
    });
  });

  it('accepts a v2 token, and a v1 token carrying the issuer of the v1 metadata document', async () => {
    expect(await get(`${url}/items`, await sign(claims()))).toMatchObject({
      status: 200,
      body: { caller: CLIENT, version: '2.0' },
    });
    const v1 = claims({ iss: V1_ISSUER, ver: '1.0', appid: CLIENT, appidacr: '2' });
    delete v1['azp'];
    delete v1['azpacr'];
    expect(await get(`${url}/items`, await sign(v1))).toMatchObject({
      status: 200,
      body: { version: '1.0' },
    });
  });

  const hostile: [string, () => Promise<string>, number, string][] = [
    [
      'alg none',
      async () => `${b64({ alg: 'none', typ: 'JWT', kid })}.${b64(claims())}.`,
      401,
      'ERR_TOKEN_ALGORITHM',
    ],
    [
      'HS256 keyed with the public key',
      async () => {
        const input = `${b64({ alg: 'HS256', typ: 'JWT', kid })}.${b64(claims())}`;
        const secret = publicKey.export({ type: 'spki', format: 'pem' });
        return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
      },
      401,
      'ERR_TOKEN_ALGORITHM',
    ],
    [
      'signed by another key under the trusted kid',
      async () => sign(claims(), {}, newRsaKey()),
      401,
      'ERR_TOKEN_SIGNATURE',
    ],
    [
      'unknown kid',
      async () => sign(claims(), { kid: randomUUID() }, newRsaKey()),
      401,
      'ERR_TOKEN_SIGNING_KEY_UNKNOWN',
    ],
    ['audience of another API', () => sign(claims({ aud: 'api://other' })), 401, 'ERR_TOKEN_AUDIENCE'],
    [
      'issuer on another host',
      () => sign(claims({ iss: `https://evil.invalid/${TENANT}/v2.0` })),
      401,
      'ERR_TOKEN_ISSUER',
    ],
    ['v1 issuer on a v2 token', () => sign(claims({ iss: V1_ISSUER })), 401, 'ERR_TOKEN_ISSUER'],
    ['tenant not configured', () => sign(claims({ tid: randomUUID() })), 401, 'ERR_TOKEN_TENANT'],
    [
      'expired',
      () => sign(claims({ iat: now() - 7200, nbf: now() - 7200, exp: now() - 3600 })),
      401,
      'ERR_TOKEN_EXPIRED',
    ],
    [
      'not yet valid',
      () => sign(claims({ nbf: now() + 600, exp: now() + 1200 })),
      401,
      'ERR_TOKEN_NOT_YET_VALID',
    ],
    ['jku header', () => sign(claims(), { jku: `${base}/${TENANT}/keys` }), 401, 'ERR_TOKEN_HEADER'],
    ['delegated (user) token', () => sign(claims({ scp: 'Items.Read' })), 401, 'ERR_TOKEN_CLAIMS'],
    ['missing app role', () => sign(claims({ roles: ['Items.Write'] })), 403, 'ERR_APP_ROLE_MISSING'],
    ['role in another case', () => sign(claims({ roles: ['items.read'] })), 403, 'ERR_APP_ROLE_MISSING'],
  ];

  it.each(hostile)('refuses a token with %s', async (_name, token, status, code) => {
    const answer = await get(`${url}/items`, await token());
    expect({ status: answer.status, code: answer.body['code'] }).toEqual({ status, code });
    expect(answer.body).not.toHaveProperty('items');
    expect(answer.challenge).toMatch(status === 401 ? /^Bearer error="invalid_token"/ : /insufficient_scope/);
  });
});

@Injectable()
class SecondAppSettings {
  readonly requireCertificate = true;
}

@Module({ providers: [SecondAppSettings], exports: [SecondAppSettings] })
class SettingsModule {}

describe('a second application with EntraAuthModule.forRootAsync', () => {
  it('takes its options from another provider (certificate-only, client allow-list)', async () => {
    const url = await start(
      EntraAuthModule.forRootAsync({
        imports: [SettingsModule],
        inject: [SecondAppSettings],
        useFactory: (settings: SecondAppSettings) =>
          options({ requireCertificateClients: settings.requireCertificate, allowedClientIds: [CLIENT] }),
      }),
    );
    expect((await get(`${url}/items`, await sign(claims()))).status).toBe(200);
    expect((await get(`${url}/items`, await sign(claims({ azpacr: '1' })))).body['code']).toBe(
      'ERR_CLIENT_CERTIFICATE_REQUIRED',
    );
    const stranger = randomUUID();
    expect(
      (await get(`${url}/items`, await sign(claims({ azp: stranger, oid: stranger, sub: stranger })))).body[
        'code'
      ],
    ).toBe('ERR_CLIENT_NOT_ALLOWED');
  });

  it('refuses bad options when the application is created, naming the option', async () => {
    const bad = EntraAuthModule.forRootAsync({ useFactory: () => options({ tenantIds: ['contoso'] }) });
    await expect(start(bad)).rejects.toThrow(/^EntraAuthModule option tenantIds /);
  });
});

describe('a tenant the authority does not publish', () => {
  it('starts, is not ready (naming the URL), and refuses every protected request with 401', async () => {
    const unknown = randomUUID();
    @Module({
      imports: [EntraAuthModule.forRoot(options({ tenantIds: [unknown] }))],
      controllers: [ItemsController],
    })
    class UnknownTenantModule {}
    const app = await NestFactory.create<NestFastifyApplication>(UnknownTenantModule, new FastifyAdapter(), {
      logger: false,
    });
    apps.push(app);
    await app.listen(0, '127.0.0.1');
    const url = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
    expect(await app.get(EntraAuthority).readiness()).toMatchObject({
      ready: false,
      missing: 'metadata',
      url: `${base}/${unknown}/v2.0/.well-known/openid-configuration`,
      reason: expect.stringMatching(/HTTP 404.*tenant does not exist/),
    });
    expect((await get(`${url}/public`)).status).toBe(200);
    expect(await get(`${url}/items`, await sign(claims({ tid: unknown })))).toMatchObject({
      status: 401,
      body: { code: 'ERR_ISSUER_METADATA_UNAVAILABLE' },
    });
  });

  it(
    'does not hold start-up for an authority that accepts connections and never answers',
    async () => {
      // A black hole: the TLS handshake never completes. The request timeout (60 s) is far longer
      // than the test's own limit, so this test ends only if start-up stops waiting by itself.
      const sockets = new Set<Socket>();
      const silent = createNetServer((socket) => void sockets.add(socket));
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      try {
        const instance = `https://localhost:${(silent.address() as AddressInfo).port}`;
        @Module({
          imports: [
            EntraAuthModule.forRoot(
              options({ instance, tenantIds: [TENANT, randomUUID()], requestTimeoutMs: 60_000 }),
            ),
          ],
          controllers: [ItemsController],
        })
        class SilentAuthorityModule {}
        const app = await NestFactory.create<NestFastifyApplication>(
          SilentAuthorityModule,
          new FastifyAdapter(),
          {
            logger: false,
          },
        );
        apps.push(app);
        await app.init();
        expect(await app.get(EntraAuthority).readiness()).toMatchObject({
          ready: false,
          missing: 'metadata',
        });
        await app.close();
      } finally {
        for (const socket of sockets) socket.destroy();
        silent.close();
      }
    },
    STARTUP_DISCOVERY_WAIT_MS + 10_000,
  );

  it('retries with exponential backoff up to the cap, logging each failure as a configuration error', async () => {
    const unknown = randomUUID();
    const lines: Record<string, unknown>[] = [];
    const capture = (level: string) => (message: unknown) =>
      lines.push({ level, ...(typeof message === 'object' ? message : { message }) });
    @Module({
      imports: [
        EntraAuthModule.forRoot(
          options({ tenantIds: [unknown], discoveryRetry: { initialDelayMs: 10, maxDelayMs: 40 } }),
        ),
      ],
    })
    class RetryingModule {}
    const app = await NestFactory.create<NestFastifyApplication>(RetryingModule, new FastifyAdapter(), {
      logger: { log: capture('info'), warn: capture('warn'), error: capture('error') },
    });
    apps.push(app);
    await app.init();
    const failures = () => lines.filter((l) => l['event'] === 'openid_metadata_configuration_error');
    for (let i = 0; i < 200 && failures().length < 6; i++) await new Promise((r) => setTimeout(r, 25));
    expect(
      failures()
        .slice(0, 6)
        .map((l) => l['retryInMs']),
    ).toEqual([10, 20, 40, 40, 40, 40]);
    expect(failures()[0]).toMatchObject({
      level: 'error',
      status: 404,
      url: `${base}/${unknown}/v2.0/.well-known/openid-configuration`,
    });
    await app.close();
    const afterClose = failures().length;
    await new Promise((r) => setTimeout(r, 150));
    expect(failures().length).toBe(afterClose); // closing the app stops the retries
  });
});
