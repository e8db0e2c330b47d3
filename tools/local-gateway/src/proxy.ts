/**
 * Forwarding to the backend, the way Application Gateway + APIM do it: hop-by-hop headers
 * removed, `X-Forwarded-For`/`-Proto`/`-Port` and `X-Original-Host` set by the gateway (any
 * the client sent are dropped, never trusted), the request body streamed with a size limit,
 * the response streamed back, connections to the backend kept alive in a pool.
 */
import { randomFillSync } from 'node:crypto';
import { Agent, IncomingMessage, OutgoingHttpHeaders, request } from 'node:http';
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

/** Set only by the gateway; a client's own values are removed. */
export const FORWARDING_HEADERS = new Set([
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-forwarded-host',
  'x-original-host',
  'forwarded',
]);

export type ProxyFailureKind = 'connection' | 'timeout' | 'body-too-large' | 'client-aborted';

export class ProxyFailure extends Error {
  constructor(
    readonly kind: ProxyFailureKind,
    message: string,
  ) {
    super(message);
    this.name = 'ProxyFailure';
  }
}

function connectionTokens(headers: IncomingMessage['headers']): Set<string> {
  const value = headers.connection;
  const list = Array.isArray(value) ? value.join(',') : (value ?? '');
  return new Set(
    list
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean),
  );
}

/** Random bytes for trace ids, drawn 4 KiB at a time (one randomFillSync per 256 requests, not one per request). */
const tracePool = Buffer.alloc(4096);
let traceOffset = tracePool.length;
function traceId(): string {
  if (traceOffset + 16 > tracePool.length) {
    randomFillSync(tracePool);
    traceOffset = 0;
  }
  const id = tracePool.toString('hex', traceOffset, traceOffset + 16);
  traceOffset += 16;
  return id;
}

export function clientIpOf(req: IncomingMessage): string {
  const ip = req.socket.remoteAddress ?? '';
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

/** The headers sent to the backend: the client's, cleaned, plus the gateway's forwarding headers. */
export function backendRequestHeaders(req: IncomingMessage, gatewayPort: number): OutgoingHttpHeaders {
  const drop = connectionTokens(req.headers);
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (
      value === undefined ||
      name === 'host' ||
      HOP_BY_HOP_HEADERS.has(name) ||
      FORWARDING_HEADERS.has(name) ||
      GATEWAY_ONLY_HEADERS.has(name) ||
      drop.has(name)
    )
      continue;
    headers[name] = value;
  }
  headers['x-forwarded-for'] = clientIpOf(req);
  headers['x-forwarded-proto'] = 'https';
  headers['x-forwarded-port'] = String(gatewayPort);
  if (req.headers.host) headers['x-original-host'] = req.headers.host;
  headers['x-original-url'] = req.url ?? '/';
  headers['x-appgw-trace-id'] = traceId();
  return headers;
}

/** The backend's response headers that may be passed to the client. */
export function clientResponseHeaders(upstream: IncomingMessage): OutgoingHttpHeaders {
  const drop = connectionTokens(upstream.headers);
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(upstream.headers)) {
    if (value === undefined || HOP_BY_HOP_HEADERS.has(name) || drop.has(name)) continue;
    headers[name] = value;
  }
  return headers;
}

export interface ForwardOptions {
  req: IncomingMessage;
  backend: URL;
  agent: Agent;
  headers: OutgoingHttpHeaders;
  maxBodyBytes: number;
  timeoutMs: number;
}

/** Sends the request to the backend, streaming its body; resolves with the backend's response head. */
export function forwardRequest(opts: ForwardOptions): Promise<IncomingMessage> {
  const { req, backend } = opts;
  const basePath = backend.pathname.replace(/\/+$/, '');
  return new Promise((resolve, reject) => {
    let settled = false;
    const upstream = request({
      protocol: backend.protocol,
      hostname: backend.hostname,
      port: backend.port,
      method: req.method,
      path: `${basePath}${req.url ?? '/'}`,
      headers: opts.headers,
      agent: opts.agent,
    });
    const fail = (failure: ProxyFailure): void => {
      if (settled) return;
      settled = true;
      reject(failure);
    };
    upstream.on('response', (res) => {
      if (settled) {
        res.destroy();
        return;
      }
      settled = true;
      resolve(res);
    });
    upstream.on('error', (err) =>
      fail(
        err instanceof ProxyFailure
          ? err
          : new ProxyFailure('connection', `The backend service is unavailable: ${err.message}`),
      ),
    );
    upstream.setTimeout(opts.timeoutMs, () =>
      upstream.destroy(
        new ProxyFailure(
          'timeout',
          `The backend did not answer within ${Math.round(opts.timeoutMs / 1000)} s`,
        ),
      ),
    );

    let received = 0;
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received > opts.maxBodyBytes) {
        req.off('data', onData);
        upstream.destroy(
          new ProxyFailure(
            'body-too-large',
            `The request body is larger than the limit of ${opts.maxBodyBytes} bytes.`,
          ),
        );
        return;
      }
      if (!upstream.write(chunk)) req.pause();
    };
    req.on('data', onData);
    upstream.on('drain', () => req.resume());
    req.on('end', () => upstream.end());
    req.on('error', () =>
      upstream.destroy(new ProxyFailure('client-aborted', 'The client aborted the request')),
    );
    req.on('close', () => {
      if (!req.complete)
        upstream.destroy(new ProxyFailure('client-aborted', 'The client aborted the request'));
    });
  });
}
