/**
 * Schema fuzzing through the gateway with schemathesis, a tool nobody here wrote: the OpenAPI
 * document served by the API is the contract, the gateway (running apps/api/apim/policy.xml)
 * is the way in, and a partner registered by this test holds every app role of the API, so
 * every operation is reached, POST /orders included. Fails on any 5xx, any answer whose status
 * is not documented for its operation or whose body does not match the documented schema, and
 * any other schemathesis check; prints the failing cases (with a `curl` to replay each).
 *
 * schemathesis runs from a Python virtual environment, `.venv-tools` (made by .ci/run), or the
 * `st` named by CERTFLOW_SCHEMATHESIS.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConfidentialClientApplication,
  type INetworkModule,
  type NetworkRequestOptions,
  type NetworkResponse,
} from '@azure/msal-node';
import { createSelfSignedCertificate, parseCertificate } from '@certflow/certs';
import { GraphClient } from '@certflow/entra-emulator';
import { RunningStack, startStack } from './stack';
import { servedApi } from './stack-file';
import { workspaceRoot } from './workspace';

const SCHEMATHESIS_VERSION = '4.32.5';
const INSTALL = `/usr/bin/python3 -m venv .venv-tools && .venv-tools/bin/pip install schemathesis==${SCHEMATHESIS_VERSION}`;
/** Test cases per operation and phase; with 5 operations the run takes about 10 s. */
const MAX_EXAMPLES = 40;
/** The whole schemathesis run is killed after this. */
const RUN_TIMEOUT_MS = 120_000;

const workDir = mkdtempSync(join(tmpdir(), 'certflow-schema-fuzz-'));
const documentPath = join(workDir, 'openapi.json');
let stack: RunningStack;
let partner: { token: string; roles: string[] };
let openApi: OpenApiDocument;

interface OpenApiDocument {
  paths: Record<
    string,
    Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>
  >;
}

/** The `st` executable, refusing to run without the pinned version (with the command that installs it). */
function schemathesis(): string {
  const st = process.env['CERTFLOW_SCHEMATHESIS'] ?? join(workspaceRoot(), '.venv-tools', 'bin', 'st');
  const missing = (why: string) =>
    new Error(
      `schemathesis ${SCHEMATHESIS_VERSION} is needed (${why}); in the repository root run:\n  ${INSTALL}`,
    );
  if (!existsSync(st)) throw missing(`${st} does not exist`);
  const version = spawnSync(st, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  if (version.status !== 0) throw missing(`${st} --version failed: ${version.stderr || version.error}`);
  if (!version.stdout.includes(`version ${SCHEMATHESIS_VERSION}`))
    throw missing(`${st} is ${version.stdout.trim()}`);
  return st;
}

/** MSAL's HTTP over node:https trusting the development CA (MSAL's own client uses fetch, which cannot be given a CA). */
function networkClient(caPem: Buffer): INetworkModule {
  const send = <T>(
    method: string,
    url: string,
    options?: NetworkRequestOptions,
  ): Promise<NetworkResponse<T>> =>
    new Promise((resolve, reject) => {
      const req = request(url, { method, ca: caPem, headers: options?.headers ?? {} }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => {
          const headers: Record<string, string> = {};
          for (const [name, value] of Object.entries(res.headers))
            if (value !== undefined) headers[name] = String(value);
          try {
            resolve({ headers, body: JSON.parse(text) as T, status: res.statusCode ?? 0 });
          } catch (err) {
            reject(err);
          }
        });
      });
      req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${url} timed out`)));
      req.on('error', reject);
      req.end(options?.body);
    });
  return {
    sendGetRequestAsync: (url, options) => send('GET', url, options),
    sendPostRequestAsync: (url, options) => send('POST', url, options),
  };
}

/**
 * A partner of its own: an app registration with a certificate generated now, granted every
 * app role the topology gives the API, and its token from MSAL's certificate client, as a
 * partner gets it.
 */
async function registerPartnerWithEveryRole(): Promise<{ token: string; roles: string[] }> {
  const graph = await GraphClient.connect(stack.emulator);
  const api = await graph.getApplication(servedApi(stack.file).objectId);
  const roles = api.appRoles.filter((role) => role.isEnabled);
  const apiSp = await graph.findServicePrincipalByAppId(api.appId);
  if (!apiSp) throw new Error('the API has no service principal');

  const partner = await graph.createApplication({ displayName: `schema-fuzz-partner-${randomUUID()}` });
  const partnerSp = await graph.createServicePrincipal(partner.appId);
  const certificate = createSelfSignedCertificate({ commonName: 'schema-fuzz-partner' });
  await graph.addCertificate(partner.id, certificate.certificatePem);
  for (const role of roles)
    await graph.assignAppRole({ principalId: partnerSp.id, resourceId: apiSp.id, appRoleId: role.id });

  const msal = new ConfidentialClientApplication({
    auth: {
      clientId: partner.appId,
      authority: stack.emulator.authority,
      knownAuthorities: [new URL(stack.emulator.url).host],
      clientCertificate: {
        thumbprintSha256: parseCertificate(certificate.certificatePem).thumbprints.sha256Hex,
        privateKey: certificate.privateKeyPem,
      },
    },
    system: { networkClient: networkClient(readFileSync(stack.file.caCertificatePath)) },
  });
  const result = await msal.acquireTokenByClientCredential({ scopes: [servedApi(stack.file).scope] });
  if (!result?.accessToken) throw new Error('MSAL returned no access token');
  return { token: result.accessToken, roles: roles.map((role) => role.value) };
}

interface RunReport {
  exit_code: number;
  complete: boolean;
  running_time: number;
  seed: number | string;
  operations: { total: number; tested: number; errored: number };
  test_cases: { generated: number; with_failures: number };
  failures: { code: string; title: string; count: number; operations: string[] }[];
  errors: unknown[];
  warnings: Record<string, unknown[]>;
}

interface FuzzRun {
  command: string;
  exitCode: number | null;
  output: string;
  wallMs: number;
  report: RunReport | undefined;
}

function runSchemathesis(st: string, args: string[]): Promise<FuzzRun> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    // Its own working directory: schemathesis writes nothing into the checkout.
    const child = spawn(st, args, { cwd: workDir, env: { ...process.env, NO_COLOR: '1' } });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    const timer = setTimeout(() => {
      output += `\n(killed after ${RUN_TIMEOUT_MS} ms)`;
      child.kill('SIGKILL');
    }, RUN_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (exitCode) => {
      clearTimeout(timer);
      const reportPath = join(workDir, 'report.json');
      resolve({
        command: `st ${args.map((a) => (a.startsWith('Authorization:') ? "'Authorization: Bearer …'" : a)).join(' ')}`,
        exitCode,
        output,
        wallMs: performance.now() - started,
        report: existsSync(reportPath)
          ? (JSON.parse(readFileSync(reportPath, 'utf8')) as RunReport)
          : undefined,
      });
    });
  });
}

/** Gateway access-log lines (one JSON object each) written by the stack. */
function gatewayAccessLog(): { method: string; path: string; status: number }[] {
  return readFileSync(join(stack.file.stateDir, 'gateway-access.log'), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as { method: string; path: string; status: number });
}

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** One request written byte for byte over TLS to the gateway (what fetch would refuse to send), read until the gateway closes. */
function rawRequest(head: string): Promise<RawAnswer> {
  const url = new URL(stack.file.gateway.url);
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port: Number(url.port),
      servername: 'localhost',
      ca: readFileSync(stack.file.caCertificatePath),
    });
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer to ${head.split('\r\n')[0]}`)));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      const lines = text.slice(0, split).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ status: Number(lines[0]?.split(' ')[1]), headers, body: text.slice(split + 4) });
    });
    socket.on('secureConnect', () => socket.end(head));
  });
}

/** The schemas the document gives for an answer of an operation: its own, or each of its oneOf. */
function documentedSchemas(path: string, method: string, status: number): unknown[] {
  const schema = openApi.paths[path]?.[method]?.responses[String(status)]?.content?.['application/json']
    ?.schema as { oneOf?: unknown[] } | undefined;
  if (!schema) return [];
  return schema.oneOf ?? [schema];
}

beforeAll(async () => {
  stack = await startStack({ stateDir: join(workDir, 'state') });
  partner = await registerPartnerWithEveryRole();
  const document = await fetch(`${servedApi(stack.file).url}/docs-json`);
  if (document.status !== 200) throw new Error(`GET /docs-json answered ${document.status}`);
  const text = await document.text();
  writeFileSync(documentPath, text);
  openApi = JSON.parse(text) as OpenApiDocument;
}, 90_000);

afterAll(async () => {
  await stack?.close();
  rmSync(workDir, { recursive: true, force: true });
});

describe('schemathesis through the gateway', () => {
  it('finds no 5xx and no answer that the OpenAPI document does not describe', async () => {
    const st = schemathesis();
    expect(partner.roles).toEqual(expect.arrayContaining(['Orders.Read', 'Orders.Write']));
    const run = await runSchemathesis(st, [
      'run',
      documentPath,
      '--url',
      stack.file.gateway.url,
      '--header',
      `Authorization: Bearer ${partner.token}`,
      '--tls-verify',
      stack.file.caCertificatePath,
      '--checks',
      'all',
      '--max-examples',
      String(MAX_EXAMPLES),
      '--workers',
      '4',
      '--request-timeout',
      '10',
      '--generation-database',
      'none',
      '--report',
      'json',
      '--report-json-path',
      join(workDir, 'report.json'),
      '--no-color',
    ]);
    const report = run.report;
    // The seed as printed: the JSON report's number is beyond double precision.
    const seed = /^Seed: (\d+)/m.exec(run.output)?.[1] ?? 'unknown';
    const summary = report
      ? `${report.test_cases.generated} cases, ${report.operations.tested}/${report.operations.total} operations, ` +
        `${report.failures.length} kinds of failure, ${report.errors.length} errors, seed ${seed}`
      : 'no report';
    console.log(`schema fuzzing: ${summary}, ${Math.round(run.wallMs)} ms\n  ${run.command}`);

    const failed = run.exitCode !== 0 || !report || report.failures.length > 0 || report.errors.length > 0;
    // The whole output on failure: each failing case with its request, answer and a curl to replay it.
    expect(failed, `${run.command}\n${summary}\n\n${run.output}`).toBe(false);
    expect(report!.complete).toBe(true);
    expect(report!.operations.tested).toBe(report!.operations.total);
    expect(report!.test_cases.generated).toBeGreaterThan(50);
    // Authorized for every operation: no operation saw only 401/403.
    expect(report!.warnings['missing_auth'], run.output).toEqual([]);
    // POST /orders was exercised, not only refused: the gateway forwarded orders that were created.
    // The access log is written in batches every 100 ms: look until a batch holds one (at most 5 s).
    const created = () =>
      gatewayAccessLog().filter((e) => e.method === 'POST' && e.path === '/orders' && e.status === 201);
    for (let i = 0; i < 50 && created().length === 0; i++) await new Promise((done) => setTimeout(done, 100));
    expect(created().length).toBeGreaterThan(0);
  }, 180_000);
});

describe("the gateway's own answers are documented, in APIM's error shape", () => {
  const auth = () => `Authorization: Bearer ${partner.token}\r\n`;
  const host = () => `Host: localhost:${new URL(stack.file.gateway.url).port}\r\n`;
  // [what, operation path, method, expected status, request]
  const probes: [string, string, string, number, () => string][] = [
    ['no token', '/orders', 'get', 401, () => `GET /orders HTTP/1.1\r\n${host()}Connection: close\r\n\r\n`],
    [
      'Content-Length and Transfer-Encoding both',
      '/orders',
      'post',
      400,
      () =>
        `POST /orders HTTP/1.1\r\n${host()}${auth()}Content-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`,
    ],
    [
      'an encoded / in the path',
      '/orders/{id}',
      'get',
      400,
      () => `GET /orders/ord%2F1001 HTTP/1.1\r\n${host()}${auth()}Connection: close\r\n\r\n`,
    ],
    [
      'a cross-site Origin',
      '/orders',
      'get',
      403,
      () =>
        `GET /orders HTTP/1.1\r\n${host()}${auth()}Origin: https://attacker.example\r\nConnection: close\r\n\r\n`,
    ],
    [
      'a body over 2 MiB',
      '/orders',
      'post',
      413,
      () =>
        `POST /orders HTTP/1.1\r\n${host()}${auth()}Content-Type: application/json\r\nContent-Length: ${3 * 1024 * 1024}\r\n\r\n`,
    ],
    [
      'a request target over 8 KiB',
      '/orders/{id}',
      'get',
      414,
      () => `GET /orders/${'a'.repeat(9000)} HTTP/1.1\r\n${host()}${auth()}Connection: close\r\n\r\n`,
    ],
    [
      'a Host that is not the gateway',
      '/orders',
      'get',
      421,
      () => `GET /orders HTTP/1.1\r\nHost: attacker.example\r\n${auth()}Connection: close\r\n\r\n`,
    ],
    [
      'a header block over 16 KiB',
      '/orders',
      'get',
      431,
      () =>
        `GET /orders HTTP/1.1\r\n${host()}${auth()}X-Filler: ${'a'.repeat(17_000)}\r\nConnection: close\r\n\r\n`,
    ],
  ];

  for (const [what, path, method, status, head] of probes) {
    it(`${what}: ${status}, documented for ${method.toUpperCase()} ${path}`, async () => {
      const answer = await rawRequest(head());
      expect({ status: answer.status, body: answer.body }).toMatchObject({ status });
      expect(answer.headers['content-type']).toMatch(/^application\/json/);
      const body = JSON.parse(answer.body) as Record<string, unknown>;
      // Exactly GatewayError: statusCode and message, nothing else.
      expect(body).toEqual({ statusCode: status, message: expect.any(String) });
      expect(documentedSchemas(path, method, status)).toContainEqual({
        $ref: '#/components/schemas/GatewayError',
      });
    });
  }

  it('an id the gateway refuses or rewrites (encoded / \\ NUL, dot-segments) is outside the documented id pattern', async () => {
    const parameters = (
      openApi.paths['/orders/{id}']?.['get'] as {
        parameters?: { name: string; schema: { pattern?: string } }[];
      }
    ).parameters;
    const pattern = parameters?.find((p) => p.name === 'id')?.schema.pattern;
    expect(pattern).toBeDefined();
    for (const encoded of ['ord%2F1', 'ord%5C1', 'ord%001']) {
      const answer = await rawRequest(
        `GET /orders/${encoded} HTTP/1.1\r\n${host()}${auth()}Connection: close\r\n\r\n`,
      );
      expect(answer.status, encoded).toBe(400);
      expect(new RegExp(pattern!).test(decodeURIComponent(encoded)), encoded).toBe(false);
    }
    for (const dots of ['.', '..']) expect(new RegExp(pattern!).test(dots), dots).toBe(false);
  });

  it('GatewayError in the document is exactly that shape', () => {
    const components = (openApi as unknown as { components: { schemas: Record<string, unknown> } })
      .components;
    expect(components.schemas['GatewayError']).toMatchObject({
      type: 'object',
      required: ['statusCode', 'message'],
      additionalProperties: false,
    });
  });
});
