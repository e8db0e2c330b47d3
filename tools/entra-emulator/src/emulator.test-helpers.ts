/** Shared set-up for the emulator's tests: real HTTPS calls trusting the development CA, real certificates. */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importPKCS8, SignJWT, type JWTPayload } from 'jose';
import { parseCertificate, type CertificateAndKey } from '@certflow/certs';
import type { RunningEmulator } from './emulator';
import type { EmulatorInfo } from './emulator-info';
import type { GraphClient } from './graph-client';
import type { ProvisionedApiAndPartner } from './provision';
import { startEmulatorFixture, type EmulatorFixtureOptions } from './testing';
import { ASSERTION_TYPE } from './client-assertion-verifier';

export const API_URI = 'api://certflow-orders';

export function tempStateDir(): string {
  return mkdtempSync(join(tmpdir(), 'entra-emulator-'));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: () => Record<string, unknown>;
}

export function https(
  info: Pick<EmulatorInfo, 'caCertificatePath'>,
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<HttpResult> {
  const ca = readFileSync(info.caCertificatePath);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      // The certificate is checked for localhost whatever Host a test sends (the Host/Origin tests).
      { method: options.method ?? 'GET', ca, servername: 'localhost', headers: options.headers ?? {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            json: () => JSON.parse(text) as Record<string, unknown>,
          });
        });
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

export function postForm(
  info: EmulatorInfo,
  form: Record<string, string>,
  options: { url?: string; headers?: Record<string, string> } = {},
) {
  return https(info, options.url ?? info.tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded;charset=utf-8', ...options.headers },
    body: new URLSearchParams(form).toString(),
  });
}

export interface AssertionOptions {
  alg?: 'RS256' | 'PS256';
  /** Certificate named in the header (defaults to the signing one). */
  headerCert?: CertificateAndKey;
  header?: Record<string, unknown>;
  claims?: JWTPayload;
  nowSeconds?: number;
}

/** A client assertion as MSAL builds it: PS256 + x5t#S256, or RS256 + x5t; no kid. */
export async function clientAssertion(
  aud: string,
  clientId: string,
  cert: CertificateAndKey,
  options: AssertionOptions = {},
): Promise<string> {
  const alg = options.alg ?? 'PS256';
  const { thumbprints } = parseCertificate((options.headerCert ?? cert).certificatePem);
  const thumbprint =
    alg === 'PS256' ? { 'x5t#S256': thumbprints.sha256Base64Url } : { x5t: thumbprints.sha1Base64Url };
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  return new SignJWT({
    aud,
    iss: clientId,
    sub: clientId,
    jti: randomUUID(),
    nbf: now,
    iat: now,
    exp: now + 600,
    ...options.claims,
  })
    .setProtectedHeader({ alg, typ: 'JWT', ...thumbprint, ...options.header })
    .sign(await importPKCS8(cert.privateKeyPem, alg));
}

export function assertionForm(
  clientId: string,
  assertion: string,
  scope = `${API_URI}/.default`,
): Record<string, string> {
  return {
    grant_type: 'client_credentials',
    client_id: clientId,
    scope,
    client_assertion_type: ASSERTION_TYPE,
    client_assertion: assertion,
  };
}

export interface Fixture {
  stateDir: string;
  emulator: RunningEmulator;
  graph: GraphClient;
  provisioned: ProvisionedApiAndPartner;
  partnerCert: CertificateAndKey;
  /** Moves the emulator's clock (milliseconds added to real time). */
  setClockOffset(ms: number): void;
  close(): Promise<void>;
}

/** The emulator fixture (an API with `Orders.Read`, `Orders.Write`; a partner granted `Orders.Read`, its certificate registered), as these tests use it. */
export async function startFixture(
  options: NonNullable<EmulatorFixtureOptions['emulator']> &
    Pick<EmulatorFixtureOptions, 'tokenLifetimeSeconds' | 'clockOffset'> = {},
): Promise<Fixture> {
  const { tokenLifetimeSeconds, clockOffset, ...emulator } = options;
  const fixture = await startEmulatorFixture({
    apiIdentifierUri: API_URI,
    tokenLifetimeSeconds,
    clockOffset,
    emulator,
  });
  const { api, partner } = fixture;
  return {
    stateDir: fixture.stateDir,
    emulator: fixture.emulator,
    graph: fixture.graph,
    provisioned: { api, partner },
    partnerCert: { certificatePem: partner.certificatePem, privateKeyPem: partner.privateKeyPem },
    setClockOffset: (ms) => fixture.emulator.clock.set(ms),
    close: fixture.close,
  };
}

export function decodeJwt(token: string): {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
} {
  const [h, p] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h!, 'base64url').toString()),
    payload: JSON.parse(Buffer.from(p!, 'base64url').toString()),
  };
}

/**
 * Runs another program (a Microsoft client library's script) with `input` as JSON on stdin and
 * parses its stdout as JSON; asynchronous, because the emulator answers from this same process.
 */
export async function runJsonChild<T>(
  command: string,
  args: string[],
  input: unknown,
  env: NodeJS.ProcessEnv,
): Promise<T> {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: 30_000, env });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.end(JSON.stringify(input));
  const status = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (status !== 0) throw new Error(`${args.at(-1) ?? command} exited ${status}: ${stderr}`);
  return JSON.parse(stdout) as T;
}
