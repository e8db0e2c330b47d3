/**
 * Forwarding to the backend, the way Application Gateway + APIM do it: hop-by-hop headers
 * removed, `X-Forwarded-For`/`-Proto`/`-Port` and `X-Original-Host` set by the gateway (any
 * the client sent are dropped, never trusted), the request body (read whole, request-body.ts)
 * sent with the gateway's own framing, the response streamed back, connections to the backend
 * kept alive in a pool. The backend gets the W3C `traceparent` of the gateway's span (the
 * caller's trace continued, or a new one) and its trace id again as `X-AppGW-Trace-Id`.
 */
import { performance } from 'node:perf_hooks';
import { Agent, IncomingMessage, OutgoingHttpHeaders, request } from 'node:http';
import { formatTraceparent, TRACEPARENT_HEADER, type TraceContext } from '@certflow/observability';
import { GATEWAY_ONLY_HEADERS } from './client-certificate';

/** RFC 9110 §7.6.1 connection-specific headers, plus the non-standard ones proxies also drop. */
export const HOP_BY_HOP_HEADERS = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Request headers the gateway replaces: it frames the body it read with its own
 * Content-Length, and having read the whole body there is nothing for `Expect` to wait for.
 */
const REQUEST_FRAMING_HEADERS = new Set(['content-length', 'expect']);

/**
 * Checked by the gateway (loopback-guard) and meaningless behind it: to the browser the gateway
 * is the origin, so the backend's own same-origin check would refuse a same-origin request.
 */
const EDGE_CHECKED_HEADERS = new Set(['origin', 'sec-fetch-site']);

/** Set only by the gateway; a client's own values are removed. */
export const FORWARDING_HEADERS = new Set([
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-forwarded-host',
  'x-original-host',
  'forwarded',
]);

export type ProxyFailureKind = 'connection' | 'timeout';

export class ProxyFailure extends Error {
  constructor(
    readonly kind: ProxyFailureKind,
    message: string,
  ) {
    super(message);
    this.name = 'ProxyFailure';
  }
}

const NO_TOKENS: ReadonlySet<string> = new Set();

export function connectionTokens(headers: IncomingMessage['headers']): ReadonlySet<string> {
  const value = headers.connection;
  // The usual values name only headers that are hop-by-hop anyway.
  if (value === undefined || value === 'keep-alive' || value === 'close') return NO_TOKENS;
  const list = Array.isArray(value) ? value.join(',') : (value ?? '');
  return new Set(
    list
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean),
  );
}

export function clientIpOf(req: IncomingMessage): string {
  const ip = req.socket.remoteAddress ?? '';
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

/** Request headers never passed on as the client sent them (one lookup per header on the hot path). */
const NOT_FORWARDED = new Set([
  'host',
  ...HOP_BY_HOP_HEADERS,
  ...REQUEST_FRAMING_HEADERS,
  ...EDGE_CHECKED_HEADERS,
  ...FORWARDING_HEADERS,
  ...GATEWAY_ONLY_HEADERS,
]);

/**
 * The headers sent to the backend: the client's, cleaned, plus the gateway's forwarding headers.
 * `target` is the normalized request target (path and query) the backend will be sent.
 */
export function backendRequestHeaders(
  req: IncomingMessage,
  gatewayPort: number,
  target: string,
  trace: TraceContext,
): OutgoingHttpHeaders {
  const drop = connectionTokens(req.headers);
  const headers: OutgoingHttpHeaders = {};
  const incoming = req.headers;
  // `tracestate` belongs to the caller's `traceparent`: with a new trace it is not passed on.
  // (Skipped here rather than deleted afterwards: `delete` would slow every later use of the object.)
  const continued = trace.parentSpanId !== undefined;
  for (const name in incoming) {
    const value = incoming[name];
    if (value === undefined || NOT_FORWARDED.has(name) || drop.has(name)) continue;
    if (name === 'tracestate' && !continued) continue;
    headers[name] = value;
  }
  headers['x-forwarded-for'] = clientIpOf(req);
  headers['x-forwarded-proto'] = 'https';
  headers['x-forwarded-port'] = String(gatewayPort);
  if (incoming.host) headers['x-original-host'] = incoming.host;
  headers['x-original-url'] = target;
  // The gateway's span is the backend's parent; the trace id is the caller's, or a new one.
  headers[TRACEPARENT_HEADER] = formatTraceparent(trace);
  headers['x-appgw-trace-id'] = trace.traceId;
  return headers;
}

/** The backend's response headers that may be passed to the client. */
export function clientResponseHeaders(upstream: IncomingMessage): OutgoingHttpHeaders {
  const drop = connectionTokens(upstream.headers);
  const headers: OutgoingHttpHeaders = {};
  const incoming = upstream.headers;
  for (const name in incoming) {
    const value = incoming[name];
    if (value === undefined || HOP_BY_HOP_HEADERS.has(name) || drop.has(name)) continue;
    headers[name] = value;
  }
  return headers;
}

export interface ForwardOptions {
  method: string;
  /** Normalized path and query, appended to the backend URL's path. */
  target: string;
  /** The whole request body, already read (see request-body.ts). */
  body: Buffer;
  backend: URL;
  agent: Agent;
  headers: OutgoingHttpHeaders;
  /** Inactivity deadline for the backend's answer. */
  timeoutMs: number;
  /** The `timeout` the agent already gives its sockets. */
  agentTimeoutMs: number;
  /** Called once the request (and its body) has been handed to the backend connection, or has failed. */
  written?(): void;
  /** Given, as soon as the backend request exists, the way to cancel it (the client is gone). */
  cancellable?(cancel: () => void): void;
}

const agentKeys = new WeakMap<URL, string>();
/** The agent's pool name for a backend (`host:port:`), as `Agent#getName` makes it. */
function agentKey(agent: Agent, backend: URL): string {
  let key = agentKeys.get(backend);
  if (key === undefined) {
    key = agent.getName({ host: backend.hostname, port: Number(backend.port) || 80 });
    agentKeys.set(backend, key);
  }
  return key;
}

/** Methods whose requests carry no body unless they say so: no `Content-Length: 0` for them. */
const BODYLESS_BY_DEFAULT = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE']);

/**
 * Sends the request to the backend, always framed by the gateway itself (`Content-Length` of the
 * body it read), and resolves with the backend's response head. A request that fails or times
 * out destroys its backend connection, so a connection in an unknown state is never reused.
 */
export function forwardRequest(opts: ForwardOptions): Promise<IncomingMessage> {
  const { backend, body } = opts;
  const basePath = backend.pathname.replace(/\/+$/, '');
  const headers = opts.headers;
  if (body.length > 0 || !BODYLESS_BY_DEFAULT.has(opts.method)) headers['content-length'] = body.length;
  return new Promise((resolve, reject) => {
    let settled = false;
    const upstream = request({
      protocol: backend.protocol,
      hostname: backend.hostname,
      port: backend.port,
      method: opts.method,
      path: `${basePath}${opts.target}`,
      headers,
      agent: opts.agent,
    });
    // Waiting for a pooled connection (all maxSockets busy) counts towards the deadline too: the
    // socket timeout only starts once a socket is assigned.
    if (opts.agent.requests[agentKey(opts.agent, backend)]?.includes(upstream)) {
      const queuedAt = performance.now();
      const waiting = setTimeout(() => upstream.emit('timeout'), opts.timeoutMs);
      upstream.once('socket', () => {
        clearTimeout(waiting);
        // A socket handed over straight from the request before keeps no timeout of its own:
        // the rest of the deadline is set here.
        upstream.setTimeout(Math.max(1, opts.timeoutMs - (performance.now() - queuedAt)));
      });
      upstream.once('close', () => clearTimeout(waiting));
    }
    if (opts.written) {
      upstream.once('finish', opts.written);
      upstream.once('close', opts.written);
    }
    upstream.on('response', (res) => {
      if (settled) {
        res.destroy();
        return;
      }
      settled = true;
      resolve(res);
    });
    const fail = (failure: ProxyFailure): void => {
      if (settled) return;
      settled = true;
      reject(failure);
    };
    upstream.on('error', (err) =>
      fail(
        err instanceof ProxyFailure
          ? err
          : new ProxyFailure('connection', `The backend service is unavailable: ${err.message}`),
      ),
    );
    opts.cancellable?.(() => {
      const failure = new ProxyFailure('connection', 'The client went away.');
      fail(failure);
      upstream.destroy(failure);
    });
    // The agent gives every socket the gateway's default timeout; a policy with its own sets it here.
    if (opts.timeoutMs !== opts.agentTimeoutMs) upstream.setTimeout(opts.timeoutMs);
    upstream.once('timeout', () => {
      const failure = new ProxyFailure(
        'timeout',
        `The backend did not answer within ${opts.timeoutMs / 1000} s`,
      );
      fail(failure); // at once: a request still queued for a socket reports its error only once it gets one
      upstream.destroy(failure);
    });
    upstream.end(body.length > 0 ? body : undefined);
  });
}
