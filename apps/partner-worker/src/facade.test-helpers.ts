/**
 * What the facade, serve and run specs share: the real Entra ID emulator as the emulator fixture
 * (real MSAL, real TLS, certificates made here), a real HTTP API that verifies every bearer
 * token's signature against the emulator's JWKS, the built CLI as child processes, and small HTTP
 * and metrics helpers.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { get as httpsGet } from 'node:https';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll } from 'vitest';
import {
  CertificateStore,
  CertificateTokenClient,
  HttpsNetworkClient,
  readPartnerConfig,
  type PartnerCredential,
} from '@certflow/partner-client';
import type { GraphClient, RunningEmulator } from '@certflow/entra-emulator';
import { startEmulatorFixture, type EmulatorFixture } from '@certflow/entra-emulator/testing';
import { startRedisServer, json, startHttpServer, tempDir, type TestServer } from '@certflow/testing';
import type { RsaKeySize } from '@certflow/certs';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { startFacade, type RunningFacade } from './facade';
import { PartnerWorker } from './worker';

export const API_URI = 'api://certflow-facade-test';
export const SCOPE = `${API_URI}/.default`;
export const LIFETIME_S = 8;
const PROJECT = resolve(__dirname, '..');
const WORKSPACE = resolve(PROJECT, '../..');
const MAIN = join(PROJECT, 'dist', 'main.js');

export function fetchText(url: string, ca: string): Promise<string> {
  return new Promise((done, reject) => {
    httpsGet(url, { ca }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => done(text));
    }).on('error', reject);
  });
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export function http(method: string, url: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((done, reject) => {
    const req = httpRequest(url, { method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => done({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Sum of a metric's samples whose label text contains `labels` (all samples without it). */
export function metric(text: string, name: string, labels = ''): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name && (m[2] ?? '').includes(labels)) total += Number(m[3]);
  }
  return total;
}

export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  limitMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A child process of the built CLI, with its stdout lines and stderr lines collected. */
export interface CliProcess {
  child: ChildProcessWithoutNullStreams;
  stdout: string[];
  stderr: string[];
  exited: Promise<number | null>;
}

export function startCli(args: string[], env: NodeJS.ProcessEnv, cwd: string): CliProcess {
  // A clean environment: nothing inherited may make it pass (e.g. NODE_EXTRA_CA_CERTS).
  const child = spawn(process.execPath, [MAIN, ...args], { cwd, env: { PATH: process.env.PATH, ...env } });
  const stdout: string[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stdout }).on('line', (l) => stdout.push(l));
  createInterface({ input: child.stderr }).on('line', (l) => stderr.push(l));
  const exited = new Promise<number | null>((done) => child.once('close', (code) => done(code)));
  return { child, stdout, stderr, exited };
}

/**
 * Starts (in the calling describe's beforeAll) the emulator with LIFETIME_S-second tokens, the
 * partner's and the API's registrations, and the verifying API; everything is closed afterAll.
 * The returned object is filled once beforeAll has run.
 */
export function useFacadeFixture() {
  const dir = tempDir();
  const closers: (() => void | Promise<void>)[] = [];
  let fixture: EmulatorFixture | undefined;
  const f = {
    dir,
    closers,
    emulator: undefined as unknown as RunningEmulator,
    admin: undefined as unknown as GraphClient,
    partner: undefined as unknown as { appId: string; objectId: string },
    apiAppId: '',
    caPem: '',
    api: undefined as unknown as TestServer,
    /** Every bearer token the API accepted, and how many it refused. */
    seenTokens: new Set<string>(),
    refused: 0,
    /** false: the API drops every connection. */
    apiUp: true,

    /** A fresh certificate directory with a certificate registered for the partner. */
    async registeredCertificate(name: string, opts: { days?: number; keySize?: RsaKeySize } = {}) {
      const store = new CertificateStore(join(dir.path, name));
      const credential = store.create({ commonName: `facade-${name}`, ...opts });
      const uploaded = await f.admin.addCertificate(
        f.partner.objectId,
        readFileSync(credential.cerPath),
        name,
      );
      return { store, credential, keyId: uploaded.keyId };
    },

    env(certDir: string, extra: Record<string, string> = {}): Record<string, string> {
      return {
        ENTRA_INSTANCE: f.emulator.url,
        PARTNER_TENANT_ID: f.emulator.tenantId,
        PARTNER_CLIENT_ID: f.partner.appId,
        PARTNER_SCOPE: SCOPE,
        PARTNER_API_BASE_URL: f.api.url,
        PARTNER_CERT_DIR: certDir,
        PARTNER_CA_FILE: f.emulator.caCertificatePath,
        ...extra,
      };
    },

    tokenClient(credential: PartnerCredential) {
      const network = new HttpsNetworkClient({ ca: f.caPem });
      closers.push(() => network.close());
      return new CertificateTokenClient({
        entraInstance: f.emulator.url,
        tenantId: f.emulator.tenantId,
        clientId: f.partner.appId,
        scope: SCOPE,
        credential,
        networkClient: network,
      });
    },

    /** A PartnerWorker and its facade in this process, configured from `env` like the CLI. */
    async inProcess(certDir: string, allowedHosts: string[] = [], extraEnv: Record<string, string> = {}) {
      const logs: string[] = [];
      const assertions: Record<string, unknown>[] = [];
      const worker = new PartnerWorker({
        config: readPartnerConfig(f.env(certDir, extraEnv), dir.path),
        log: (m) => logs.push(m),
        onAssertion: (a) => assertions.push(a.header),
        watchPollMs: 200,
      });
      const facade: RunningFacade = await startFacade({ worker, allowedHosts, log: (m) => logs.push(m) });
      let stopped: Promise<void> | undefined;
      /** Stops the facade and the worker's refresh timers (once; the fixture calls it too). */
      const stop = () =>
        (stopped ??= (async () => {
          await facade.close(100);
          worker.close();
        })());
      closers.push(stop);
      return { worker, facade, logs, assertions, stop };
    },

    /** Tokens the emulator issued to the partner for the API so far. */
    async issuedTokens(): Promise<number> {
      return metric(
        await fetchText(`${f.emulator.url}/metrics`, f.caPem),
        'entra_emulator_tokens_issued_total',
        `client_id="${f.partner.appId}",resource="${f.apiAppId}"`,
      );
    },

    /** `count` built `serve` processes sharing one real Redis (and one certificate), once all listen. */
    async startReplicasOnRedis(name: string, count: number) {
      const { store } = await f.registeredCertificate(name);
      const redis = await startRedisServer();
      closers.push(() => redis.stop());
      const shared = { PARTNER_REDIS_URL: redis.url, PARTNER_CACHE_KEY: randomBytes(32).toString('hex') };
      const replicas = Array.from({ length: count }, () =>
        startCli(['serve'], f.env(store.directory, shared), dir.path),
      );
      for (const r of replicas) closers.push(() => void r.child.kill('SIGKILL'));
      await until('every replica listening', () =>
        replicas.every((r) => r.stdout.length > 0 || r.child.exitCode !== null),
      );
      const exited = replicas.filter((r) => r.stdout.length === 0);
      if (exited.length)
        throw new Error(`a replica exited before listening:\n${exited[0]!.stderr.join('\n')}`);
      const urls = replicas.map((r) => (JSON.parse(r.stdout[0]!) as { url: string }).url);
      return { replicas, urls };
    },
  };

  beforeAll(async () => {
    execFileSync(
      process.execPath,
      [join(WORKSPACE, 'node_modules/typescript/bin/tsc'), '-b', join(PROJECT, 'tsconfig.build.json')],
      { cwd: WORKSPACE, stdio: 'pipe' },
    );
    fixture = await startEmulatorFixture({
      directory: dir.path,
      apiIdentifierUri: API_URI,
      roles: ['Orders.Read'],
      partner: { name: 'facade test partner' },
      tokenLifetimeSeconds: LIFETIME_S,
    });
    ({ emulator: f.emulator, caPem: f.caPem, graph: f.admin, partner: f.partner } = fixture);
    f.apiAppId = fixture.api.appId;
    const jwks = createLocalJWKSet(JSON.parse(await fetchText(f.emulator.jwksUri, f.caPem)) as JSONWebKeySet);
    f.api = await startHttpServer(async (req, _body, res) => {
      if (!f.apiUp) return void req.socket.destroy();
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      let azp: unknown;
      try {
        ({
          payload: { azp },
        } = await jwtVerify(token ?? '', jwks, { issuer: f.emulator.issuer, audience: f.apiAppId }));
      } catch {
        f.refused++;
        return json(res, 401, { error: 'invalid_token' });
      }
      f.seenTokens.add(token!);
      const teapot = /^\/status\/(\d{3})$/.exec(req.url ?? '');
      if (teapot) return json(res, Number(teapot[1]), { status: Number(teapot[1]) });
      if (req.url === '/slow') await new Promise((r) => setTimeout(r, 700));
      if (req.url?.startsWith('/text'))
        return void res.writeHead(200, { 'content-type': 'text/plain' }).end('plain words');
      json(res, 200, {
        orders: [{ id: 1 }],
        caller: azp,
        url: req.url,
        traceparent: req.headers.traceparent,
      });
    });
  }, 120_000);

  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    await f.api?.close();
    await fixture?.close();
    dir.remove();
  });

  return f;
}
