/**
 * MSAL's `system.networkClient`, over node:https with an explicit CA.
 *
 * Why not MSAL's default (global fetch): it trusts the development CA only through
 * NODE_EXTRA_CA_CERTS set at process start, and it hides TLS failures behind a bare
 * `network_error`. This client trusts `ca` per connection, throws errors that name the real
 * cause (e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE, ECONNREFUSED), and lets callers observe each
 * token request, including the client assertion's header and claims (never its signature).
 * Each request starts a new W3C trace (`traceparent`).
 */
import { Agent, request, type RequestOptions } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { type INetworkModule, type NetworkRequestOptions, type NetworkResponse } from '@azure/msal-node';
import { formatTraceparent, startTrace, TRACEPARENT_HEADER } from '@certflow/observability';
import { decodeJwt, decodeProtectedHeader } from 'jose';

export const DEFAULT_NETWORK_TIMEOUT_MS = 10_000;

/** A client assertion as it was sent, without its signature. */
export interface DecodedAssertion {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
}

export interface NetworkExchange {
  method: 'GET' | 'POST';
  url: string;
  /** Present on token requests that carried a `client_assertion`. */
  assertion?: DecodedAssertion;
}

export interface NetworkObserver {
  /** Called just before a request leaves. */
  onRequest?(exchange: NetworkExchange): void;
  /** Called once the response has been read (status 0 when the request failed). */
  onResponse?(exchange: NetworkExchange, status: number, error?: Error): void;
}

export interface HttpsNetworkClientOptions {
  /** Extra trusted CA certificates (PEM). The system roots stay trusted as well. */
  ca?: string;
  timeoutMs?: number;
  observer?: NetworkObserver;
}

/**
 * No HTTP response came back. MSAL replaces any error from a network client with a bare
 * `network_error`, so CertificateTokenClient records this one and reports it instead.
 */
export class TransportError extends Error {
  override readonly name = 'TransportError';
  constructor(
    readonly method: string,
    readonly url: string,
    /** Node's error code: UNABLE_TO_VERIFY_LEAF_SIGNATURE, ECONNREFUSED, ETIMEDOUT, … */
    readonly causeCode: string,
    detail: string,
  ) {
    super(`${method} ${url} failed: ${causeCode}: ${detail}${hintFor(causeCode)}`);
  }
}

const TLS_TRUST_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_UNTRUSTED',
]);

function hintFor(code: string): string {
  if (TLS_TRUST_CODES.has(code))
    return ' (the server certificate is not trusted: set PARTNER_CA_FILE to the CA that issued it)';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return ' (the server certificate is not valid for this host name)';
  if (code === 'CERT_HAS_EXPIRED') return ' (the server certificate has expired)';
  return '';
}

/** Decodes the client assertion in a form-encoded token request body, if there is one. */
export function decodeAssertionFromForm(body: string | undefined): DecodedAssertion | undefined {
  if (!body) return undefined;
  const assertion = new URLSearchParams(body).get('client_assertion');
  if (!assertion) return undefined;
  try {
    return {
      header: decodeProtectedHeader(assertion) as Record<string, unknown>,
      claims: decodeJwt(assertion) as Record<string, unknown>,
    };
  } catch {
    return { header: {}, claims: {} };
  }
}

function flattenHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    out[name.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

export class HttpsNetworkClient implements INetworkModule {
  private readonly agent: Agent;
  private readonly timeoutMs: number;
  private readonly observer: NetworkObserver | undefined;
  private counts = { get: 0, post: 0 };

  constructor(opts: HttpsNetworkClientOptions = {}) {
    this.agent = new Agent({ keepAlive: true, ...(opts.ca ? { secureContext: trustingAlso(opts.ca) } : {}) });
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_NETWORK_TIMEOUT_MS;
    this.observer = opts.observer;
  }

  /** How many requests went out (for tests and diagnostics). */
  get requestCounts(): { get: number; post: number } {
    return { ...this.counts };
  }

  sendGetRequestAsync<T>(
    url: string,
    options?: NetworkRequestOptions,
    timeout?: number,
  ): Promise<NetworkResponse<T>> {
    return this.send<T>('GET', url, options, timeout);
  }

  sendPostRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    return this.send<T>('POST', url, options);
  }

  /** Closes idle keep-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  private send<T>(
    method: 'GET' | 'POST',
    url: string,
    options?: NetworkRequestOptions,
    timeout?: number,
  ): Promise<NetworkResponse<T>> {
    const exchange: NetworkExchange = { method, url };
    if (method === 'POST') {
      const assertion = decodeAssertionFromForm(options?.body);
      if (assertion) exchange.assertion = assertion;
    }
    const target = new URL(url);
    if (target.protocol !== 'https:') {
      return Promise.reject(
        new TransportError(method, url, 'ERR_INSECURE_URL', 'only https is allowed for the authority'),
      );
    }
    const body = method === 'POST' ? Buffer.from(options?.body ?? '', 'utf8') : undefined;
    const headers: Record<string, string | number> = { ...(options?.headers ?? {}) };
    headers[TRACEPARENT_HEADER] = formatTraceparent(startTrace());
    if (body) headers['content-length'] = body.length;
    const requestOptions: RequestOptions = { method, agent: this.agent, headers };
    const timeoutMs = timeout ?? this.timeoutMs;

    this.counts[method === 'GET' ? 'get' : 'post'] += 1;
    this.observer?.onRequest?.(exchange);
    return new Promise<NetworkResponse<T>>((resolve, reject) => {
      const fail = (err: Error & { code?: string }) => {
        const error =
          err instanceof TransportError
            ? err
            : new TransportError(method, url, err.code ?? 'ERR_NETWORK', err.message);
        this.observer?.onResponse?.(exchange, 0, error);
        reject(error);
      };
      const req = request(target, requestOptions, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', fail);
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = text === '' ? {} : JSON.parse(text);
          } catch {
            if (status >= 200 && status < 300) {
              fail(
                new TransportError(
                  method,
                  url,
                  'ERR_INVALID_JSON',
                  `HTTP ${status} with a body that is not JSON: ${text.slice(0, 200)}`,
                ),
              );
              return;
            }
            // An error page (proxy, gateway): turn it into an OAuth-shaped error so MSAL reports it.
            parsed = {
              error: 'invalid_response',
              error_description: `HTTP ${status} from ${url}: ${text.slice(0, 200)}`,
            };
          }
          this.observer?.onResponse?.(exchange, status);
          resolve({ headers: flattenHeaders(res.headers), body: parsed as T, status });
        });
      });
      req.setTimeout(timeoutMs, () => {
        req.destroy(Object.assign(new Error(`no response within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
      });
      req.on('error', fail);
      req.end(body);
    });
  }
}

/**
 * A TLS context trusting the system roots and `ca`. Node's `ca` option replaces the default
 * roots; keeping them means that pointing at real Entra ID with PARTNER_CA_FILE set (e.g. for a
 * TLS-inspecting proxy) still works. Built once and given to the agent as `secureContext`: as a
 * `ca` option, the ~150 root PEMs are joined into the agent's pool key on every request (a
 * quarter of the facade's CPU time, measured).
 */
export function trustingAlso(ca: string): SecureContext {
  return createSecureContext({ ca: [...rootCertificates, ca] });
}
