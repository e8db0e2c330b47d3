/**
 * The local gateway: Application Gateway (TLS termination, request body limit, forwarding
 * headers) and API Management (the policy file's inbound → backend → outbound, on-error)
 * in one HTTPS server.
 *
 *   const gateway = await startGateway({ stateDir, policyFile, namedValues, backendUrl, trustedCaPem });
 *   // gateway.url === 'https://localhost:PORT'
 *
 * Health: `GET /status-0123456789abcdef` answers 200 without running any policy (as APIM's).
 */
import { Agent, IncomingMessage, ServerResponse } from 'node:http';
import { createServer, Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream';
import { DevelopmentCa } from '@certflow/certs';
import { AccessLogEntry, AccessLogSink, pathOnly, PolicyOutcome, stdoutAccessLog } from './access-log';
import { ApimError, apimErrorBody, sendApimError } from './apim-errors';
import { MetadataCacheTimings, OpenIdMetadataCache } from './openid-metadata-cache';
import type { GatewayResponse, PolicyContext, PolicyStatement } from './policy-context';
import { loadPolicyDocument, PolicyDocument } from './policy-document';
import { MemoryRateLimitStore, RateLimitStore, RedisRateLimitStore } from './rate-limit-store';
import { backendRequestHeaders, clientIpOf, clientResponseHeaders, forwardRequest, ProxyFailure } from './proxy';

export const HEALTH_PATH = '/status-0123456789abcdef';
export const DEFAULT_MAX_REQUEST_BODY_BYTES = 2 * 1024 * 1024;

export interface GatewayOptions {
  /** State directory holding the development CA (`<stateDir>/ca`), created if missing. */
  stateDir: string;
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** APIM policy XML, e.g. apps/api/apim/policy.xml. */
  policyFile: string;
  /** `{{name}}` substitutions for the policy file. */
  namedValues?: Readonly<Record<string, string>>;
  /** The API, e.g. http://127.0.0.1:3000 (plain HTTP: TLS ends at the gateway). */
  backendUrl: string;
  /** Extra CA (PEM) trusted when fetching openid-config and JWKS over HTTPS. */
  trustedCaPem?: string;
  /** Request body limit (Application Gateway WAF v2 with CRS 3.2: 2 MB); larger → 413. */
  maxRequestBodyBytes?: number;
  /** Where access log lines go: default one JSON line per request on stdout; `false` for none. */
  accessLog?: AccessLogSink | false;
  /** Clock in ms, for tests (token lifetimes and the metadata cache use it). */
  now?: () => number;
  /** Metadata cache intervals, for tests; defaults to APIM's 1 hour / 5 minutes. */
  metadataTimings?: MetadataCacheTimings;
  /**
   * Redis for rate-limit-by-key counters (e.g. `redis://127.0.0.1:6379`), shared by every
   * gateway using it; default: in-process memory. Unreachable at start → startGateway rejects;
   * unreachable later → fail-open (requests pass, a warning on stderr), see rate-limit-store.ts.
   */
  redisUrl?: string;
}

export interface RunningGateway {
  /** `https://localhost:PORT` */
  url: string;
  port: number;
  policyFile: string;
  close(): Promise<void>;
}

export async function startGateway(opts: GatewayOptions): Promise<RunningGateway> {
  const backend = parseBackendUrl(opts.backendUrl);
  const maxBodyBytes = opts.maxRequestBodyBytes ?? DEFAULT_MAX_REQUEST_BODY_BYTES;
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 0) throw new TypeError(`maxRequestBodyBytes must be a non-negative integer, got ${maxBodyBytes}`);
  const now = opts.now ?? Date.now;
  const caches = new Map<string, OpenIdMetadataCache>();
  const rateLimitStore: RateLimitStore = opts.redisUrl ? await RedisRateLimitStore.connect(opts.redisUrl) : new MemoryRateLimitStore();
  let lastStoreWarning = -Infinity;
  let policy: PolicyDocument;
  try {
    policy = loadPolicyDocument(opts.policyFile, {
    rateLimitStore,
    onRateLimitStoreUnavailable: (err) => {
      if (performance.now() - lastStoreWarning < 30_000) return;
      lastStoreWarning = performance.now();
      process.stderr.write(`local-gateway: rate-limit-by-key lets requests through (fail-open): ${err.message}\n`);
    },
    namedValues: opts.namedValues ?? {},
    metadataCache: (url) => {
      let cache = caches.get(url);
      if (!cache) {
        cache = new OpenIdMetadataCache(url, {
          now,
          ...(opts.trustedCaPem ? { trustedCaPem: opts.trustedCaPem } : {}),
          ...(opts.metadataTimings ? { timings: opts.metadataTimings } : {}),
        });
        caches.set(url, cache);
      }
      return cache;
    },
    });
  } catch (err) {
    await rateLimitStore.close();
    throw err;
  }

  const ca = DevelopmentCa.loadOrCreate(opts.stateDir);
  const tls = ca.issueServerCertificate();
  const agent = new Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, scheduling: 'lifo' });
  const log = opts.accessLog === false ? undefined : (opts.accessLog ?? stdoutAccessLog);

  let port = 0;
  const server: Server = createServer({ cert: tls.certificatePem, key: tls.privateKeyPem, minVersion: 'TLSv1.2' }, (req, res) => {
    handleRequest(req, res, { policy, backend, agent, maxBodyBytes, now, port, log }).catch((err: unknown) => {
      process.stderr.write(`local-gateway: internal error: ${(err as Error).stack ?? String(err)}\n`);
      sendApimError(res, 500, 'Internal server error.');
    });
  });
  server.keepAliveTimeout = 30_000;
  server.on('clientError', (_err, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;

  let closing: Promise<void> | undefined;
  return {
    url: `https://localhost:${port}`,
    port,
    policyFile: opts.policyFile,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        agent.destroy();
      }).then(() => rateLimitStore.close())),
  };
}

function parseBackendUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`backendUrl '${value}' is not a valid URL`);
  }
  if (url.protocol !== 'http:') throw new TypeError(`backendUrl '${value}' must be an http:// URL (TLS ends at the gateway)`);
  if (url.search || url.hash) throw new TypeError(`backendUrl '${value}' must not have a query string or fragment`);
  return url;
}

interface HandlerDeps {
  policy: PolicyDocument;
  backend: URL;
  agent: Agent;
  maxBodyBytes: number;
  now: () => number;
  port: number;
  log: AccessLogSink | undefined;
}

async function runSection(statements: readonly PolicyStatement[], ctx: PolicyContext): Promise<void> {
  for (const statement of statements) {
    await statement.execute(ctx);
    if (ctx.returned) return;
  }
}

function sendResponse(res: ServerResponse, response: GatewayResponse): void {
  if (res.headersSent || res.destroyed) return;
  const body = response.body ?? '';
  const headers = { ...response.headers, 'content-length': Buffer.byteLength(body) };
  if (response.reason) res.writeHead(response.statusCode, response.reason, headers);
  else res.writeHead(response.statusCode, headers);
  res.end(body);
}

async function handleRequest(req: IncomingMessage, res: ServerResponse, deps: HandlerDeps): Promise<void> {
  const started = performance.now();
  let outcome: PolicyOutcome = 'forwarded';
  let error: ApimError | undefined;
  req.on('error', () => undefined); // a client reset must not become an uncaught error
  res.on('error', () => undefined);
  res.on('close', () => {
    if (!deps.log) return;
    const entry: AccessLogEntry = {
      event: 'request',
      time: new Date().toISOString(),
      method: req.method ?? '',
      path: pathOnly(req.url),
      status: res.statusCode,
      durationMs: Math.round((performance.now() - started) * 10) / 10,
      policy: outcome,
      ...(error ? { errorSource: error.source, errorReason: error.reason } : {}),
      ...(res.writableFinished ? {} : { aborted: true }),
    };
    deps.log(entry);
  });

  if ((req.method === 'GET' || req.method === 'HEAD') && pathOnly(req.url) === HEALTH_PATH) {
    outcome = 'none';
    res.writeHead(200, { 'content-length': 0 });
    res.end();
    return;
  }

  const declaredLength = Number(req.headers['content-length'] ?? 0);
  if (declaredLength > deps.maxBodyBytes) {
    outcome = 'gateway-error';
    error = new ApimError(413, `The request body is larger than the limit of ${deps.maxBodyBytes} bytes.`, 'gateway', 'RequestEntityTooLarge');
    res.shouldKeepAlive = false;
    sendApimError(res, 413, error.message, { connection: 'close' });
    req.resume();
    return;
  }

  const url = req.url ?? '/';
  const ctx: PolicyContext = {
    section: 'inbound',
    request: {
      method: req.method ?? 'GET',
      url,
      query: new URL(url, 'https://gateway.invalid').searchParams,
      headers: backendRequestHeaders(req, deps.port),
      clientIp: clientIpOf(req),
    },
    response: undefined,
    variables: new Map(),
    lastError: undefined,
    returned: false,
    now: deps.now,
    responseHeaders: {},
    afterResponse: [],
  };

  try {
    await runSection(deps.policy.inbound, ctx);
    if (ctx.returned) {
      outcome = 'returned';
      ctx.response ??= { statusCode: 200, headers: {} };
      await finishResponse(ctx);
      sendResponse(res, ctx.response);
      return;
    }
    if (res.destroyed) return; // the client left while the policy ran

    ctx.section = 'backend';
    let upstream: IncomingMessage;
    try {
      upstream = await forwardRequest({ req, backend: deps.backend, agent: deps.agent, headers: ctx.request.headers, maxBodyBytes: deps.maxBodyBytes, timeoutMs: deps.policy.backend.timeoutMs });
    } catch (err) {
      if (!(err instanceof ProxyFailure)) throw err;
      outcome = 'gateway-error';
      if (err.kind === 'client-aborted') return;
      if (err.kind === 'body-too-large') {
        error = new ApimError(413, err.message, 'gateway', 'RequestEntityTooLarge');
        res.shouldKeepAlive = false;
        sendApimError(res, 413, err.message, { connection: 'close' });
        return;
      }
      throw err.kind === 'timeout'
        ? new ApimError(504, err.message, 'forward-request', 'Timeout')
        : new ApimError(502, err.message, 'forward-request', 'BackendConnectionFailure');
    }

    ctx.section = 'outbound';
    ctx.response = { statusCode: upstream.statusCode ?? 502, headers: clientResponseHeaders(upstream) };
    if (upstream.statusMessage) ctx.response.reason = upstream.statusMessage;
    await runSection(deps.policy.outbound, ctx);
    await finishResponse(ctx);
    if (ctx.returned) {
      outcome = 'returned';
      upstream.resume();
      sendResponse(res, ctx.response);
      return;
    }
    if (res.destroyed) {
      upstream.destroy();
      return;
    }
    res.writeHead(ctx.response.statusCode, ctx.response.headers);
    pipeline(upstream, res, () => undefined); // errors on either side end both streams
  } catch (err) {
    if (!(err instanceof ApimError)) throw err;
    if (outcome === 'forwarded') outcome = 'rejected';
    error = err;
    await runOnError(err, ctx, deps.policy.onError);
    if (ctx.returned) outcome = 'returned';
    try {
      await finishResponse(ctx);
    } catch (inner) {
      process.stderr.write(`local-gateway: error after on-error: ${(inner as Error).message}\n`);
    }
    sendResponse(res, ctx.response!);
  }
}

/** Runs the deferred work that needs the response (rate-limit increment-condition), then adds policy response headers. */
async function finishResponse(ctx: PolicyContext): Promise<void> {
  const pending = ctx.afterResponse?.splice(0) ?? [];
  for (const work of pending) await work(ctx);
  if (ctx.response && ctx.responseHeaders) {
    for (const [name, value] of Object.entries(ctx.responseHeaders)) ctx.response.headers[name] ??= value;
  }
}

async function runOnError(err: ApimError, ctx: PolicyContext, onError: readonly PolicyStatement[]): Promise<void> {
  ctx.section = 'on-error';
  ctx.lastError = err;
  ctx.returned = false;
  ctx.response = {
    statusCode: err.statusCode,
    headers: { 'content-type': 'application/json; charset=utf-8' },
    body: apimErrorBody(err.statusCode, err.message),
  };
  try {
    await runSection(onError, ctx);
  } catch (inner) {
    // An error inside on-error: APIM answers with what it has; keep the original error response.
    process.stderr.write(`local-gateway: error in on-error section: ${(inner as Error).message}\n`);
  }
}
