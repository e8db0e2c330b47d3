/**
 * The built partner worker CLI against the real local Entra ID emulator (tools/entra-emulator):
 * register the partner, upload its .cer through the Graph API, run `token get` and `call` as
 * users do. The token client alone against the emulator is tested in libs/partner-client
 * (certificate-token-client.emulator.spec.ts).
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateStore, type PartnerCredential } from '@certflow/partner-client';
import { get } from 'node:https';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import {
  GraphClient,
  provisionApiAndPartner,
  startEmulator,
  type RunningEmulator,
} from '@certflow/entra-emulator';
import { json, startHttpsServer, tempDir, type TestServer, startRedisServer } from '@certflow/testing';
import { DevelopmentCa } from '@certflow/certs';
import { randomBytes } from 'node:crypto';

/** The ids of the traceparent a call sent, in its response event. */
const TRACE_IDS = {
  traceId: expect.stringMatching(/^[0-9a-f]{32}$/),
  spanId: expect.stringMatching(/^[0-9a-f]{16}$/),
};

const API_URI = 'api://certflow-orders-test';
const SCOPE = `${API_URI}/.default`;
const PROJECT = resolve(__dirname, '..');
const WORKSPACE = resolve(PROJECT, '../..');
const MAIN = join(PROJECT, 'dist', 'main.js');

/** Builds the CLI (and libs/certs) the way users do; incremental, so nearly free when up to date. */
function ensureBuilt(): void {
  execFileSync(
    process.execPath,
    [join(WORKSPACE, 'node_modules/typescript/bin/tsc'), '-b', join(PROJECT, 'tsconfig.build.json')],
    {
      cwd: WORKSPACE,
      stdio: 'pipe',
    },
  );
}

function fetchJson(url: string, ca: string): Promise<unknown> {
  return new Promise((resolvePromise, reject) => {
    get(url, { ca }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolvePromise(JSON.parse(text)));
    }).on('error', reject);
  });
}

function runBuiltCli(
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    // A clean environment: nothing inherited may make it pass (e.g. NODE_EXTRA_CA_CERTS).
    const child = spawn(process.execPath, [MAIN, ...args], {
      cwd,
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

describe('partner worker against the Entra ID emulator', () => {
  const dir = tempDir();
  let emulator: RunningEmulator;
  let partner: { appId: string; objectId: string };
  let credential: PartnerCredential;
  let caPem: string;
  let apiAppId: string;

  beforeAll(async () => {
    emulator = await startEmulator({ stateDir: join(dir.path, 'state'), port: 0 });
    caPem = readFileSync(emulator.caCertificatePath, 'utf8');
    const graph = await GraphClient.connect(emulator);
    const provisioned = await provisionApiAndPartner(graph, {
      apiDisplayName: 'orders API (partner-worker test)',
      apiIdentifierUri: API_URI,
      roles: ['Orders.Read'],
      partnerDisplayName: 'partner-worker test partner',
      grantRoles: ['Orders.Read'],
    });
    partner = provisioned.partner;
    apiAppId = provisioned.api.appId;
    credential = new CertificateStore(join(dir.path, 'partner')).create({
      commonName: 'partner-worker-test',
    });
    await graph.addCertificate(partner.objectId, readFileSync(credential.cerPath), 'partner-worker test');
    ensureBuilt();
  }, 120_000);

  afterAll(async () => {
    await emulator?.close();
    dir.remove();
  });

  it('runs the built CLI: token get --json', async () => {
    const env = {
      ENTRA_INSTANCE: emulator.url,
      PARTNER_TENANT_ID: emulator.tenantId,
      PARTNER_CLIENT_ID: partner.appId,
      PARTNER_SCOPE: SCOPE,
      PARTNER_CERT_DIR: credential.directory,
      PARTNER_CA_FILE: emulator.caCertificatePath,
    };
    const r = await runBuiltCli(['token', 'get', '--json'], env, dir.path);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.map((e) => e.event)).toEqual(['assertion', 'token']);
    expect(events[0]).toMatchObject({
      header: { alg: 'PS256', 'x5t#S256': credential.certificate.thumbprints.sha256Base64Url },
      claims: { iss: partner.appId, sub: partner.appId, aud: `${emulator.authority}/oauth2/v2.0/token` },
    });
    expect(events[1]).toMatchObject({
      source: 'network',
      claims: { azp: partner.appId, roles: ['Orders.Read'] },
    });
    expect(r.stdout).not.toMatch(/eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/); // no raw JWT

    const untrusted = await runBuiltCli(['token', 'get'], { ...env, PARTNER_CA_FILE: '' }, dir.path);
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(
      /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN/,
    );
  }, 60_000);

  it('four built worker processes sharing a real Redis: one token request between them', async () => {
    const redis = await startRedisServer();
    try {
      const env = {
        ENTRA_INSTANCE: emulator.url,
        PARTNER_TENANT_ID: emulator.tenantId,
        PARTNER_CLIENT_ID: partner.appId,
        PARTNER_SCOPE: SCOPE,
        PARTNER_CERT_DIR: credential.directory,
        PARTNER_CA_FILE: emulator.caCertificatePath,
        PARTNER_REDIS_URL: redis.url,
        PARTNER_CACHE_KEY: randomBytes(32).toString('base64'),
      };
      const runs = await Promise.all(
        [1, 2, 3, 4].map(() => runBuiltCli(['token', 'get', '--json'], env, dir.path)),
      );
      expect(runs.map((r) => r.code)).toEqual([0, 0, 0, 0]);
      const events = runs.flatMap((r) =>
        r.stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as Record<string, unknown>),
      );
      expect(events.filter((e) => e.event === 'assertion')).toHaveLength(1);
      expect(
        events
          .filter((e) => e.event === 'token')
          .map((e) => e.source)
          .sort(),
      ).toEqual(['network', 'shared', 'shared', 'shared']);
    } finally {
      await redis.stop();
    }
  }, 60_000);

  describe('call through a token-validating API', () => {
    let api: TestServer;

    beforeAll(async () => {
      // A minimal resource server: verifies the bearer token against the emulator's JWKS.
      const jwks = createLocalJWKSet((await fetchJson(emulator.jwksUri, caPem)) as JSONWebKeySet);
      api = await startHttpsServer(
        DevelopmentCa.loadOrCreate(join(dir.path, 'state')),
        async (req, _body, res) => {
          const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
          if (!token) return json(res, 401, { statusCode: 401, message: 'missing token' });
          try {
            const { payload } = await jwtVerify(token, jwks, { issuer: emulator.issuer, audience: apiAppId });
            const roles = (payload.roles as string[] | undefined) ?? [];
            if (req.url === '/orders' && roles.includes('Orders.Read'))
              return json(res, 200, { orders: [{ id: 'o-1' }], caller: payload.azp });
            return json(res, 403, { statusCode: 403, message: 'Forbidden' });
          } catch (err) {
            return json(res, 401, { statusCode: 401, message: (err as Error).message });
          }
        },
      );
    });
    afterAll(() => api?.close());

    it('runs the built CLI: call /orders --times 2 --json emits the contract events', async () => {
      const env = {
        ENTRA_INSTANCE: emulator.url,
        PARTNER_TENANT_ID: emulator.tenantId,
        PARTNER_CLIENT_ID: partner.appId,
        PARTNER_SCOPE: SCOPE,
        PARTNER_API_BASE_URL: api.url,
        PARTNER_CERT_DIR: credential.directory,
        PARTNER_CA_FILE: emulator.caCertificatePath,
      };
      const r = await runBuiltCli(['call', '/orders', '--times', '2', '--json'], env, dir.path);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const events = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(events.map((e) => (e.event === 'token' ? `token:${String(e.source)}` : e.event))).toEqual([
        'assertion',
        'token:network',
        'response',
        'token:cache',
        'response',
      ]);
      expect(events[2]).toEqual({
        event: 'response',
        status: 200,
        body: { orders: [{ id: 'o-1' }], caller: partner.appId },
        ...TRACE_IDS,
      });
      expect(events[4]!.traceId).not.toBe(events[2]!.traceId); // a new trace per call

      const forbidden = await runBuiltCli(['call', '/admin', '--json'], env, dir.path);
      expect(forbidden.code).toBe(1);
      expect(JSON.parse(forbidden.stdout.trim().split('\n').at(-1)!)).toEqual({
        event: 'response',
        status: 403,
        body: { statusCode: 403, message: 'Forbidden' },
        ...TRACE_IDS,
      });
      expect(forbidden.stderr).toMatch(/HTTP 403/);
    }, 60_000);
  });
});
