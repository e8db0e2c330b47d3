/**
 * Step 7: calls the API (through the gateway) with `Authorization: Bearer <token>`.
 * Keep-alive connections, the configured CA trusted, a timeout per attempt, and one retry
 * with a fresh token when the API answers 401 (the cached token may have been revoked or
 * signed with a key the API no longer trusts).
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { TokenProvider } from './certificate-token-client';
import { withSystemRoots } from './https-network-client';

export const DEFAULT_API_TIMEOUT_MS = 15_000;

export interface ApiClientOptions {
  /** e.g. `https://127.0.0.1:8443` or `https://gateway.example.com/orders-api` */
  baseUrl: string;
  tokens: TokenProvider;
  /** Extra trusted CA (PEM). */
  ca?: string;
  timeoutMs?: number;
}

export interface ApiRequest {
  method?: string;
  headers?: Record<string, string>;
  /** Sent as-is; objects are sent as JSON. */
  body?: string | Record<string, unknown> | unknown[];
}

export interface ApiResponse {
  status: number;
  headers: Record<string, string>;
  /** Parsed JSON when the response says so, otherwise the text ('' when empty). */
  body: unknown;
  /** True when the first attempt got 401 and the call was retried with a fresh token. */
  retriedWithFreshToken: boolean;
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

  constructor(private readonly opts: ApiClientOptions) {
    this.base = new URL(opts.baseUrl.endsWith('/') ? opts.baseUrl : `${opts.baseUrl}/`);
    this.httpsAgent = new HttpsAgent({
      keepAlive: true,
      ...(opts.ca ? { ca: withSystemRoots(opts.ca) } : {}),
    });
    this.httpAgent = new HttpAgent({ keepAlive: true });
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_API_TIMEOUT_MS;
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

  async request(path: string, req: ApiRequest = {}): Promise<ApiResponse> {
    const url = this.urlFor(path);
    const first = await this.tokens(false);
    const response = await this.send(url, req, first);
    if (response.status !== 401) return { ...response, retriedWithFreshToken: false };
    const fresh = await this.tokens(true, first);
    return { ...(await this.send(url, req, fresh)), retriedWithFreshToken: true };
  }

  get(path: string): Promise<ApiResponse> {
    return this.request(path, { method: 'GET' });
  }

  close(): void {
    this.httpsAgent.destroy();
    this.httpAgent.destroy();
  }

  private async tokens(forceRefresh: boolean, rejectedToken?: string): Promise<string> {
    return (
      await this.opts.tokens.getToken(
        rejectedToken ? { forceRefresh, rejectedToken } : { forceRefresh },
      )
    ).accessToken;
  }

  private send(
    url: URL,
    req: ApiRequest,
    accessToken: string,
  ): Promise<Omit<ApiResponse, 'retriedWithFreshToken'>> {
    const method = (req.method ?? 'GET').toUpperCase();
    const headers: Record<string, string | number> = { accept: 'application/json', ...(req.headers ?? {}) };
    headers['authorization'] = `Bearer ${accessToken}`;
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
      r.setTimeout(this.timeoutMs, () => {
        r.destroy(Object.assign(new Error(`no response within ${this.timeoutMs} ms`), { code: 'ETIMEDOUT' }));
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
