/**
 * Microsoft Graph's REST API over HTTPS, as the reconcile needs it: a bearer token per request,
 * `@odata.nextLink` followed (same origin only, no page twice, at most 1000 pages), Graph's JSON
 * errors carried in the message. A refusal for throttling (429) is retried after Retry-After for
 * any method; 503 only for GET: a write Graph answered 503 may have been acted on, and retrying a
 * POST could create a second object. Nothing is retried after a timeout. Each request must
 * complete (headers and body) within `timeoutMs`, and an answer may not exceed `maxResponseBytes`. The same code talks to real Graph
 * (`https://graph.microsoft.com/v1.0`) and to the local emulator (`<emulator>/graph/v1.0`, with
 * its CA in `ca`). A token never appears in a message.
 */
import { Agent } from 'node:https';
import { rootCertificates } from 'node:tls';
import { HttpsTextError, httpsText, type HttpsAnswer } from './https-text';
import { printable } from './quote';

export interface GraphRestOptions {
  /** e.g. `https://graph.microsoft.com/v1.0` */
  baseUrl: string;
  /** A Graph access token (scope `https://graph.microsoft.com/.default`); called before each request. */
  token: () => Promise<string>;
  /** An extra CA (PEM) to trust besides the public ones, e.g. the development CA of the emulator. */
  ca?: string | Buffer;
  /** Whole request and answer, per attempt; default 30 s. */
  timeoutMs?: number;
  /** Largest answer body accepted; default 16 MiB. */
  maxResponseBytes?: number;
}

/** A Graph answer that is not 2xx: status, Graph error code, what was being done. */
export class GraphCallError extends Error {
  override readonly name: string = 'GraphCallError';

  constructor(
    readonly status: number,
    readonly code: string,
    readonly operation: string,
    message: string,
  ) {
    super(message);
  }
}

/** A 403: names the permission that operation needs (Graph does not). */
export class GraphPermissionError extends GraphCallError {
  override readonly name: string = 'GraphPermissionError';

  constructor(
    code: string,
    operation: string,
    readonly permission: string,
    graphMessage: string,
  ) {
    super(
      403,
      code,
      operation,
      `${operation}: Microsoft Graph refused it (HTTP 403 ${code}: ${graphMessage}); ` +
        `the identity running this needs the application permission ${permission}, granted with admin consent`,
    );
  }
}

/**
 * The Graph permission an operation needs (Graph's 403 does not say): reading anything,
 * assignments included, needs Application.Read.All; granting and revoking app roles
 * AppRoleAssignment.ReadWrite.All; other writes Application.ReadWrite.All.
 */
export function permissionFor(method: string, path: string): string {
  const route = path.split('?')[0]!;
  if (method === 'GET') return 'Application.Read.All';
  if (/\/(appRoleAssignments|appRoleAssignedTo)(\/|$)/.test(route)) return 'AppRoleAssignment.ReadWrite.All';
  return 'Application.ReadWrite.All';
}

/** 429 is a refusal (nothing was done): any method may repeat it. 503 only a read. */
function retried(method: string, status: number): boolean {
  return status === 429 || (status === 503 && method === 'GET');
}
const MAX_RETRIES = 4;
const MAX_RETRY_WAIT_MS = 30_000;
const MAX_PAGES = 1000;

export class GraphRest {
  private readonly base: URL;
  private readonly agent: Agent;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;

  constructor(private readonly opts: GraphRestOptions) {
    let base: URL;
    try {
      base = new URL(opts.baseUrl.replace(/\/+$/, ''));
    } catch {
      throw new TypeError(`GraphRest baseUrl must be an https:// URL, got "${opts.baseUrl}"`);
    }
    if (base.protocol !== 'https:')
      throw new TypeError(`GraphRest baseUrl must be an https:// URL, got "${opts.baseUrl}"`);
    this.base = base;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.maxResponseBytes = opts.maxResponseBytes ?? 16 * 1024 * 1024;
    this.agent = new Agent({
      keepAlive: true,
      ...(opts.ca !== undefined ? { ca: [...rootCertificates, opts.ca.toString()] } : {}),
    });
  }

  /** The base URL, e.g. `https://graph.microsoft.com/v1.0`. */
  get baseUrl(): string {
    return this.base.href.replace(/\/+$/, '');
  }

  async get<T>(path: string, operation?: string): Promise<T> {
    return (await this.call('GET', path, undefined, operation)) as T;
  }

  /** Every item of a collection: `value` of each page, following `@odata.nextLink`. */
  async list<T>(path: string, operation?: string): Promise<T[]> {
    const what = operation ?? `GET ${routeOf(path)}`;
    const items: T[] = [];
    const read = new Set<string>();
    let next: string | undefined = path;
    while (next !== undefined) {
      const problem = read.has(next)
        ? 'its @odata.nextLink points at a page already read'
        : read.size >= MAX_PAGES
          ? `it has more than ${MAX_PAGES} pages`
          : undefined;
      if (problem !== undefined)
        throw new GraphCallError(200, 'UnexpectedResponse', what, `${what}: stopped reading: ${problem}`);
      read.add(next);
      const page = (await this.call('GET', next, undefined, what)) as
        { value?: T[]; '@odata.nextLink'?: string } | undefined;
      if (!Array.isArray(page?.value))
        throw new GraphCallError(
          200,
          'UnexpectedResponse',
          what,
          `${what}: Graph's answer has no "value" list`,
        );
      items.push(...page.value);
      next = page['@odata.nextLink'];
    }
    return items;
  }

  async post<T>(path: string, body: unknown, operation?: string): Promise<T> {
    return (await this.call('POST', path, body, operation)) as T;
  }

  async patch(path: string, body: unknown, operation?: string): Promise<void> {
    await this.call('PATCH', path, body, operation);
  }

  async delete(path: string, operation?: string): Promise<void> {
    await this.call('DELETE', path, undefined, operation);
  }

  /** Closes kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  /** `path` relative to the base URL, or an absolute nextLink on the same origin. */
  private urlOf(path: string): URL {
    if (/^https?:\/\//i.test(path)) {
      const url = new URL(path);
      if (url.origin !== this.base.origin)
        throw new Error(`Graph sent a link to another origin (${url.origin}); not following it with a token`);
      return url;
    }
    return new URL(`${this.base.href.replace(/\/+$/, '')}${path.startsWith('/') ? '' : '/'}${path}`);
  }

  private async call(method: string, path: string, body: unknown, description?: string): Promise<unknown> {
    const url = this.urlOf(path);
    const route = routeOf(url.pathname.slice(this.base.pathname.replace(/\/+$/, '').length));
    const operation = description ?? `${method} ${route}`;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = {
        authorization: `Bearer ${await this.opts.token()}`,
        accept: 'application/json',
      };
      if (payload !== undefined) headers['content-type'] = 'application/json';
      const answer = await this.send(method, url, headers, payload, operation);
      if (answer.status >= 200 && answer.status < 300) return parseBody(answer, operation);
      if (retried(method, answer.status) && attempt < MAX_RETRIES) {
        await sleep(retryDelayMs(answer.headers['retry-after'], attempt));
        continue;
      }
      throw errorOf(answer, method, url.pathname, operation);
    }
  }

  private async send(
    method: string,
    url: URL,
    headers: Record<string, string>,
    body: string | undefined,
    operation: string,
  ): Promise<HttpsAnswer> {
    try {
      return await httpsText(url, {
        method,
        headers,
        ...(body === undefined ? {} : { body }),
        agent: this.agent,
        timeoutMs: this.timeoutMs,
        maxBytes: this.maxResponseBytes,
      });
    } catch (err) {
      if (!(err instanceof HttpsTextError)) throw err;
      switch (err.reason) {
        case 'too-large':
          throw new Error(
            `${operation}: Graph's answer is larger than ${this.maxResponseBytes} bytes; not read`,
          );
        case 'timeout':
          throw new Error(`${operation}: Graph did not answer within ${this.timeoutMs} ms (${url.origin})`);
        case 'network':
          throw new Error(
            `${operation}: could not reach Graph at ${url.origin}: ${err.cause?.code ?? err.message}`,
          );
      }
    }
  }
}

function routeOf(path: string): string {
  return path.split('?')[0]!;
}

function parseBody(answer: HttpsAnswer, operation: string): unknown {
  if (answer.text === '') return undefined;
  try {
    return JSON.parse(answer.text);
  } catch {
    throw new GraphCallError(
      answer.status,
      'UnexpectedResponse',
      operation,
      `${operation}: Graph answered with a body that is not JSON`,
    );
  }
}

function errorOf(answer: HttpsAnswer, method: string, path: string, operation: string): GraphCallError {
  let error: { code?: unknown; message?: unknown } | undefined;
  try {
    error = (JSON.parse(answer.text) as { error?: typeof error }).error;
  } catch {
    error = undefined;
  }
  const code =
    typeof error?.code === 'string' ? printable(error.code.slice(0, 100)) : `HTTP_${answer.status}`;
  const message = printable(
    (typeof error?.message === 'string' ? error.message : 'no error details').slice(0, 500),
  );
  if (answer.status === 403)
    return new GraphPermissionError(code, operation, permissionFor(method, path), message);
  return new GraphCallError(
    answer.status,
    code,
    operation,
    `${operation}: Microsoft Graph answered HTTP ${answer.status} ${code}: ${message}`,
  );
}

/** Retry-After in seconds (or an HTTP date); else 1, 2, 4, 8 s; never more than 30 s. */
function retryDelayMs(header: string | string[] | undefined, attempt: number): number {
  const value = Array.isArray(header) ? header[0] : header;
  let ms = 1000 * 2 ** attempt;
  if (value !== undefined && /^\d+$/.test(value.trim())) ms = Number(value.trim()) * 1000;
  else if (value !== undefined && !Number.isNaN(Date.parse(value))) ms = Date.parse(value) - Date.now();
  return Math.min(Math.max(ms, 0), MAX_RETRY_WAIT_MS);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
