/**
 * The real HTTP(S) requests behind the VUs' synchronous `k6/http` calls, made on the main
 * thread: keep-alive agents, TLS verified against SSL_CERT_FILE when it is set (as k6, a Go
 * program, does on Linux) or Node.js's roots otherwise.
 */
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { HttpAnswer, HttpCall } from './protocol';

/** k6 answers header names in canonical form (`Content-Type`). */
const canonical = (name: string): string =>
  name
    .split('-')
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
    .join('-');

export function httpClient(env: NodeJS.ProcessEnv = process.env) {
  const caFile = env.SSL_CERT_FILE;
  const ca = caFile ? readFileSync(caFile) : undefined;
  const http = new HttpAgent({ keepAlive: true });
  const https = new HttpsAgent({ keepAlive: true, ...(ca ? { ca } : {}) });

  function send(call: HttpCall): Promise<HttpAnswer> {
    const t0 = performance.now();
    const answer = (a: Partial<HttpAnswer>): HttpAnswer => ({
      status: 0,
      body: '',
      headers: {},
      error: '',
      errorCode: 0,
      ...a,
      durationMs: performance.now() - t0,
    });
    return new Promise<HttpAnswer>((settle) => {
      const pending: { timer?: NodeJS.Timeout } = {};
      const resolve = (a: HttpAnswer) => {
        clearTimeout(pending.timer);
        settle(a);
      };
      let target: URL;
      try {
        target = new URL(call.url);
        if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new Error('not http(s)');
      } catch {
        resolve(answer({ error: `invalid URL '${call.url}'`, errorCode: 1020 }));
        return;
      }
      const isHttps = target.protocol === 'https:';
      const headers = { ...call.headers };
      if (call.body !== undefined) headers['content-length'] = String(Buffer.byteLength(call.body));
      const req = (isHttps ? httpsRequest : httpRequest)(
        target,
        { method: call.method, headers, agent: isHttps ? https : http },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (err) => resolve(answer({ error: err.message, errorCode: 1000 })));
          res.on('end', () =>
            resolve(
              answer({
                status: res.statusCode ?? 0,
                body: Buffer.concat(chunks).toString('utf8'),
                headers: Object.fromEntries(
                  Object.entries(res.headers).map(([k, v]) => [
                    canonical(k),
                    Array.isArray(v) ? v.join(', ') : String(v),
                  ]),
                ),
              }),
            ),
          );
        },
      );
      // As k6's params.timeout: a bound on the whole request, answer included.
      pending.timer = setTimeout(() => {
        resolve(
          answer({
            error: `${call.method} ${call.url}: request timeout after ${call.timeoutMs} ms`,
            errorCode: 1050,
          }),
        );
        req.destroy();
      }, call.timeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) =>
        resolve(
          answer({
            error: `${call.method} ${call.url}: ${err.message}`,
            errorCode: err.code === 'ECONNREFUSED' ? 1212 : 1000,
          }),
        ),
      );
      req.end(call.body);
    });
  }

  return {
    send,
    close(): void {
      http.destroy();
      https.destroy();
    },
  };
}

/** Whether k6's http_req_failed counts this answer as failed (by the request's expected statuses). */
export function failed(call: HttpCall, a: HttpAnswer): boolean {
  if (a.status === 0) return true;
  const e = call.expected;
  return !(e.statuses.includes(a.status) || e.ranges.some((r) => a.status >= r.min && a.status <= r.max));
}
