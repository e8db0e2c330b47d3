/**
 * What the attack corpus runs on: a recording upstream that notices every byte it gets (requests
 * it parses, parse errors, and bytes that belong to no complete request), and a raw TLS client
 * that sends a case's bytes as written and reads back every response.
 */
import { createServer, IncomingHttpHeaders } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { connect } from 'node:tls';
import type { ExpectedRequest, Outcome, Write } from './attack-corpus';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface UpstreamRequest {
  /** Which upstream connection it came on. */
  connection: number;
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** false: the head arrived, the body never finished. */
  complete: boolean;
}

export interface UpstreamActivity {
  requests: UpstreamRequest[];
  /** The upstream's parser refused bytes (llhttp error codes). */
  errors: string[];
  /** Bytes on a connection that belong to no complete request: smuggled or half-sent requests. */
  strayBytes: Array<{ connection: number; bytes: string }>;
}

interface Connection {
  id: number;
  socket: Socket;
  raw: Buffer[];
  requests: UpstreamRequest[];
}

/** Where a chunked body that starts at `offset` ends (after its trailer section), if it is all there. */
function chunkedEnd(raw: Buffer, offset: number): number | undefined {
  let at = offset;
  for (;;) {
    const lineEnd = raw.indexOf('\r\n', at);
    if (lineEnd < 0) return undefined;
    const size = parseInt(raw.toString('latin1', at, lineEnd).split(';')[0]!, 16);
    if (!Number.isSafeInteger(size)) return undefined;
    at = lineEnd + 2;
    if (size === 0) break;
    at += size + 2;
  }
  for (;;) {
    const lineEnd = raw.indexOf('\r\n', at);
    if (lineEnd < 0) return undefined;
    if (lineEnd === at) return at + 2;
    at = lineEnd + 2;
  }
}

/**
 * How many of a connection's bytes the complete requests parsed on it account for. The
 * gateway's HTTP client writes CRLF heads and Content-Length or chunked bodies; anything else
 * ends the count, and what is left over is reported.
 */
function accountedBytes(raw: Buffer, requests: readonly UpstreamRequest[]): number {
  let offset = 0;
  for (const request of requests) {
    if (!request.complete) return offset;
    const headEnd = raw.indexOf('\r\n\r\n', offset);
    if (headEnd < 0) return offset;
    let end: number | undefined = headEnd + 4;
    if (request.headers['transfer-encoding'] !== undefined) end = chunkedEnd(raw, end);
    else end += Number(request.headers['content-length'] ?? 0);
    if (end === undefined || end > raw.length) return offset;
    offset = end;
  }
  return offset;
}

/**
 * A plain HTTP backend on 127.0.0.1 that answers every request it parses with 200 and keeps
 * connections alive (as the API does), recording everything it receives.
 */
export class RecordingUpstream {
  readonly requests: UpstreamRequest[] = [];
  readonly errors: string[] = [];
  private readonly connections = new Map<number, Connection>();
  private lastData = 0;

  private constructor(
    private readonly server: ReturnType<typeof createServer>,
    readonly url: string,
    readonly port: number,
  ) {}

  static async start(): Promise<RecordingUpstream> {
    let nextId = 1;
    const server = createServer();
    server.keepAliveTimeout = 60_000;
    const upstream = await new Promise<RecordingUpstream>((resolve) =>
      server.listen(0, '127.0.0.1', () => {
        const port = (server.address() as AddressInfo).port;
        resolve(new RecordingUpstream(server, `http://127.0.0.1:${port}`, port));
      }),
    );
    const connectionOf = new WeakMap<Socket, Connection>();
    server.on('connection', (socket: Socket) => {
      const connection: Connection = { id: nextId++, socket, raw: [], requests: [] };
      connectionOf.set(socket, connection);
      upstream.connections.set(connection.id, connection);
      socket.on('data', (chunk: Buffer) => {
        connection.raw.push(chunk);
        upstream.lastData = performance.now();
      });
    });
    server.on('request', (req, res) => {
      const connection = connectionOf.get(req.socket)!;
      const request: UpstreamRequest = {
        connection: connection.id,
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: '',
        complete: false,
      };
      connection.requests.push(request);
      upstream.requests.push(request);
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('error', () => undefined);
      req.on('end', () => {
        request.body = Buffer.concat(chunks).toString('latin1');
        request.complete = true;
        const body = JSON.stringify({ received: `${request.method} ${request.url}` });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    });
    server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
      // A peer that goes away is not a parse problem; everything else the parser refused is.
      if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE')
        upstream.errors.push(`${err.code ?? 'error'}: ${err.message}`);
      if (socket.writable)
        socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      socket.destroy();
    });
    return upstream;
  }

  mark(): { requests: number; errors: number } {
    return { requests: this.requests.length, errors: this.errors.length };
  }

  /** Waits until no byte has arrived for `quietMs` (at most `maxMs`). */
  async settle(quietMs = 50, maxMs = 1_500): Promise<void> {
    const start = performance.now();
    while (performance.now() - start < maxMs && performance.now() - this.lastData < quietMs) await sleep(20);
  }

  /**
   * What arrived since `mark`. A connection left with stray bytes or a half-received request is
   * reported once and closed, so it cannot be blamed on (or poison) a later case.
   */
  since(mark: { requests: number; errors: number }): UpstreamActivity {
    const strayBytes: UpstreamActivity['strayBytes'] = [];
    for (const connection of this.connections.values()) {
      const raw = Buffer.concat(connection.raw);
      const accounted = accountedBytes(raw, connection.requests);
      const halfReceived = connection.requests.some((r) => !r.complete);
      if (accounted < raw.length || halfReceived) {
        strayBytes.push({ connection: connection.id, bytes: raw.toString('latin1', accounted) });
        connection.socket.destroy();
      }
      if (connection.socket.destroyed) this.connections.delete(connection.id);
    }
    return {
      requests: this.requests.slice(mark.requests),
      errors: this.errors.slice(mark.errors),
      strayBytes,
    };
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface Exchange {
  /** Final responses, in order. */
  responses: RawResponse[];
  /** Interim (1xx) statuses. */
  interim: number[];
  /** How it ended: the server closed (or reset) the connection, or the client stopped waiting. */
  end: 'closed' | 'reset' | 'waited';
  /** Bytes after the last complete response that are not one. */
  unparsed: number;
  elapsedMs: number;
}

/** The responses in `buf`; a response without length runs to the end of the connection (`eof`). */
export function parseResponses(
  buf: Buffer,
  eof: boolean,
): { responses: RawResponse[]; interim: number[]; rest: number } {
  const responses: RawResponse[] = [];
  const interim: number[] = [];
  let at = 0;
  for (;;) {
    const headEnd = buf.indexOf('\r\n\r\n', at);
    if (headEnd < 0) break;
    const [statusLine, ...lines] = buf.toString('latin1', at, headEnd).split('\r\n');
    const match = /^HTTP\/\d\.\d (\d{3})/.exec(statusLine!);
    if (!match) break;
    const status = Number(match[1]);
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    let bodyEnd: number | undefined = headEnd + 4;
    let body = '';
    if (status < 200) {
      interim.push(status);
      at = bodyEnd;
      continue;
    }
    if (status === 204 || status === 304) {
      // no body
    } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const end = chunkedEnd(buf, bodyEnd);
      if (end === undefined) break;
      const parts: string[] = [];
      let p = bodyEnd;
      for (;;) {
        const lineEnd = buf.indexOf('\r\n', p);
        const size = parseInt(buf.toString('latin1', p, lineEnd), 16);
        if (size === 0) break;
        parts.push(buf.toString('latin1', lineEnd + 2, lineEnd + 2 + size));
        p = lineEnd + 2 + size + 2;
      }
      body = parts.join('');
      bodyEnd = end;
    } else if (headers['content-length'] !== undefined) {
      const end = bodyEnd + Number(headers['content-length']);
      if (end > buf.length) break;
      body = buf.toString('latin1', bodyEnd, end);
      bodyEnd = end;
    } else {
      if (!eof) break;
      body = buf.toString('latin1', bodyEnd);
      bodyEnd = buf.length;
    }
    responses.push({ status, headers, body });
    at = bodyEnd;
  }
  return { responses, interim, rest: buf.length - at };
}

export interface ExchangeOptions {
  port: number;
  caPem: string;
  writes: readonly Write[];
  /** Stop waiting once this many final responses arrived (and, if asked, the connection closed). */
  responses: number;
  /** Wait for the server to close the connection after the responses. */
  awaitClose: boolean;
  waitMs: number;
}

/** Sends the writes over a new TLS connection (trusting only `caPem`) and reads what comes back. */
export async function exchange(opts: ExchangeOptions): Promise<Exchange> {
  const started = performance.now();
  const socket = connect({ host: '127.0.0.1', port: opts.port, servername: 'localhost', ca: opts.caPem });
  const chunks: Buffer[] = [];
  let lastData = performance.now();
  let end: Exchange['end'] | undefined;
  let reset = false;
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    lastData = performance.now();
  });
  socket.on('error', () => {
    reset = true;
  });
  socket.on('close', () => {
    end ??= reset ? 'reset' : 'closed';
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  void (async () => {
    for (const write of opts.writes) {
      if (write.delayMs) await sleep(write.delayMs);
      if (end || socket.destroyed) return;
      socket.write(Buffer.from(write.bytes, 'latin1'));
    }
  })();
  const deadline = started + opts.waitMs;
  for (;;) {
    await sleep(10);
    if (end) break;
    const { responses } = parseResponses(Buffer.concat(chunks), false);
    const last = responses[responses.length - 1];
    const closing = opts.awaitClose || /close/i.test(last?.headers.connection ?? '');
    if (responses.length >= opts.responses && !closing && performance.now() - lastData >= 50) {
      end = 'waited';
      break;
    }
    if (performance.now() >= deadline) {
      end = 'waited';
      break;
    }
  }
  socket.destroy();
  const parsed = parseResponses(Buffer.concat(chunks), end !== 'waited');
  return {
    responses: parsed.responses,
    interim: parsed.interim,
    end,
    unparsed: parsed.rest,
    elapsedMs: Math.round(performance.now() - started),
  };
}

// ---- comparing and describing -------------------------------------------------------------------

const pathOf = (url: string): string => url.replace(/[?#].*$/s, '');

/** Why `request` is not `expected` (empty when it is). */
function requestMismatch(request: UpstreamRequest, expected: ExpectedRequest): string[] {
  const problems: string[] = [];
  if (request.method !== expected.method || pathOf(request.url) !== expected.path)
    problems.push(
      `expected ${expected.method} ${expected.path}, upstream got ${request.method} ${request.url}`,
    );
  const body = expected.body ?? '';
  if (request.body !== body)
    problems.push(
      `${request.method} ${request.url}: body ${JSON.stringify(request.body)}, expected ${JSON.stringify(body)}`,
    );
  if (body !== '' && request.headers['content-length'] !== String(Buffer.byteLength(body, 'latin1')))
    problems.push(
      `${request.method} ${request.url}: body not framed by an explicit Content-Length (content-length ${String(request.headers['content-length'])}, transfer-encoding ${String(request.headers['transfer-encoding'])})`,
    );
  for (const [name, value] of Object.entries(expected.headers ?? {})) {
    const got = request.headers[name];
    if (value === null ? got !== undefined : got !== value)
      problems.push(
        `${request.method} ${request.url}: header ${name} is ${JSON.stringify(got)}, expected ${JSON.stringify(value)}`,
      );
  }
  return problems;
}

/** Why the exchange and upstream activity do not match `outcome` (empty when they do). */
export function outcomeMismatch(outcome: Outcome, got: Exchange, upstream: UpstreamActivity): string[] {
  const problems: string[] = [];
  const statuses = got.responses.map((r) => r.status);
  const wanted = outcome.responses.map((allowed) => allowed.join('|'));
  if (
    statuses.length !== outcome.responses.length ||
    statuses.some((status, i) => !outcome.responses[i]!.includes(status))
  )
    problems.push(`answers [${statuses.join(', ')}] (${got.end}), expected [${wanted.join(', ')}]`);
  if (outcome.closes && got.end === 'waited') problems.push('the connection stayed open, expected it closed');
  if (upstream.requests.length !== outcome.upstream.length)
    problems.push(
      `upstream got ${upstream.requests.length} request(s) [${upstream.requests.map((r) => `${r.method} ${r.url}`).join(', ')}], expected ${outcome.upstream.length}`,
    );
  else
    outcome.upstream.forEach((expected, i) =>
      problems.push(...requestMismatch(upstream.requests[i]!, expected)),
    );
  return problems;
}

/** The status column of the report: `200, 401`, or how the connection ended without an answer. */
export function describeAnswers(got: Exchange): string {
  if (got.responses.length === 0) {
    if (got.unparsed > 0) return `no HTTP/1.x answer (${got.unparsed} other bytes)`;
    return got.end === 'waited'
      ? 'no answer (still open)'
      : `no answer (${got.end === 'reset' ? 'reset' : 'closed'})`;
  }
  return got.responses.map((r) => r.status).join(', ');
}

/** The "upstream saw" column: requests, parse errors and stray bytes. */
export function describeUpstream(
  activity: UpstreamActivity,
  unlogged: ReadonlySet<UpstreamRequest> = new Set(),
): string {
  const parts = activity.requests.map((r) => {
    const body = r.body.length ? ` +${r.body.length} B body` : '';
    return `${r.method} ${r.url.length > 40 ? `${r.url.slice(0, 40)}…` : r.url}${body}${r.complete ? '' : ' (incomplete)'}${unlogged.has(r) ? ' **NOT ADMITTED**' : ''}`;
  });
  for (const error of activity.errors) parts.push(`parse error ${error.split(':')[0]}`);
  for (const stray of activity.strayBytes)
    parts.push(`${stray.bytes.length} stray bytes ${JSON.stringify(stray.bytes.slice(0, 24))}…`);
  return parts.length ? parts.join('; ') : '—';
}
