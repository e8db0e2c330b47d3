/**
 * Real local servers for tests: an HTTPS server with a certificate from a throwaway
 * development CA, and a small token endpoint that verifies the client assertion's signature
 * against a certificate it was given (enough to test the client side before/without the
 * full emulator; the emulator tests use tools/entra-emulator).
 */
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPublicKey, createVerify, constants } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { DevelopmentCa, type ParsedCertificate } from '@certflow/certs';

export type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void | Promise<void>;

export interface TestServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export function tempDir(prefix = 'partner-client-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

async function listen(server: HttpsServer | HttpServer, protocol: 'https' | 'http'): Promise<TestServer> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const host = protocol === 'https' ? 'localhost' : '127.0.0.1';
  return {
    url: `${protocol}://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function withBody(handler: Handler) {
  return (req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      Promise.resolve(handler(req, body, res)).catch((err: Error) => {
        res.writeHead(500).end(err.message);
      });
    });
  };
}

export async function startHttpsServer(ca: DevelopmentCa, handler: Handler): Promise<TestServer> {
  const { certificatePem, privateKeyPem } = ca.issueServerCertificate();
  return listen(createHttpsServer({ cert: certificatePem, key: privateKeyPem }, withBody(handler)), 'https');
}

export async function startHttpServer(handler: Handler): Promise<TestServer> {
  return listen(createHttpServer(withBody(handler)), 'http');
}

export function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res
    .writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers })
    .end(JSON.stringify(body));
}

/** A fake access token (a JWT with a junk signature; the client only decodes it). */
export function fakeJwt(claims: Record<string, unknown>): string {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${part({ typ: 'JWT', alg: 'RS256', kid: 'test' })}.${part(claims)}.c2lnbmF0dXJl`;
}

export interface StubAuthority extends TestServer {
  tenantId: string;
  tokenRequests: number;
  /** Verified assertion headers, in order. */
  assertions: Record<string, unknown>[];
  /** Replace what the token endpoint answers after verifying the assertion (status 0: back to normal). */
  respond: (status: number, body: Record<string, unknown>) => void;
  delayMs: number;
}

/**
 * A token endpoint at /{tenant}/oauth2/v2.0/token that checks the PS256 assertion against
 * `registered` (signature, x5t#S256, aud, iss = sub = client id) and answers like Entra.
 */
export async function startStubAuthority(
  ca: DevelopmentCa,
  opts: { tenantId: string; clientId: string; registered: ParsedCertificate },
): Promise<StubAuthority> {
  let reply: { status: number; body: Record<string, unknown> } | undefined;
  const state = { tokenRequests: 0, assertions: [] as Record<string, unknown>[], delayMs: 0 };
  let url = '';
  const server = await startHttpsServer(ca, async (req, body, res) => {
    if (req.method !== 'POST' || !req.url?.startsWith(`/${opts.tenantId}/oauth2/v2.0/token`))
      return json(res, 404, { error: 'not_found' });
    state.tokenRequests += 1;
    if (state.delayMs) await new Promise((r) => setTimeout(r, state.delayMs));
    const form = new URLSearchParams(body);
    const assertion = form.get('client_assertion') ?? '';
    const [h, p, s] = assertion.split('.');
    const header = JSON.parse(Buffer.from(h ?? '', 'base64url').toString()) as Record<string, unknown>;
    const claims = JSON.parse(Buffer.from(p ?? '', 'base64url').toString()) as Record<string, unknown>;
    state.assertions.push(header);
    const fail = (code: number, text: string) =>
      json(res, 401, {
        error: 'invalid_client',
        error_description: `AADSTS${code}: ${text}`,
        error_codes: [code],
      });
    if (header['x5t#S256'] !== opts.registered.thumbprints.sha256Base64Url) {
      return fail(700027, `Client assertion failed signature validation. [Reason - The key was not found.]`);
    }
    const ok = createVerify('RSA-SHA256')
      .update(`${h}.${p}`)
      .verify(
        {
          key: createPublicKey(opts.registered.pem),
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
        },
        Buffer.from(s ?? '', 'base64url'),
      );
    if (!ok) return fail(700027, 'Client assertion failed signature validation.');
    if (claims.aud !== `${url}/${opts.tenantId}/oauth2/v2.0/token`)
      return fail(700023, `wrong audience ${String(claims.aud)}`);
    if (claims.iss !== opts.clientId || claims.sub !== opts.clientId) return fail(50048, 'iss/sub');
    if (reply) return json(res, reply.status, reply.body);
    const now = Math.floor(Date.now() / 1000);
    json(res, 200, {
      token_type: 'Bearer',
      expires_in: 3600,
      ext_expires_in: 3600,
      access_token: fakeJwt({
        aud: 'api',
        azp: opts.clientId,
        iat: now,
        exp: now + 3600,
        roles: ['Orders.Read'],
        n: state.tokenRequests,
      }),
    });
  });
  url = server.url;
  return {
    url: server.url,
    port: server.port,
    close: server.close,
    tenantId: opts.tenantId,
    get tokenRequests() {
      return state.tokenRequests;
    },
    get assertions() {
      return state.assertions;
    },
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(v: number) {
      state.delayMs = v;
    },
    respond: (status: number, body: Record<string, unknown>) => {
      reply = status === 0 ? undefined : { status, body };
    },
  };
}

/** The error a promise rejects with; fails the test if it resolves. */
export async function rejectionOf<E = Error>(pending: Promise<unknown>): Promise<E> {
  try {
    await pending;
  } catch (err) {
    return err as E;
  }
  throw new Error('expected the promise to reject');
}
