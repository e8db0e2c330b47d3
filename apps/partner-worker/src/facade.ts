/**
 * `serve`: a small HTTP facade over a PartnerWorker, for load tests (plain HTTP, loopback by default).
 *
 *   GET  /call/<api path and query>  a token from certflow's cache, then GET PARTNER_API_BASE_URL +
 *                                     path through the resilient ApiClient (continuing the
 *                                     request's `traceparent`, or a new trace); answers with the
 *                                     upstream status and body. When no answer came back:
 *                                     502 {"error":"token_unavailable"|"upstream_failed","reason"} or
 *                                     504 {"error":"upstream_timeout","reason"}; a path that would
 *                                     leave the API base URL: 400 {"error":"invalid_path"}.
 *   GET  /metrics                    Prometheus text (metrics.ts)
 *   GET  /health                     {"status":"ok","certificate":{…}}
 *   POST /rotate                     loopback only, no Origin header: rotate the certificate in
 *                                     process (Graph addKey/removeKey) and switch to it; 409 when
 *                                     PARTNER_APP_OBJECT_ID is not configured or one is running
 *   anything else                    404 {"error":"not_found"} (405 for a wrong method)
 *
 * Every route first checks Host and Origin (@certflow/loopback-guard), so that a web page cannot
 * reach it through DNS rebinding or a cross-site request: a Host that is not a loopback name or
 * a configured one (with the facade's port) gets 421 {"error":"misdirected_request"} and the
 * connection closed; a cross-site Origin or Sec-Fetch-Site gets 403 {"error":"forbidden"}.
 *
 * No response and no log line ever holds a token: reasons are error messages, and anything
 * shaped like a JWT is redacted from them anyway.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type GuardDecision, isLoopbackAddress, loopbackGuard } from '@certflow/loopback-guard';
import { continueTrace, PROMETHEUS_CONTENT_TYPE, TRACEPARENT_HEADER } from '@certflow/observability';
import { TokenAcquisitionError, type ApiCallError, type RotationResult } from '@certflow/partner-client';
import type { PartnerWorker } from './worker';

export interface FacadeOptions {
  worker: PartnerWorker;
  host?: string;
  port?: number;
  /** In-process rotation for POST /rotate; without it /rotate answers 409. */
  rotate?: () => Promise<RotationResult>;
  /** Why /rotate is unavailable (shown in the 409). */
  rotateUnavailableReason?: string;
  /** Which routes to serve: everything (serve) or only /metrics and /health (run --metrics-port). */
  routes?: 'all' | 'observability';
  /** Host names accepted besides localhost, 127.0.0.1 and [::1] (from `parseAllowedHosts`). */
  allowedHosts?: readonly string[];
  log(message: string): void;
}

export interface RunningFacade {
  url: string;
  port: number;
  /** Stops accepting connections, lets the requests in progress finish (at most `graceMs`). */
  close(graceMs?: number): Promise<void>;
}

const JWT_LIKE = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g;

export function redact(text: string): string {
  return text.replace(JWT_LIKE, '[redacted]');
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

export async function startFacade(opts: FacadeOptions): Promise<RunningFacade> {
  const { worker, log } = opts;
  const routes = opts.routes ?? 'all';
  const allowedHosts = opts.allowedHosts ?? [];
  // Made once listening, from the address actually bound (no request arrives before).
  let checkHostAndOrigin: (req: IncomingMessage) => GuardDecision = () => ({
    ok: false,
    status: 421,
    reason: 'not listening yet',
  });
  let rotating = false;

  const call = async (path: string, req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const trace = continueTrace(req.headers[TRACEPARENT_HEADER]);
    const about = `GET ${path} (traceId ${trace.traceId} spanId ${trace.spanId})`;
    try {
      const answer = await worker.call(path, trace);
      const headers: Record<string, string | number> = {
        'cache-control': 'no-store',
        'x-upstream-attempts': answer.attempts,
      };
      let body: string;
      if (typeof answer.body === 'string') {
        body = answer.body;
        headers['content-type'] = answer.headers['content-type'] ?? 'text/plain; charset=utf-8';
      } else {
        body = JSON.stringify(answer.body);
        headers['content-type'] = answer.headers['content-type'] ?? 'application/json; charset=utf-8';
      }
      if (answer.headers['retry-after']) headers['retry-after'] = answer.headers['retry-after'];
      headers['content-length'] = Buffer.byteLength(body);
      res.writeHead(answer.status, headers);
      res.end(body);
    } catch (err) {
      const reason = redact((err as Error).message ?? String(err));
      const code = (err as ApiCallError).code;
      if (code === 'ERR_INVALID_PATH') return sendJson(res, 400, { error: 'invalid_path', reason });
      if (err instanceof TokenAcquisitionError) {
        log(`${about}: no token: ${reason}`);
        return sendJson(res, 502, { error: 'token_unavailable', reason });
      }
      if (code === 'ERR_DEADLINE' || code === 'ETIMEDOUT') {
        log(`${about}: timed out: ${reason}`);
        return sendJson(res, 504, { error: 'upstream_timeout', reason });
      }
      log(`${about}: failed: ${reason}`);
      sendJson(res, 502, { error: 'upstream_failed', reason });
    }
  };

  const rotate = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const peer = req.socket.remoteAddress;
    if (peer === undefined || !isLoopbackAddress(peer) || req.headers.origin !== undefined)
      return sendJson(res, 403, {
        error: 'forbidden',
        reason: 'POST /rotate is accepted from loopback clients only, without an Origin header',
      });
    if (!opts.rotate)
      return sendJson(res, 409, {
        error: 'rotation_not_configured',
        reason: opts.rotateUnavailableReason ?? 'rotation is not configured',
      });
    if (rotating)
      return sendJson(res, 409, { error: 'rotation_in_progress', reason: 'a rotation is already running' });
    rotating = true;
    try {
      const result = await opts.rotate();
      if (result.status === 'refused')
        return sendJson(res, 409, {
          error: 'rotation_refused',
          reason: result.message,
          nextCerPath: result.nextCerPath,
        });
      sendJson(res, 200, {
        status: 'rotated',
        ...(result.keyId ? { keyId: result.keyId } : {}),
        ...(result.removedKeyId ? { removedKeyId: result.removedKeyId } : {}),
        ...(result.oldStillRegistered ? { oldStillRegistered: result.oldStillRegistered } : {}),
        ...(result.recovered ? { recovered: result.recovered } : {}),
        message: result.message,
        certificate: worker.certificateStatus(),
      });
    } catch (err) {
      const reason = redact((err as Error).message ?? String(err));
      log(`POST /rotate failed: ${reason}`);
      sendJson(res, 502, { error: 'rotation_failed', reason });
    } finally {
      rotating = false;
    }
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    // Drain any request body; none of the routes reads one.
    req.resume();
    const guard = checkHostAndOrigin(req);
    if (!guard.ok) {
      log(`refused ${req.method} ${(req.url ?? '').slice(0, 200)}: ${guard.reason}`);
      return guard.status === 421
        ? sendJson(res, 421, { error: 'misdirected_request', reason: guard.reason }, { connection: 'close' })
        : sendJson(res, 403, { error: 'forbidden', reason: guard.reason });
    }
    const url = req.url ?? '/';
    const method = req.method ?? 'GET';
    const pathname = url.split('?')[0]!;
    const get = method === 'GET' || method === 'HEAD';
    if (routes === 'all' && (pathname === '/call' || pathname.startsWith('/call/'))) {
      if (method !== 'GET') return sendJson(res, 405, { error: 'method_not_allowed', allow: 'GET' });
      const path = url.slice('/call'.length);
      if (path === '' || path.startsWith('?'))
        return sendJson(res, 400, {
          error: 'invalid_path',
          reason: 'give the API path after /call, e.g. /call/orders',
        });
      void call(path, req, res);
      return;
    }
    if (pathname === '/metrics') {
      if (!get) return sendJson(res, 405, { error: 'method_not_allowed', allow: 'GET' });
      void worker.metrics.render().then(
        (text) => {
          res.writeHead(200, {
            'content-type': PROMETHEUS_CONTENT_TYPE,
            'content-length': Buffer.byteLength(text),
          });
          res.end(method === 'HEAD' ? undefined : text);
        },
        (err: unknown) => {
          log(`GET /metrics failed: ${(err as Error).message}`);
          sendJson(res, 500, { error: 'metrics_failed' });
        },
      );
      return;
    }
    if (pathname === '/health') {
      if (!get) return sendJson(res, 405, { error: 'method_not_allowed', allow: 'GET' });
      return sendJson(res, 200, { status: 'ok', certificate: worker.certificateStatus() });
    }
    if (routes === 'all' && pathname === '/rotate') {
      if (method !== 'POST') return sendJson(res, 405, { error: 'method_not_allowed', allow: 'POST' });
      void rotate(req, res);
      return;
    }
    sendJson(res, 404, { error: 'not_found', path: pathname });
  };

  const server: Server = createServer({ keepAliveTimeout: 5_000 }, handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port, address, family } = server.address() as AddressInfo;
  checkHostAndOrigin = loopbackGuard({
    scheme: 'http',
    boundToLoopback: isLoopbackAddress(address),
    allowedHosts,
  });
  const host = family === 'IPv6' ? `[${address}]` : address;
  return {
    url: `http://${host}:${port}`,
    port,
    close: (graceMs = 10_000) =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), graceMs);
        // Connections become idle as their requests finish: close each as soon as it does.
        const idle = setInterval(() => server.closeIdleConnections(), 50);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          clearInterval(idle);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}
