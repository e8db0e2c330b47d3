/**
 * Step 7: calls the API (through the gateway) with `Authorization: Bearer <token>`.
 * - any method of `API_METHODS`, a body and the caller's headers (`request`); the headers the
 *   client sets itself (`CLIENT_OWNED_HEADERS`) are refused, so are a body on GET/HEAD and
 *   header names or values Node would not send;
 * - keep-alive connections, the configured CA trusted;
 * - a timeout per attempt and a bound on the total time of a call (all attempts and waits);
 * - retries, and which requests they may repeat:
 *   - 401: once, with a fresh token (the cached token may have been revoked or signed with a
 *     key the API no longer trusts), whatever the method: the gateway's validate-jwt and the
 *     API's guard refuse before anything acts on the request;
 *   - 429, and 503 for idempotent methods: waits as long as `Retry-After` says (seconds or an
 *     HTTP date) when that fits in the remaining time, else returns the answer as it is; without
 *     `Retry-After`, backoff. A 429 is a rate limit refusing the request on arrival, so POST and
 *     PATCH are repeated too; a 503 is not proof that nothing was done (a server may give up
 *     half-way), so a non-idempotent request gets it back;
 *   - other 5xx (500, 502, 504) and network errors (reset, timeout): exponential backoff with
 *     full jitter, only for idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE): the request
 *     may have been processed;
 *   - a connection that was never made (refused, host or network unreachable, DNS not
 *     answering): nothing was sent, so any method is retried;
 *   - TLS failures are never retried (they do not heal by themselves).
 * Every attempt of a call carries the call's W3C `traceparent` (a new trace unless the caller
 * gives one, e.g. continuing an incoming request's), so the gateway's and the API's log lines
 * can be matched with the partner's.
 */
import {
  Agent as HttpAgent,
  request as httpRequest,
  validateHeaderName,
  validateHeaderValue,
  type IncomingHttpHeaders,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import {
  formatTraceparent,
  startTrace,
  TRACEPARENT_HEADER,
  type TraceContext,
} from '@certflow/observability';
import type { TokenProvider } from './certificate-token-client';
import { trustingAlso } from './https-network-client';

export const DEFAULT_API_TIMEOUT_MS = 15_000;
export const DEFAULT_API_TOTAL_TIMEOUT_MS = 60_000;
export const DEFAULT_API_MAX_ATTEMPTS = 4;

export interface RetryPolicy {
  /** Attempts per call for 429/5xx/network errors (default 4; the 401 retry comes on top). */
  maxAttempts?: number;
  /** Backoff: the n-th wait is random(0, min(maxDelayMs, baseDelayMs × 2^(n-1))). Defaults 200 ms, 5 s. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** A Retry-After longer than this is not waited for (default 30 s); the answer is returned. */
  maxRetryAfterMs?: number;
}

/** Why the client waits before the next attempt (for logs and tests). */
export interface RetryEvent {
  attempt: number;
  reason: 'retry-after' | 'status' | 'network';
  status?: number;
  code?: string;
  delayMs: number;
}

export interface ApiClientOptions {
  /** e.g. `https://127.0.0.1:8443` or `https://gateway.example.com/orders-api` */
  baseUrl: string;
  tokens: TokenProvider;
  /** Extra trusted CA (PEM). */
  ca?: string;
  /** Per attempt (default 15 s). */
  timeoutMs?: number;
  /** For the whole call, all attempts and waits included (default 60 s). */
  totalTimeoutMs?: number;
  retry?: RetryPolicy;
  onRetry?(event: RetryEvent): void;
  random?: () => number;
}

/** The methods `request` sends. */
export const API_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
export type ApiMethod = (typeof API_METHODS)[number];

/**
 * Headers the client sets itself (the token, the trace, the connection and the body's framing):
 * a caller giving one is refused rather than overridden or sent twice.
 */
export const CLIENT_OWNED_HEADERS: readonly string[] = [
  'authorization',
  'proxy-authorization',
  TRACEPARENT_HEADER,
  'tracestate',
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'expect',
];

export interface ApiRequest {
  /** One of `API_METHODS`, any case (default GET). */
  method?: string;
  /** Extra request headers; none of `CLIENT_OWNED_HEADERS`, each name once (any case). */
  headers?: Record<string, string>;
  /** Sent as-is (give its content-type in `headers`); objects and arrays are sent as JSON. Not with GET or HEAD. */
  body?: string | Record<string, unknown> | unknown[];
  /** The call's trace context, sent as `traceparent` (default: a new trace). */
  trace?: TraceContext;
}

export interface ApiResponse {
  status: number;
  headers: Record<string, string>;
  /** Parsed JSON when the response says so, otherwise the text ('' when empty). */
  body: unknown;
  /** True when the first attempt got 401 and the call was retried with a fresh token. */
  retriedWithFreshToken: boolean;
  /** HTTP requests sent for this call (1 when the first one was answered and kept). */
  attempts: number;
  /** The trace context every attempt carried. */
  trace: TraceContext;
}

const RETRYABLE_NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ERR_NETWORK',
]);
/** Network errors before a connection existed: nothing was sent, so even POST may be repeated. */
const NOT_CONNECTED_CODES = new Set(['ECONNREFUSED', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
const IDEMPOTENT = new Set<string>(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/** `Retry-After` in ms: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const date = Date.parse(v);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

export class ApiCallError extends Error {
  override readonly name = 'ApiCallError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function flatten(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers))
    if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

export class ApiClient {
  private readonly base: URL;
  private readonly httpsAgent: HttpsAgent;
  private readonly httpAgent: HttpAgent;
  private readonly timeoutMs: number;
  private readonly totalTimeoutMs: number;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly maxRetryAfterMs: number;
  private readonly random: () => number;

  constructor(private readonly opts: ApiClientOptions) {
    this.base = new URL(opts.baseUrl.endsWith('/') ? opts.baseUrl : `${opts.baseUrl}/`);
    this.httpsAgent = new HttpsAgent({
      keepAlive: true,
      ...(opts.ca ? { secureContext: trustingAlso(opts.ca) } : {}),
    });
    this.httpAgent = new HttpAgent({ keepAlive: true });
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_API_TIMEOUT_MS;
    this.totalTimeoutMs = opts.totalTimeoutMs ?? DEFAULT_API_TOTAL_TIMEOUT_MS;
    this.maxAttempts = Math.max(1, opts.retry?.maxAttempts ?? DEFAULT_API_MAX_ATTEMPTS);
    this.baseDelayMs = opts.retry?.baseDelayMs ?? 200;
    this.maxDelayMs = opts.retry?.maxDelayMs ?? 5_000;
    this.maxRetryAfterMs = opts.retry?.maxRetryAfterMs ?? 30_000;
    this.random = opts.random ?? Math.random;
  }

  /**
   * The URL for a path relative to the base URL. Absolute URLs and paths that would leave the
   * base are refused: the bearer token must only ever go to the configured API.
   */
  urlFor(path: string): URL {
    if (!path.startsWith('/'))
      throw new ApiCallError('ERR_INVALID_PATH', `the path must start with "/", got "${path}"`);
    if (path.startsWith('//'))
      throw new ApiCallError('ERR_INVALID_PATH', `the path must not start with "//", got "${path}"`);
    const url = new URL(path.slice(1), this.base);
    if (url.origin !== this.base.origin || !url.pathname.startsWith(this.base.pathname)) {
      throw new ApiCallError('ERR_INVALID_PATH', `"${path}" leaves the API base URL ${this.base.href}`);
    }
    return url;
  }

  /** Checks the request (nothing is sent when it is refused: ApiCallError), then calls with retries (above). */
  async request(path: string, req: ApiRequest = {}): Promise<ApiResponse> {
    const url = this.urlFor(path);
    const { method, headers } = checkApiRequest(req);
    const deadline = Date.now() + this.totalTimeoutMs;
    const idempotent = IDEMPOTENT.has(method);
    const trace = req.trace ?? startTrace();
    const traceparent = formatTraceparent(trace);
    let attempts = 0;
    let retriedWithFreshToken = false;
    let token = await this.tokens(false, undefined, deadline, `${method} ${url.href}`);
    for (let attempt = 1; ; attempt++) {
      const remaining = deadline - Date.now();
      if (remaining <= 0)
        throw new ApiCallError(
          'ERR_DEADLINE',
          `${method} ${url.href}: no answer within ${this.totalTimeoutMs} ms (${attempts} attempts)`,
        );
      let response: Omit<ApiResponse, 'retriedWithFreshToken' | 'attempts' | 'trace'>;
      attempts++;
      try {
        response = await this.send(
          url,
          { method, headers, body: req.body },
          token,
          traceparent,
          Math.min(this.timeoutMs, remaining),
        );
      } catch (err) {
        const code = (err as ApiCallError).code;
        const delay = this.backoff(attempt);
        const repeatable = idempotent ? RETRYABLE_NETWORK_CODES.has(code) : NOT_CONNECTED_CODES.has(code);
        if (!repeatable || !this.canWait(attempt, delay, deadline)) throw err;
        this.opts.onRetry?.({ attempt, reason: 'network', code, delayMs: delay });
        await sleep(delay);
        continue;
      }
      if (response.status === 401 && !retriedWithFreshToken) {
        retriedWithFreshToken = true;
        token = await this.tokens(true, token, deadline, `${method} ${url.href}`);
        attempt--; // the 401 retry does not count against maxAttempts
        continue;
      }
      const done = { ...response, retriedWithFreshToken, attempts, trace };
      const status = response.status;
      if (status === 429 || (status === 503 && idempotent)) {
        const retryAfter = parseRetryAfter(response.headers['retry-after']);
        if (retryAfter !== undefined) {
          if (retryAfter > this.maxRetryAfterMs || !this.canWait(attempt, retryAfter, deadline)) return done;
          this.opts.onRetry?.({ attempt, reason: 'retry-after', status, delayMs: retryAfter });
          await sleep(retryAfter);
          continue;
        }
      }
      if (status === 429 || (idempotent && status >= 500 && status !== 501 && status !== 505)) {
        const delay = this.backoff(attempt);
        if (!this.canWait(attempt, delay, deadline)) return done;
        this.opts.onRetry?.({ attempt, reason: 'status', status, delayMs: delay });
        await sleep(delay);
        continue;
      }
      return done;
    }
  }

  /** Full jitter: random(0, min(max, base × 2^(attempt-1))). */
  private backoff(attempt: number): number {
    return Math.round(this.random() * Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (attempt - 1)));
  }

  private canWait(attempt: number, delay: number, deadline: number): boolean {
    return attempt < this.maxAttempts && Date.now() + delay < deadline;
  }

  get(path: string, trace?: TraceContext): Promise<ApiResponse> {
    return this.request(path, trace ? { method: 'GET', trace } : { method: 'GET' });
  }

  close(): void {
    this.httpsAgent.destroy();
    this.httpAgent.destroy();
  }

  /** A token, within what is left of the call's total time (the token fetch itself goes on for the cache). */
  private async tokens(
    forceRefresh: boolean,
    rejectedToken: string | undefined,
    deadline: number,
    what: string,
  ): Promise<string> {
    const pending = this.opts.tokens.getToken(
      rejectedToken ? { forceRefresh, rejectedToken } : { forceRefresh },
    );
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new ApiCallError(
              'ERR_DEADLINE',
              `${what}: no token within ${this.totalTimeoutMs} ms (the call's total time)`,
            ),
          ),
        Math.max(0, deadline - Date.now()),
      );
    });
    pending.catch(() => {}); // a late failure after the deadline is not unhandled
    try {
      return (await Promise.race([pending, expired])).accessToken;
    } finally {
      clearTimeout(timer);
    }
  }

  private send(
    url: URL,
    req: { method: ApiMethod; headers: Record<string, string>; body: ApiRequest['body'] },
    accessToken: string,
    traceparent: string,
    timeoutMs: number,
  ): Promise<Omit<ApiResponse, 'retriedWithFreshToken' | 'attempts' | 'trace'>> {
    const { method } = req;
    const headers: Record<string, string | number> = { accept: 'application/json', ...req.headers };
    headers['authorization'] = `Bearer ${accessToken}`;
    headers[TRACEPARENT_HEADER] = traceparent;
    let body: Buffer | undefined;
    if (req.body !== undefined) {
      if (typeof req.body === 'string') body = Buffer.from(req.body, 'utf8');
      else {
        body = Buffer.from(JSON.stringify(req.body), 'utf8');
        headers['content-type'] ??= 'application/json';
      }
      headers['content-length'] = body.length;
    }
    const isHttps = url.protocol === 'https:';
    const send = isHttps ? httpsRequest : httpRequest;
    const agent = isHttps ? this.httpsAgent : this.httpAgent;
    const label = `${method} ${url.href}`;

    return new Promise((resolve, reject) => {
      const r = send(url, { method, headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) =>
          reject(
            new ApiCallError('ERR_NETWORK', `${label} failed while reading the response: ${err.message}`),
          ),
        );
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const contentType = String(res.headers['content-type'] ?? '');
          let parsed: unknown = text;
          if (text !== '' && /[/+]json\b/i.test(contentType)) {
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = text;
            }
          }
          resolve({ status: res.statusCode ?? 0, headers: flatten(res.headers), body: parsed });
        });
      });
      r.setTimeout(timeoutMs, () => {
        r.destroy(Object.assign(new Error(`no response within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
      });
      r.on('error', (err: Error & { code?: string }) => {
        const code = err.code ?? 'ERR_NETWORK';
        const hint = /CERT|SIGNATURE|SELF_SIGNED/.test(code)
          ? ' (is PARTNER_CA_FILE the CA of the gateway?)'
          : '';
        reject(new ApiCallError(code, `${label} failed: ${code}: ${err.message}${hint}`));
      });
      r.end(body);
    });
  }
}

/**
 * What `request` checks before sending anything: the method (upper-cased), no body on GET/HEAD,
 * and the headers (names lower-cased). Throws ApiCallError (ERR_INVALID_REQUEST, ERR_INVALID_HEADER).
 */
export function checkApiRequest(req: ApiRequest): { method: ApiMethod; headers: Record<string, string> } {
  return { method: requestMethod(req), headers: requestHeaders(req) };
}

function requestMethod(req: ApiRequest): ApiMethod {
  const method = (req.method ?? 'GET').toUpperCase();
  if (!(API_METHODS as readonly string[]).includes(method))
    throw new ApiCallError(
      'ERR_INVALID_REQUEST',
      `unknown method "${req.method}": use one of ${API_METHODS.join(', ')}`,
    );
  if (req.body !== undefined && (method === 'GET' || method === 'HEAD'))
    throw new ApiCallError('ERR_INVALID_REQUEST', `a ${method} request carries no body`);
  return method as ApiMethod;
}

/** The caller's headers, names lower-cased, each checked (name, value, not owned by the client, once). */
function requestHeaders(req: ApiRequest): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [given, value] of Object.entries(req.headers ?? {})) {
    const name = given.toLowerCase();
    try {
      validateHeaderName(name);
      validateHeaderValue(name, value);
    } catch (err) {
      throw new ApiCallError('ERR_INVALID_HEADER', `header "${given}": ${(err as Error).message}`);
    }
    if (CLIENT_OWNED_HEADERS.includes(name))
      throw new ApiCallError('ERR_INVALID_HEADER', `header "${given}" is set by the client itself`);
    if (Object.hasOwn(headers, name))
      throw new ApiCallError('ERR_INVALID_HEADER', `header "${given}" is given twice`);
    headers[name] = value;
  }
  return headers;
}
