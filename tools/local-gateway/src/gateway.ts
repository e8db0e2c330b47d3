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
import { operationApplies, templatePattern } from './operation-route';
import { Agent, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { createServer, Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { DevelopmentCa } from '@certflow/certs';
import { systemClock, type Clock } from '@certflow/clock';
import {
  continueTrace,
  PROMETHEUS_CONTENT_TYPE,
  startTrace,
  type TraceContext,
} from '@certflow/observability';
import {
  checkRequest,
  GuardDecision,
  GuardOptions,
  isLoopbackAddress,
  loopbackGuard,
  parseAllowedHosts,
} from '@certflow/loopback-guard';
import { AccessLogEntry, AccessLogSink, PolicyOutcome, stdoutAccessLog } from './access-log';
import { answerAndClose, answerFor, failRequestInProgress } from './client-errors';
import { ApimError, apimErrorBody, sendApimError } from './apim-errors';
import { MetadataCacheTimings, OpenIdMetadataCache } from './openid-metadata-cache';
import type {
  ClientCertificateInfo,
  GatewayRequest,
  GatewayResponse,
  PolicyContext,
  PolicyStatement,
} from './policy-context';
import { loadPolicyDocument, PolicyDocument, PolicyLoadOptions } from './policy-document';
import {
  ClientCertificateOptions,
  clientCertificateHeaders,
  PeerCertificate,
  peerCertificateOf,
} from './client-certificate';
import { SubscriptionKeyOptions, SubscriptionKeys } from './subscription-keys';
import { GatewayMetrics } from './metrics';
import { MemoryRateLimitStore, RateLimitStore, RedisRateLimitStore } from './rate-limit-store';
import {
  backendRequestHeaders,
  clientIpOf,
  clientResponseHeaders,
  connectionTokens,
  forwardRequest,
  ProxyFailure,
} from './proxy';
import {
  BodyFailure,
  BodyMemoryBudget,
  DEFAULT_BODY_MEMORY_BYTES,
  DEFAULT_BODY_TIMEOUT_MS,
  hasBody,
  NO_BODY,
  readBody,
  ReadBody,
  ReadBodyOptions,
} from './request-body';
import { DEFAULT_MAX_URL_BYTES, parseRequestTarget } from './request-target';

const ignore = (): void => undefined;

let isoMs = 0;
let isoText = '';
/** The current time as ISO 8601, formatted once per millisecond (the access log asks for it on every request). */
function isoNow(): string {
  const ms = Date.now();
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}

export const HEALTH_PATH = '/status-0123456789abcdef';
export const DEFAULT_MAX_REQUEST_BODY_BYTES = 2 * 1024 * 1024;
export const DEFAULT_HEADER_TIMEOUT_MS = 10_000;
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** Used when the policy's forward-request sets no `timeout` (APIM's own default, 300 s, is long for a local edge). */
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 60_000;
export const DEFAULT_MAX_BACKEND_CONNECTIONS = 256;
export { DEFAULT_BODY_MEMORY_BYTES, DEFAULT_BODY_TIMEOUT_MS, DEFAULT_MAX_URL_BYTES };

export interface GatewayOptions {
  /** State directory holding the development CA (`<stateDir>/ca`), created if missing. */
  stateDir: string;
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** APIM policy XML at API scope, e.g. apps/api/apim/policy.xml. */
  policyFile: string;
  /** Global-scope policy XML (APIM's "All APIs"); the API file's `<base />` inherits from it. */
  globalPolicyFile?: string;
  /** Operation-scope policy files; their `<base />` inherits from the API file. First match wins. */
  operations?: readonly OperationPolicy[];
  /** `{{name}}` substitutions for the policy file. */
  namedValues?: Readonly<Record<string, string>>;
  /** The API, e.g. http://127.0.0.1:3000 (plain HTTP: TLS ends at the gateway). */
  backendUrl: string;
  /** Extra CA (PEM) trusted when fetching openid-config and JWKS over HTTPS. */
  trustedCaPem?: string;
  /** Request body limit (Application Gateway WAF v2 with CRS 3.2: 2 MB); larger → 413. */
  maxRequestBodyBytes?: number;
  /**
   * Where access log entries go: default one JSON line per request on stdout, written in batches
   * (access-log.ts; `fileAccessLog` and `bufferedAccessLog` make other batched sinks); `false` for none.
   */
  accessLog?: AccessLogSink | false;
  /**
   * The time token lifetimes, client certificate validity, rate-limit windows and the metadata
   * cache are judged by (default: the real time). The CLI passes the process's clock
   * (CERTFLOW_CLOCK_OFFSET / CERTFLOW_CLOCK_FILE), so a shifted stack's gateway agrees with its
   * emulator about which tokens have expired.
   */
  clock?: Clock;
  /** Metadata cache intervals, for tests; defaults to APIM's 1 hour / 5 minutes. */
  metadataTimings?: MetadataCacheTimings;
  /**
   * Verified tokens remembered per validate-jwt / validate-azure-ad-token instance, so a token
   * seen before skips the signature check (lifetime is still checked each request; a change of
   * signing keys forgets them). Default 10,000; 0 turns the cache off.
   */
  verifiedTokenCacheSize?: number;
  /**
   * Redis for rate-limit-by-key counters (e.g. `redis://127.0.0.1:6379`), shared by every
   * gateway using it; default: in-process memory. Unreachable at start → startGateway rejects;
   * unreachable later → fail-open (requests pass, a warning on stderr), see rate-limit-store.ts.
   */
  redisUrl?: string;
  /**
   * Application Gateway mTLS: ask for a client certificate, verify it against these CAs and
   * forward it as X-Client-Cert-* headers (see client-certificate.ts). Default: no mTLS.
   */
  clientCertificates?: ClientCertificateOptions;
  /** Entra ID instance for validate-azure-ad-token (its openid-config); default https://login.microsoftonline.com. */
  entraInstance?: string;
  /** Path of the Prometheus endpoint (default `/metrics`, answered without policies); `false` to turn it off. */
  metricsPath?: string | false;
  /** APIM subscription keys for this API (opt-in): `Ocp-Apim-Subscription-Key` / `subscription-key`. */
  subscriptionKeys?: SubscriptionKeyOptions;
  /** The request line and headers must arrive within this time (default 10 s), else 408. */
  headerTimeoutMs?: number;
  /** The whole body must arrive within this time after the policies admitted it (default 10 s), else 408. */
  bodyTimeoutMs?: number;
  /** Memory for all request bodies being read at once (default 64 MiB); past it 503 with Retry-After. */
  bodyMemoryBytes?: number;
  /** An idle keep-alive connection is closed after this time (default 5 s). */
  keepAliveTimeoutMs?: number;
  /**
   * Backend deadline when the policy's forward-request has no `timeout` (default 60 s): the
   * longest the backend connection may stay silent, before the response head or within the body.
   */
  upstreamTimeoutMs?: number;
  /** Connections to the backend at most (default 256); a request waiting for one counts towards its backend deadline. */
  maxBackendConnections?: number;
  /** Longest request target (default 8 KiB); longer → 414. The whole header block is limited to 16 KiB (431). */
  maxUrlBytes?: number;
  /**
   * Host names the gateway answers to besides localhost, 127.0.0.1 and [::1]. Bound to loopback
   * (the default), any other Host gets 421 and a cross-site Origin 403 (DNS rebinding); bound
   * to another address, Host names are checked only when this is set.
   */
  allowedHosts?: readonly string[];
}

export interface OperationPolicy {
  /** HTTP method, or `*` for any. */
  method: string;
  /** APIM URL template, e.g. `/orders/{id}` (matched against the request path, query ignored). */
  urlTemplate: string;
  policyFile: string;
}

interface CompiledOperation {
  route: string;
  method: string;
  pattern: RegExp;
  policy: PolicyDocument;
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
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 0)
    throw new TypeError(`maxRequestBodyBytes must be a non-negative integer, got ${maxBodyBytes}`);
  const clock = opts.clock ?? systemClock;
  const now = () => clock.nowMs();
  const positive = (name: keyof GatewayOptions, fallback: number): number => {
    const value = opts[name] ?? fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1)
      throw new TypeError(`${name} must be a positive integer, got ${String(value)}`);
    return value;
  };
  const headerTimeoutMs = positive('headerTimeoutMs', DEFAULT_HEADER_TIMEOUT_MS);
  const bodyTimeoutMs = positive('bodyTimeoutMs', DEFAULT_BODY_TIMEOUT_MS);
  const keepAliveTimeoutMs = positive('keepAliveTimeoutMs', DEFAULT_KEEP_ALIVE_TIMEOUT_MS);
  const upstreamTimeoutMs = positive('upstreamTimeoutMs', DEFAULT_UPSTREAM_TIMEOUT_MS);
  const bodyMemoryBytes = positive('bodyMemoryBytes', DEFAULT_BODY_MEMORY_BYTES);
  const maxUrlBytes = positive('maxUrlBytes', DEFAULT_MAX_URL_BYTES);
  const maxBackendConnections = positive('maxBackendConnections', DEFAULT_MAX_BACKEND_CONNECTIONS);
  const host = opts.host ?? '127.0.0.1';
  const allowedHosts = parseAllowedHosts(opts.allowedHosts ?? []);
  const mtls = opts.clientCertificates;
  if (mtls && !mtls.trustedCaPem.includes('-----BEGIN CERTIFICATE-----'))
    throw new TypeError('clientCertificates.trustedCaPem must contain PEM certificates');
  if (mtls?.mode !== undefined && mtls.mode !== 'strict' && mtls.mode !== 'passthrough')
    throw new TypeError(`clientCertificates.mode must be strict or passthrough, got '${String(mtls.mode)}'`);
  const subscriptionKeys = opts.subscriptionKeys ? new SubscriptionKeys(opts.subscriptionKeys) : undefined;
  const caches = new Map<string, OpenIdMetadataCache>();
  const rateLimitStore: RateLimitStore = opts.redisUrl
    ? await RedisRateLimitStore.connect(opts.redisUrl)
    : new MemoryRateLimitStore();
  let lastStoreWarning = -Infinity;
  const metrics = new GatewayMetrics();
  const metricsPath = opts.metricsPath === undefined ? '/metrics' : opts.metricsPath;
  if (metricsPath !== false && !metricsPath.startsWith('/'))
    throw new TypeError(`metricsPath must start with /, got '${metricsPath}'`);
  let policy: PolicyDocument;
  let operations: CompiledOperation[];
  let tls: { certificatePem: string; privateKeyPem: string };
  try {
    const loadOpts: PolicyLoadOptions = {
      rateLimitStore,
      ...(opts.entraInstance ? { entraInstance: opts.entraInstance } : {}),
      ...(opts.verifiedTokenCacheSize !== undefined
        ? { verifiedTokenCacheSize: opts.verifiedTokenCacheSize }
        : {}),
      onRateLimitStoreUnavailable: (err) => {
        metrics.rateLimitStoreFailure();
        if (performance.now() - lastStoreWarning < 30_000) return;
        lastStoreWarning = performance.now();
        process.stderr.write(
          `local-gateway: rate-limit-by-key lets requests through (fail-open): ${err.message}\n`,
        );
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
    };
    const global = opts.globalPolicyFile ? loadPolicyDocument(opts.globalPolicyFile, loadOpts) : undefined;
    policy = loadPolicyDocument(opts.policyFile, loadOpts, global);
    operations = (opts.operations ?? []).map((op) => ({
      route: `${op.method.toUpperCase()} ${op.urlTemplate}`,
      method: op.method.toUpperCase(),
      pattern: templatePattern(op.urlTemplate),
      policy: loadPolicyDocument(op.policyFile, loadOpts, policy),
    }));
    // After the policy: a policy that does not load fails fast, before a key pair is generated.
    tls = DevelopmentCa.loadOrCreate(opts.stateDir).issueServerCertificate();
  } catch (err) {
    await rateLimitStore.close();
    throw err;
  }

  const agent = new Agent({
    keepAlive: true,
    maxSockets: maxBackendConnections,
    maxFreeSockets: Math.min(64, maxBackendConnections),
    scheduling: 'lifo',
    // Socket inactivity: the backend deadline without a timer per request (forward-request may override).
    timeout: upstreamTimeoutMs,
  });
  const ownLog = opts.accessLog === undefined ? stdoutAccessLog() : undefined;
  const log = opts.accessLog === false ? undefined : (opts.accessLog ?? ownLog!.sink);

  const tlsOptions = {
    cert: tls.certificatePem,
    key: tls.privateKeyPem,
    minVersion: 'TLSv1.2' as const,
    ...(mtls ? { requestCert: true, rejectUnauthorized: false, ca: mtls.trustedCaPem } : {}),
  };
  const clientCertMode = mtls ? (mtls.mode ?? 'strict') : undefined;
  const guardOptions = { scheme: 'https', boundToLoopback: isLoopbackAddress(host), allowedHosts } as const;
  const deps: HandlerDeps = {
    policy,
    operations,
    backend,
    agent,
    body: { maxBytes: maxBodyBytes, timeoutMs: bodyTimeoutMs, budget: new BodyMemoryBudget(bodyMemoryBytes) },
    maxUrlBytes,
    upstreamTimeoutMs,
    now,
    port: 0,
    log,
    clientCertMode,
    subscriptionKeys,
    metrics,
    metricsPath,
    hostGuard: guardOptions,
    checkHostAndOrigin: loopbackGuard(guardOptions),
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse, expectation: Expectation): void => {
    const conn = connectionOf(req.socket);
    // Once the gateway answered "connection: close" (or the client left), nothing more that
    // arrived on the connection is handled: those bytes were never admitted. Node keeps parsing
    // what was sent and keeps every request it parsed until the connection closes, so a client
    // that goes on sending loses the connection at once, answer in flight or not.
    if (conn.closing || req.socket.destroyed) {
      if (++conn.ignored > MAX_PIPELINED) req.socket.destroy();
      return;
    }
    const exchange: Exchange = { aborted: false, failed: undefined, cancel: undefined, expectation };
    const start = (): void => {
      conn.active = exchange;
      handleRequest(req, res, deps, exchange, () => {
        conn.active = undefined;
        if (!res.shouldKeepAlive || !res.writableFinished) conn.closing = true;
        const next = conn.waiting.shift();
        if (!conn.closing) return next?.();
        conn.waiting.length = 0;
        // Requests parsed after the cut-off have answers queued in Node that will never be
        // written: close the connection once what was answered has been sent.
        req.socket.destroySoon();
      }).catch((err: unknown) => {
        process.stderr.write(`local-gateway: internal error: ${(err as Error).stack ?? String(err)}\n`);
        exchange.failed = new ApimError(500, 'Internal server error.', 'gateway', 'InternalError');
        res.shouldKeepAlive = false; // nothing more on this connection: see done()
        sendApimError(res, 500, 'Internal server error.', { connection: 'close' });
      });
    };
    // Pipelined requests are handled one after another: each holds at most one backend
    // connection, and none starts before the answer to the one before it is complete.
    if (!conn.active) return start();
    if (conn.waiting.length < MAX_PIPELINED) return void conn.waiting.push(start);
    // Too deep: this and later requests are not handled, and reading stops (the queue of
    // parsed requests, and Node's own bookkeeping for them, would otherwise grow without bound).
    conn.closing = true;
    req.socket.pause();
  };
  const server: Server = createServer(
    {
      ...tlsOptions,
      // A request without Host is answered by handleRequest, in APIM's shape, not by Node.
      requireHostHeader: false,
      // The TLS handshake gets the same time as the headers (Node's default is 120 s).
      handshakeTimeout: headerTimeoutMs,
      headersTimeout: headerTimeoutMs,
      // Node's whole-request deadline is off: it would also run while a pipelined request waits
      // its turn (its body unread, the client not at fault). The header timeout and the gateway's
      // own body timeout (from when the body is read) bound what a client controls.
      requestTimeout: 0,
      // How often Node checks those deadlines (default 30 s would make them 30 s late).
      connectionsCheckingInterval: Math.min(1_000, headerTimeoutMs),
    },
    (req, res) => onRequest(req, res, 'none'),
  );
  // Node caps the headers it reports at 2,000 and drops the rest silently: a Host or Origin
  // hidden behind 2,000 others would escape the checks. The 16 KiB header block is the limit.
  server.maxHeadersCount = 0;
  server.keepAliveTimeout = keepAliveTimeoutMs;
  /** A request refused before it was parsed has no `traceparent` to continue: its line starts a trace. */
  const logRefused = (
    status: number,
    reason: string,
    method = '',
    trace: TraceContext = startTrace(),
  ): void => {
    metrics.request('refused', method, status, 'gateway-error');
    metrics.policyError('gateway', reason);
    log?.({
      event: 'request',
      time: isoNow(),
      method,
      path: '',
      status,
      durationMs: 0,
      policy: 'gateway-error',
      traceId: trace.traceId,
      spanId: trace.spanId,
      ...(trace.parentSpanId ? { parentSpanId: trace.parentSpanId } : {}),
      errorSource: 'gateway',
      errorReason: reason,
    });
  };
  server.on('clientError', (err: Error & { code?: string }, socket) => {
    const answer = answerFor(err);
    if (failRequestInProgress(socket as Socket, answer)) return;
    if (answer) logRefused(answer.status, answer.reason);
    answerAndClose(socket as Socket, answer);
  });
  // `Expect: 100-continue`: "100 Continue" only once the policies admitted the request, so a
  // client without a valid token is refused before it sends its body.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => onRequest(req, res, 'continue'));
  // Any other expectation would get Node's bare 417, out of turn: answered in turn, like every refusal.
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) =>
    onRequest(req, res, 'unsupported'),
  );
  // CONNECT (a tunnel) is not something a reverse proxy offers: Node hands over the raw socket.
  server.on('connect', (req: IncomingMessage, socket: Socket) => {
    logRefused(405, 'MethodNotAllowed', 'CONNECT', continueTrace(req.headers.traceparent));
    answerAndClose(socket, {
      status: 405,
      reason: 'MethodNotAllowed',
      message: 'CONNECT is not supported by this gateway.',
    });
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    agent.destroy();
    await rateLimitStore.close();
    throw err;
  }
  const port = (server.address() as AddressInfo).port;
  deps.port = port;

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
      })
        .then(() => rateLimitStore.close())
        .then(() => ownLog?.flush())),
  };
}

function parseBackendUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`backendUrl '${value}' is not a valid URL`);
  }
  if (url.protocol !== 'http:')
    throw new TypeError(`backendUrl '${value}' must be an http:// URL (TLS ends at the gateway)`);
  if (url.search || url.hash)
    throw new TypeError(`backendUrl '${value}' must not have a query string or fragment`);
  return url;
}

interface HandlerDeps {
  policy: PolicyDocument;
  operations: readonly CompiledOperation[];
  metrics: GatewayMetrics;
  metricsPath: string | false;
  backend: URL;
  agent: Agent;
  body: ReadBodyOptions;
  maxUrlBytes: number;
  upstreamTimeoutMs: number;
  hostGuard: Omit<GuardOptions, 'port'>;
  checkHostAndOrigin: (req: IncomingMessage) => GuardDecision;
  now: () => number;
  port: number;
  log: AccessLogSink | undefined;
  clientCertMode: 'strict' | 'passthrough' | undefined;
  subscriptionKeys: SubscriptionKeys | undefined;
}

/**
 * Runs the statements in order and stays synchronous until one returns a promise: most requests
 * carry a token the verified-token cache knows, and then no statement waits for anything.
 */
function runSection(
  statements: readonly PolicyStatement[],
  ctx: PolicyContext,
  from = 0,
): Promise<void> | void {
  for (let i = from; i < statements.length; i++) {
    const pending = statements[i]!.execute(ctx);
    if (pending) return pending.then(() => (ctx.returned ? undefined : runSection(statements, ctx, i + 1)));
    if (ctx.returned) return;
  }
}

/** What the request's `Expect` asked for: nothing, "100 Continue", or something unsupported (417). */
type Expectation = 'none' | 'continue' | 'unsupported';

/** Pipelined requests that may wait behind the one being handled; past that the connection is cut off. */
const MAX_PIPELINED = 16;

/** One request's forwarding, cancelled when its client connection closes. */
interface Exchange {
  aborted: boolean;
  /** Set when the handler failed unexpectedly: it was answered 500 and the connection closes. */
  failed: ApimError | undefined;
  expectation: Expectation;
  /** Cancels the backend request once it has been made. */
  cancel: (() => void) | undefined;
}

/** What the gateway knows about one client connection. */
interface ConnectionState {
  /** The gateway decided to close it (or it closed): later requests on it are not handled. */
  closing: boolean;
  /** The request being handled; pipelined ones wait in `waiting`. */
  active: Exchange | undefined;
  waiting: Array<() => void>;
  /** Requests that arrived after the gateway decided to close. */
  ignored: number;
}

const connections = new WeakMap<Socket, ConnectionState>();

function connectionOf(socket: Socket): ConnectionState {
  let conn = connections.get(socket);
  if (!conn) {
    conn = { closing: false, active: undefined, waiting: [], ignored: 0 };
    connections.set(socket, conn);
  }
  return conn;
}

/** `context.Request` for the policies; the query string is parsed only when a policy reads it. */
class RequestView implements GatewayRequest {
  private parsedQuery: URLSearchParams | undefined;

  constructor(
    readonly method: string,
    readonly url: string,
    private readonly search: string,
    readonly headers: OutgoingHttpHeaders,
    readonly clientIp: string,
    readonly clientCertificate: ClientCertificateInfo | undefined,
  ) {}

  get query(): URLSearchParams {
    return (this.parsedQuery ??= new URLSearchParams(this.search));
  }
}

/**
 * An answer that does not consume the rest of the request body closes the connection: the
 * unread bytes are not a next request, and a slow sender must not keep its connection.
 */
function closeIfBodyUnread(req: IncomingMessage, res: ServerResponse): Record<string, string> {
  // `complete` is still false while the handler runs synchronously, even for a request without a body.
  if (!hasBody(req) || req.complete) return {};
  res.shouldKeepAlive = false;
  return { connection: 'close' };
}

function sendResponse(req: IncomingMessage, res: ServerResponse, response: GatewayResponse): void {
  if (res.headersSent || res.destroyed) return;
  const body = response.body ?? '';
  const headers = {
    ...response.headers,
    ...closeIfBodyUnread(req, res),
    'content-length': Buffer.byteLength(body),
  };
  if (response.reason) res.writeHead(response.statusCode, response.reason, headers);
  else res.writeHead(response.statusCode, headers);
  res.end(body);
}

/** Framing a proxy cannot forward faithfully: refused before anything else looks at the request. */
function framingProblem(req: IncomingMessage): ApimError | undefined {
  if (req.httpVersionMajor !== 1 || (req.httpVersionMinor !== 0 && req.httpVersionMinor !== 1))
    return new ApimError(
      505,
      `HTTP version ${req.httpVersion} is not supported; use HTTP/1.1.`,
      'gateway',
      'HttpVersionNotSupported',
    );
  const te = req.headers['transfer-encoding'];
  if (te !== undefined) {
    if (req.httpVersionMinor === 0)
      return new ApimError(
        400,
        'The request is malformed: Transfer-Encoding is not defined in HTTP/1.0.',
        'gateway',
        'AmbiguousFraming',
      );
    const codings = te.toLowerCase().split(',');
    if (codings[codings.length - 1]!.trim() !== 'chunked')
      return new ApimError(
        400,
        'The request is malformed: the last Transfer-Encoding must be chunked.',
        'gateway',
        'AmbiguousFraming',
      );
    // The body is forwarded as the bytes chunked decoding gives, so no other coding may be left on them.
    if (codings.length > 1)
      return new ApimError(
        501,
        'Transfer-Encoding other than chunked is not supported.',
        'gateway',
        'TransferCodingNotImplemented',
      );
  }
  const named = connectionTokens(req.headers);
  if (named.has('content-length') || named.has('transfer-encoding'))
    return new ApimError(
      400,
      'The request is malformed: Content-Length and Transfer-Encoding must not be named in Connection.',
      'gateway',
      'AmbiguousFraming',
    );
  if (req.httpVersionMinor === 1 && req.headers.host === undefined)
    return new ApimError(
      400,
      'The request is malformed: HTTP/1.1 requires a Host header.',
      'gateway',
      'MalformedRequest',
    );
  return undefined;
}

async function handleRequest(
  req: IncomingMessage,
  res: ServerResponse,
  deps: HandlerDeps,
  exchange: Exchange,
  /** Called once the response is over (sent or abandoned): the connection's next request may start. */
  done: () => void,
): Promise<void> {
  const started = performance.now();
  let outcome: PolicyOutcome = 'forwarded';
  let error: ApimError | undefined;
  req.on('error', ignore); // a client reset must not become an uncaught error
  res.on('error', ignore);
  let route = 'api';
  let logPath = '';
  /**
   * The gateway's span of the caller's W3C trace (a new trace when `traceparent` is missing or
   * malformed): logged, and sent to the backend as its parent (`traceparent`, `X-AppGW-Trace-Id`).
   */
  const trace = continueTrace(req.headers.traceparent);
  // One listener for everything that happens when the response is over (one per request counts at load).
  let upstream: IncomingMessage | undefined;
  res.on('close', () => {
    if (!res.writableFinished && !exchange.aborted) {
      // The client is gone before its answer: the backend request is cancelled, not left to run.
      exchange.aborted = true;
      exchange.cancel?.();
    }
    if (upstream && !upstream.complete) upstream.destroy();
    if (exchange.failed) {
      outcome = 'gateway-error';
      error = exchange.failed;
    }
    deps.metrics.request(route, req.method ?? '', res.headersSent ? res.statusCode : 0, outcome);
    if (error) deps.metrics.policyError(error.source, error.reason);
    done();
    if (!deps.log) return;
    const entry: AccessLogEntry = {
      event: 'request',
      time: isoNow(),
      method: req.method ?? '',
      path: logPath,
      // 0: no answer was sent (the client left before it).
      status: res.headersSent ? res.statusCode : 0,
      durationMs: Math.round((performance.now() - started) * 10) / 10,
      policy: outcome,
      traceId: trace.traceId,
      spanId: trace.spanId,
    };
    if (trace.parentSpanId) entry.parentSpanId = trace.parentSpanId;
    if (error) {
      entry.errorSource = error.source;
      entry.errorReason = error.reason;
    }
    if (!res.writableFinished) entry.aborted = true;
    deps.log(entry);
  });
  /** The gateway itself refuses the request; the connection closes when asked to, or when the body is unread. */
  const refuse = (err: ApimError, close = false, headers: Record<string, string> = {}): void => {
    outcome = 'gateway-error';
    error = err;
    if (close) res.shouldKeepAlive = false;
    const closing = close ? { connection: 'close' } : closeIfBodyUnread(req, res);
    sendApimError(res, err.statusCode, err.message, { ...headers, ...closing });
  };

  const framing =
    exchange.expectation === 'unsupported'
      ? new ApimError(417, 'Only the expectation 100-continue is supported.', 'gateway', 'ExpectationFailed')
      : framingProblem(req);
  if (framing) return refuse(framing, true);
  const target = parseRequestTarget(req.url ?? '/', deps.maxUrlBytes);
  if (!target.ok) return refuse(new ApimError(target.status, target.message, 'gateway', target.reason), true);
  const path = target.path;
  logPath = path;
  if (target.absolute) {
    // Absolute form is for proxies; a gateway accepts it only when it names the gateway itself.
    const own =
      target.absolute.scheme === 'https' &&
      checkRequest({ host: target.absolute.authority }, { ...deps.hostGuard, port: deps.port }).ok;
    if (!own)
      return refuse(
        new ApimError(
          400,
          'The request target names another host; send a path (origin-form) to this gateway.',
          'gateway',
          'InvalidRequestTarget',
        ),
        true,
      );
  }
  const decision = deps.checkHostAndOrigin(req);
  if (!decision.ok) {
    const reason = decision.status === 421 ? 'MisdirectedRequest' : 'CrossSiteRequest';
    return refuse(new ApimError(decision.status, decision.reason, 'gateway', reason), true);
  }
  const url = `${path}${target.search}`;
  const method = (req.method ?? 'GET').toUpperCase();

  if ((method === 'GET' || method === 'HEAD') && path === HEALTH_PATH) {
    outcome = 'none';
    route = 'health';
    res.writeHead(200, { 'content-length': 0, ...closeIfBodyUnread(req, res) });
    res.end();
    return;
  }
  if (deps.metricsPath !== false && method === 'GET' && path === deps.metricsPath) {
    outcome = 'none';
    route = 'metrics';
    const body = await deps.metrics.render();
    if (res.destroyed) return;
    res.writeHead(200, {
      'content-type': PROMETHEUS_CONTENT_TYPE,
      'content-length': Buffer.byteLength(body),
      ...closeIfBodyUnread(req, res),
    });
    res.end(body);
    return;
  }

  if (Number(req.headers['content-length'] ?? 0) > deps.body.maxBytes)
    return refuse(
      new ApimError(
        413,
        `The request body is larger than the limit of ${deps.body.maxBytes} bytes.`,
        'gateway',
        'RequestEntityTooLarge',
      ),
    );

  let peer: PeerCertificate | undefined;
  if (deps.clientCertMode) {
    peer = peerCertificateOf(req);
    if (deps.clientCertMode === 'strict' && (!peer || !peer.trusted)) {
      const message = peer ? 'The SSL certificate error.' : 'No required SSL certificate was sent.';
      return refuse(
        new ApimError(
          400,
          message,
          'application-gateway',
          peer ? 'ClientCertificateInvalid' : 'ClientCertificateNotPresent',
        ),
      );
    }
  }

  const headers = backendRequestHeaders(req, deps.port, url, trace);
  if (deps.clientCertMode) Object.assign(headers, clientCertificateHeaders(peer));
  const request = new RequestView(req.method ?? 'GET', url, target.search, headers, clientIpOf(req), peer);
  let subscriptionId: string | undefined;
  if (deps.subscriptionKeys) {
    delete headers[deps.subscriptionKeys.headerName]; // the backend never needs the key
    const check = deps.subscriptionKeys.check(req.headers, request.query);
    if (!check.ok) {
      outcome = 'rejected';
      error = new ApimError(401, check.message, 'subscription', check.reason);
      sendApimError(res, 401, check.message, closeIfBodyUnread(req, res));
      return;
    }
    subscriptionId = check.subscriptionId;
  }
  const operation = deps.operations.find((op) => operationApplies(op, method, path));
  const policy = operation?.policy ?? deps.policy;
  if (operation) route = operation.route;
  const ctx: PolicyContext = {
    section: 'inbound',
    request,
    response: undefined,
    variables: new Map(),
    lastError: undefined,
    returned: false,
    now: deps.now,
    responseHeaders: {},
    afterResponse: [],
    ...(subscriptionId === undefined ? {} : { subscription: { id: subscriptionId } }),
  };

  try {
    const inbound = runSection(policy.inbound, ctx);
    if (inbound) await inbound;
    if (ctx.returned) {
      outcome = 'returned';
      ctx.response ??= { statusCode: 200, headers: {} };
      await finishResponse(ctx);
      sendResponse(req, res, ctx.response);
      return;
    }
    if (res.destroyed || exchange.aborted) return; // the client left while the policy ran

    // The body is read only now, once the policies admitted the request, and whole: see request-body.ts.
    let body: ReadBody;
    try {
      if (hasBody(req)) {
        if (exchange.expectation === 'continue') res.writeContinue();
        body = await readBody(req, deps.body);
      } else body = NO_BODY;
    } catch (err) {
      if (!(err instanceof BodyFailure)) throw err;
      if (err.kind === 'aborted') {
        outcome = 'gateway-error';
        return;
      }
      const [status, reason, extra]: [number, string, Record<string, string>] =
        err.kind === 'too-large'
          ? [413, 'RequestEntityTooLarge', {}]
          : err.kind === 'timeout'
            ? [408, 'RequestTimeout', {}]
            : err.kind === 'malformed'
              ? [err.status ?? 400, err.reason ?? 'MalformedRequest', {}]
              : [503, 'TooManyRequestBodies', { 'retry-after': '1' }];
      return refuse(new ApimError(status, err.message, 'gateway', reason), true, extra);
    }

    ctx.section = 'backend';
    if (res.destroyed || exchange.aborted) return body.release();
    try {
      const sent = performance.now();
      upstream = await forwardRequest({
        method,
        target: ctx.request.url,
        body: body.bytes,
        backend: ctx.backendUrl ?? deps.backend,
        agent: deps.agent,
        headers: ctx.request.headers,
        timeoutMs: policy.backend.timeoutMs ?? deps.upstreamTimeoutMs,
        agentTimeoutMs: deps.upstreamTimeoutMs,
        cancellable: (cancel) => (exchange.cancel = cancel),
        // The body stays in the memory budget until the backend connection has taken it.
        ...(body.bytes.length > 0 ? { written: body.release } : {}),
      });
      deps.metrics.upstreamDuration(route, (performance.now() - sent) / 1000);
    } catch (err) {
      body.release();
      if (exchange.aborted) return; // cancelled because the client left: nobody to answer
      if (!(err instanceof ProxyFailure)) throw err;
      outcome = 'gateway-error';
      throw err.kind === 'timeout'
        ? new ApimError(504, err.message, 'forward-request', 'Timeout')
        : new ApimError(502, err.message, 'forward-request', 'BackendConnectionFailure');
    }

    ctx.section = 'outbound';
    ctx.response = { statusCode: upstream.statusCode ?? 502, headers: clientResponseHeaders(upstream) };
    if (upstream.statusMessage) ctx.response.reason = upstream.statusMessage;
    try {
      const outbound = runSection(policy.outbound, ctx);
      if (outbound) await outbound;
      const finished = finishResponse(ctx);
      if (finished) await finished;
    } catch (err) {
      upstream.resume(); // the backend's body is not used: free its connection
      throw err;
    }
    if (ctx.returned) {
      outcome = 'returned';
      upstream.resume();
      sendResponse(req, res, ctx.response);
      return;
    }
    if (res.destroyed) {
      upstream.destroy();
      return;
    }
    res.writeHead(ctx.response.statusCode, ctx.response.headers);
    // Errors on either side end both streams. Plain pipe(): stream.pipeline() costs an
    // AbortController and a DOMException per request (about 6 % of the gateway's CPU at load).
    upstream.on('error', () => res.destroy());
    upstream.pipe(res);
  } catch (err) {
    if (!(err instanceof ApimError)) throw err;
    if (outcome === 'forwarded') outcome = 'rejected';
    error = err;
    await runOnError(err, ctx, policy.onError);
    if (ctx.returned) outcome = 'returned';
    try {
      await finishResponse(ctx);
    } catch (inner) {
      process.stderr.write(`local-gateway: error after on-error: ${(inner as Error).message}\n`);
    }
    sendResponse(req, res, ctx.response!);
  }
}

/** Runs the deferred work that needs the response (rate-limit increment-condition), then adds policy response headers. */
function finishResponse(ctx: PolicyContext): Promise<void> | void {
  if (ctx.afterResponse?.length) {
    const pending = ctx.afterResponse.splice(0);
    return (async () => {
      for (const work of pending) await work(ctx);
      addPolicyResponseHeaders(ctx);
    })();
  }
  addPolicyResponseHeaders(ctx);
}

function addPolicyResponseHeaders(ctx: PolicyContext): void {
  if (!ctx.response || !ctx.responseHeaders) return;
  for (const name in ctx.responseHeaders) ctx.response.headers[name] ??= ctx.responseHeaders[name];
}

async function runOnError(
  err: ApimError,
  ctx: PolicyContext,
  onError: readonly PolicyStatement[],
): Promise<void> {
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
