/**
 * Real servers for the gateway's tests: a tiny HTTPS OpenID Connect issuer (discovery + JWKS,
 * Entra-shaped URLs, keys from real RSA key pairs) that signs tokens with jose, a plain HTTP
 * upstream that echoes what it received, and an HTTPS client that trusts the development CA.
 */
import { createSelfSignedCertificate, DevelopmentCa } from '@certflow/certs';
import { importPKCS8, JWK, JWTPayload, SignJWT } from 'jose';
import { createHash, createPublicKey, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import {
  createServer as createHttpServer,
  IncomingHttpHeaders,
  IncomingMessage,
  OutgoingHttpHeaders,
  ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { GatewayOptions } from './gateway';

export function tempStateDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'local-gateway-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface SigningKey {
  kid: string;
  privateKeyPem: string;
  publicJwk: JWK;
}

export function newSigningKey(kid = randomUUID()): SigningKey {
  const { privateKeyPem, certificatePem } = createSelfSignedCertificate({
    commonName: `test signing key ${kid}`,
  });
  const der = Buffer.from(certificatePem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const jwk = createPublicKey(privateKeyPem).export({ format: 'jwk' }) as JWK;
  const x5t = createHash('sha1').update(der).digest('base64url');
  return { kid, privateKeyPem, publicJwk: { ...jwk, kid, use: 'sig', x5t, x5c: [der.toString('base64')] } };
}

export interface TestIssuer {
  url: string;
  tenantId: string;
  /** `https://localhost:P/<tid>/v2.0` */
  issuer: string;
  /** The issuer of its v1 document (`/<tid>/.well-known/openid-configuration`), Entra's `https://sts.windows.net/<tid>/`. */
  v1Issuer: string;
  openIdConfigurationUrl: string;
  caPem: string;
  keys: SigningKey[];
  counts: { metadata: number; jwks: number };
  /** Publishes a new key (rotation) and returns it. */
  addKey(): SigningKey;
  removeKey(kid: string): void;
  sign(
    claims: JWTPayload,
    opts?: { key?: SigningKey; alg?: string; header?: Record<string, unknown> },
  ): Promise<string>;
  close(): Promise<void>;
}

export async function startTestIssuer(stateDir: string): Promise<TestIssuer> {
  const ca = DevelopmentCa.loadOrCreate(stateDir);
  const tls = ca.issueServerCertificate();
  const tenantId = randomUUID();
  const v1Issuer = `https://sts.windows.net/${tenantId}/`;
  const keys: SigningKey[] = [newSigningKey()];
  const counts = { metadata: 0, jwks: 0 };
  let base = '';
  const server = createHttpsServer({ cert: tls.certificatePem, key: tls.privateKeyPem }, (req, res) => {
    const send = (body: unknown): void => {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=86400, private' });
      res.end(JSON.stringify(body));
    };
    // Like Entra, a v2.0 and a v1 document, each with its own issuer, over the same keys.
    const metadata = [
      {
        path: `/${tenantId}/v2.0`,
        keys: `/${tenantId}/discovery/v2.0/keys`,
        token: `/${tenantId}/oauth2/v2.0/token`,
        issuer: `${base}/${tenantId}/v2.0`,
      },
      {
        path: `/${tenantId}`,
        keys: `/${tenantId}/discovery/keys`,
        token: `/${tenantId}/oauth2/token`,
        issuer: v1Issuer,
      },
    ];
    const document = metadata.find((d) => req.url === `${d.path}/.well-known/openid-configuration`);
    const keySet = metadata.find((d) => req.url === d.keys);
    if (document) {
      counts.metadata++;
      send({
        issuer: document.issuer,
        jwks_uri: `${base}${document.keys}`,
        token_endpoint: `${base}${document.token}`,
        id_token_signing_alg_values_supported: ['RS256'],
      });
    } else if (keySet) {
      counts.jwks++;
      send({ keys: keys.map((k) => ({ ...k.publicJwk, issuer: keySet.issuer })) });
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  base = `https://localhost:${port}`;
  const issuer = `${base}/${tenantId}/v2.0`;
  return {
    url: base,
    tenantId,
    issuer,
    v1Issuer,
    openIdConfigurationUrl: `${issuer}/.well-known/openid-configuration`,
    caPem: ca.certificatePem,
    keys,
    counts,
    addKey() {
      const key = newSigningKey();
      keys.push(key);
      return key;
    },
    removeKey(kid) {
      const i = keys.findIndex((k) => k.kid === kid);
      if (i >= 0) keys.splice(i, 1);
    },
    async sign(claims, opts = {}) {
      const key = opts.key ?? keys[0]!;
      const alg = opts.alg ?? 'RS256';
      return new SignJWT(claims)
        .setProtectedHeader({ typ: 'JWT', alg, kid: key.kid, ...opts.header })
        .sign(await importPKCS8(key.privateKeyPem, alg));
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Claims of a v2 Entra app-only access token for `aud`, valid for an hour from now. */
export function accessTokenClaims(issuer: TestIssuer, aud: string, overrides: JWTPayload = {}): JWTPayload {
  const now = Math.floor(Date.now() / 1000);
  const partner = randomUUID();
  return {
    aud,
    iss: issuer.issuer,
    iat: now,
    nbf: now,
    exp: now + 3600,
    azp: randomUUID(),
    azpacr: '2',
    idtyp: 'app',
    oid: partner,
    sub: partner,
    tid: issuer.tenantId,
    roles: ['Orders.Read'],
    uti: randomUUID(),
    ver: '2.0',
    ...overrides,
  };
}

export interface EchoedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface EchoUpstream {
  url: string;
  received: EchoedRequest[];
  close(): Promise<void>;
}

/** A plain HTTP backend answering 200 with JSON describing the request it got. */
export async function startEchoUpstream(): Promise<EchoUpstream> {
  const received: EchoedRequest[] = [];
  const server = createHttpServer((req, res) => {
    req.on('error', () => undefined); // the gateway may abort a forwarded request
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const echoed = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      received.push(echoed);
      const body = JSON.stringify(echoed);
      res.writeHead(200, {
        'content-type': 'application/json',
        'x-upstream': 'echo',
        connection: 'keep-alive',
      });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export interface TestResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json(): unknown;
}

/** An HTTPS request that trusts only `caPem`; `body` may be a string or an array of chunks (sent chunked). */
export function httpsCall(
  url: string,
  opts: { caPem: string; method?: string; headers?: OutgoingHttpHeaders; body?: string | string[] },
): Promise<TestResponse> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      { method: opts.method ?? 'GET', headers: opts.headers, ca: opts.caPem, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
        });
      },
    );
    req.on('error', reject);
    if (Array.isArray(opts.body)) for (const chunk of opts.body) req.write(chunk);
    else if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** apps/api/apim/policy.xml: the policy the stack runs. */
export const REAL_POLICY = resolve(__dirname, '../../../apps/api/apim/policy.xml');

/** Gateway options for the real policy against a test issuer: its four named values, the issuer's CA. */
export function realPolicyOptions(
  stateDir: string,
  issuer: TestIssuer,
  apiAppId: string,
  backendUrl: string,
): GatewayOptions {
  return {
    stateDir,
    policyFile: REAL_POLICY,
    namedValues: {
      'entra-instance': issuer.url,
      'tenant-id': issuer.tenantId,
      'api-app-id': apiAppId,
      'api-app-id-uri': 'api://certflow-orders',
    },
    backendUrl,
    trustedCaPem: issuer.caPem,
  };
}

export interface TlsSession {
  socket: TLSSocket;
  /** Everything received so far, as latin1 text. */
  text(): string;
  /** Resolves when the connection has closed. */
  closed: Promise<void>;
}

/** A raw TLS connection to 127.0.0.1:port (trusting only `caPem`) for hand-written bytes. */
export function tlsSession(port: number, caPem: string): Promise<TlsSession> {
  return new Promise((ready, fail) => {
    let received = '';
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: caPem }, () =>
      ready({ socket, text: () => received, closed }),
    );
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    socket.once('error', fail);
  });
}

export interface RecordingBackend {
  url: string;
  /** Every request the backend received, with the trace id the gateway gave it. */
  received: Array<{ method: string; url: string; traceId: string }>;
  /** Connections the gateway opened to it: open now, and the most open at once. */
  connections: { open: number; maxOpen: number };
  /** Answers the requests to `/hold…` (those whose URL starts with `prefix`), which wait until then. */
  releaseHeld(prefix?: string): void;
  /** Requests whose connection the gateway closed before they were answered (cancelled). */
  cancelled: string[];
  close(): Promise<void>;
}

/** A plain HTTP backend that records requests and connections; `/hold…` paths wait for `releaseHeld()`. */
export async function startRecordingBackend(): Promise<RecordingBackend> {
  const received: RecordingBackend['received'] = [];
  const connections = { open: 0, maxOpen: 0 };
  const cancelled: string[] = [];
  let held: Array<{ url: string; res: ServerResponse }> = [];
  const server = createHttpServer((req: IncomingMessage, res) => {
    req.resume();
    req.on('end', () => {
      received.push({
        method: req.method ?? '',
        url: req.url ?? '',
        traceId: String(req.headers['x-appgw-trace-id']),
      });
      if (req.url?.startsWith('/hold')) {
        held.push({ url: req.url, res });
        res.once('close', () => {
          if (!res.writableFinished) cancelled.push(req.url!);
        });
      } else res.writeHead(200, { 'content-type': 'application/json' }).end('[]');
    });
  });
  server.on('connection', (socket: Socket) => {
    connections.open++;
    connections.maxOpen = Math.max(connections.maxOpen, connections.open);
    socket.on('close', () => connections.open--);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    connections,
    cancelled,
    releaseHeld: (prefix = '/hold') => {
      for (const { url, res } of held)
        if (url.startsWith(prefix) && !res.destroyed) res.writeHead(200).end('released');
      held = held.filter(({ url }) => !url.startsWith(prefix));
    },
    close: () =>
      new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      }),
  };
}
