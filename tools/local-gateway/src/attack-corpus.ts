/**
 * The gateway's HTTP attack corpus: raw HTTP/1.x requests (request smuggling and its
 * obfuscations, oversize lines and headers, malformed syntax, absolute-form and path tricks,
 * Host/Origin games, pipelining, slow senders), each with what certflow's gateway must answer and
 * exactly which requests may reach its backend. attack-corpus.spec.ts sends every case over TLS
 * to the gateway (asserted) and to nginx as a reverse proxy (recorded as a reference).
 *
 * Strings are bytes: one character per byte (latin1), so a case can hold any byte, NUL included.
 */

/** Where a case is sent, and what it may use to build its bytes. */
export interface CorpusTarget {
  /** `localhost:PORT`, the authority a well-behaved client names in Host. */
  authority: string;
  port: number;
  /** A valid access token for the API: validate-jwt admits it. */
  token: string;
  /** A valid signed access token of about 100 KB (a padded claim). */
  hugeToken: string;
}

export interface Write {
  /** Pause before this write (slow senders). */
  delayMs?: number;
  /** latin1: one character per byte. */
  bytes: string;
}

/** A request the backend must receive. */
export interface ExpectedRequest {
  method: string;
  /** The normalized path in origin form, without query. */
  path: string;
  /** The body, exactly (default: empty). */
  body?: string;
  /** Headers the backend must see with exactly this value, or (null) must not see at all. */
  headers?: Readonly<Record<string, string | null>>;
}

/** One outcome the spec allows. */
export interface Outcome {
  /**
   * The final answers, in order (pipelining: one per answered request); each lists the
   * statuses allowed. Empty: no answer at all (only where HTTP allows none).
   */
  responses: ReadonlyArray<readonly number[]>;
  /** Exactly these requests reach the backend, in this order. */
  upstream: readonly ExpectedRequest[];
  /** The gateway closes the connection after its last answer (idle keep-alive, HTTP/1.0). */
  closes?: boolean;
}

export type CaseGroup =
  | 'control'
  | 'smuggling'
  | 'framing'
  | 'chunked'
  | 'size'
  | 'syntax'
  | 'method/version'
  | 'target'
  | 'path'
  | 'host/origin'
  | 'pipelining'
  | 'slow'
  | 'protocol';

export interface AttackCase {
  name: string;
  group: CaseGroup;
  writes(t: CorpusTarget): Write[];
  /** The outcomes the spec allows (usually one); the case passes when one of them matches. */
  expect: readonly Outcome[];
  /** How long the client waits for the answers (default DEFAULT_WAIT_MS). */
  waitMs?: number;
}

export const DEFAULT_WAIT_MS = 2_000;
/** Slow cases: the gateway's timeouts (1 s) plus Node's deadline check interval, with room for a busy machine. */
const SLOW_WAIT_MS = 4_000;

/**
 * The timeouts the corpus is written for (startGateway options, and nginx's equivalents):
 * short, so the slow cases take about a second each.
 */
export const CORPUS_TIMEOUTS = { headerTimeoutMs: 1_000, bodyTimeoutMs: 1_000, keepAliveTimeoutMs: 1_000 };

/** Statuses the gateway itself answers a request it refuses with (APIM error shape, `connection: close`). */
export const GATEWAY_REFUSAL_STATUSES: ReadonlySet<number> = new Set([
  400, 405, 408, 413, 414, 421, 431, 501, 505,
]);

const MiB = 1024 * 1024;

// ---- building bytes -------------------------------------------------------------------------

/** A request: start line, header lines, CRLF everywhere (cases that want other line ends write them). */
function http(startLine: string, headerLines: readonly string[], body = ''): string {
  return `${startLine}\r\n${headerLines.map((h) => `${h}\r\n`).join('')}\r\n${body}`;
}
const host = (t: CorpusTarget): string => `Host: ${t.authority}`;
const auth = (t: CorpusTarget): string => `Authorization: Bearer ${t.token}`;
/** Host and a valid token, then `extra`. */
const admitted = (t: CorpusTarget, ...extra: string[]): string[] => [host(t), auth(t), ...extra];
const get = (t: CorpusTarget, target = '/orders', ...extra: string[]): string =>
  http(`GET ${target} HTTP/1.1`, admitted(t, ...extra));
/** A chunked body: one chunk per part, then the last chunk and the final CRLF. */
function chunked(...parts: string[]): string {
  return `${parts.map((p) => `${p.length.toString(16)}\r\n${p}\r\n`).join('')}0\r\n\r\n`;
}
/** The request an attacker hides in a body: no token, and a forged mTLS verification header. */
const SMUGGLED = http(
  'POST /orders HTTP/1.1',
  [
    'Host: 127.0.0.1',
    'X-Client-Cert-Verification: SUCCESS',
    'Content-Type: application/json',
    'Content-Length: 20',
  ],
  '{"sku":"free-money"}',
);
const POST_BODY = '{"sku":"a-1","qty":2}';

const once = (bytes: string): Write[] => [{ bytes }];
/** `bytes` in pieces of `size` bytes, `delayMs` apart. */
function trickle(first: string, rest: string, size: number, delayMs: number): Write[] {
  const writes: Write[] = [{ bytes: first }];
  for (let i = 0; i < rest.length; i += size) writes.push({ delayMs, bytes: rest.slice(i, i + size) });
  return writes;
}

// ---- outcomes ---------------------------------------------------------------------------------

const fwd = (method: string, path: string, more: Omit<ExpectedRequest, 'method' | 'path'> = {}) => ({
  method,
  path,
  ...more,
});
/** One answer with this status, these requests forwarded. */
const answered = (status: number, ...upstream: ExpectedRequest[]): Outcome => ({
  responses: [[status]],
  upstream,
});
/** One answer with one of these statuses, nothing forwarded. */
const refused = (...statuses: number[]): Outcome => ({ responses: [statuses], upstream: [] });

const ORDERS = fwd('GET', '/orders');
/** GET /orders/{id} has an operation policy that sets x-operation: it must run for every spelling of the path. */
const GET_ORDER = fwd('GET', '/orders/ord-1002', { headers: { 'x-operation': 'get-order' } });

const c = (
  group: CaseGroup,
  name: string,
  writes: (t: CorpusTarget) => Write[],
  expect: Outcome | Outcome[],
  waitMs?: number,
): AttackCase => ({
  group,
  name,
  writes,
  expect: Array.isArray(expect) ? expect : [expect],
  ...(waitMs ? { waitMs } : {}),
});

// ---- the cases ----------------------------------------------------------------------------------

export const ATTACK_CORPUS: readonly AttackCase[] = [
  // Controls: the harness and the gateway work for ordinary requests.
  c('control', 'valid GET', (t) => once(get(t)), answered(200, ORDERS)),
  c(
    'control',
    'valid POST with Content-Length',
    (t) =>
      once(
        http(
          'POST /orders HTTP/1.1',
          admitted(t, 'Content-Type: application/json', `Content-Length: ${POST_BODY.length}`),
          POST_BODY,
        ),
      ),
    answered(200, fwd('POST', '/orders', { body: POST_BODY })),
  ),
  c('control', 'no token', (t) => once(http('GET /orders HTTP/1.1', [host(t)])), refused(401)),
  c(
    'control',
    'GET /orders/{id} runs its operation policy',
    (t) => once(get(t, '/orders/ord-1002')),
    answered(200, GET_ORDER),
  ),
  c(
    'control',
    'DELETE /orders/{id} is refused by its operation policy',
    (t) => once(http('DELETE /orders/ord-1002 HTTP/1.1', admitted(t))),
    refused(403),
  ),

  // Known attack 1: a body the gateway forwarded unframed became further requests upstream.
  c(
    'smuggling',
    'GET, Transfer-Encoding: chunked, the body holds a POST',
    (t) => once(get(t, '/orders', 'Transfer-Encoding: chunked') + chunked(SMUGGLED)),
    answered(200, fwd('GET', '/orders', { body: SMUGGLED })),
  ),
  c(
    'smuggling',
    'DELETE, Transfer-Encoding: chunked, the body holds a POST',
    (t) =>
      once(http('DELETE /orders HTTP/1.1', admitted(t, 'Transfer-Encoding: chunked'), chunked(SMUGGLED))),
    answered(200, fwd('DELETE', '/orders', { body: SMUGGLED })),
  ),
  c(
    'smuggling',
    'OPTIONS, Transfer-Encoding: chunked, the body holds a POST',
    (t) =>
      once(http('OPTIONS /orders HTTP/1.1', admitted(t, 'Transfer-Encoding: chunked'), chunked(SMUGGLED))),
    answered(200, fwd('OPTIONS', '/orders', { body: SMUGGLED })),
  ),
  c(
    'smuggling',
    'GET, the body split over three chunks holds a POST',
    (t) =>
      once(
        get(t, '/orders', 'Transfer-Encoding: chunked') +
          chunked(SMUGGLED.slice(0, 10), SMUGGLED.slice(10, 40), SMUGGLED.slice(40)),
      ),
    answered(200, fwd('GET', '/orders', { body: SMUGGLED })),
  ),
  c(
    'smuggling',
    'GET, Content-Length named in Connection',
    (t) =>
      once(get(t, '/orders', 'Connection: content-length', `Content-Length: ${SMUGGLED.length}`) + SMUGGLED),
    refused(400),
  ),
  c(
    'smuggling',
    'GET, Transfer-Encoding named in Connection',
    (t) =>
      once(
        get(t, '/orders', 'Connection: keep-alive, Transfer-Encoding', 'Transfer-Encoding: chunked') +
          chunked(SMUGGLED),
      ),
    refused(400),
  ),
  c(
    'smuggling',
    'GET with a Content-Length body holding a POST',
    (t) => once(get(t, '/orders', `Content-Length: ${SMUGGLED.length}`) + SMUGGLED),
    answered(200, fwd('GET', '/orders', { body: SMUGGLED })),
  ),
  c(
    'smuggling',
    'POST, chunked body holding a second request',
    (t) => once(http('POST /orders HTTP/1.1', admitted(t, 'Transfer-Encoding: chunked'), chunked(SMUGGLED))),
    answered(200, fwd('POST', '/orders', { body: SMUGGLED })),
  ),
  c(
    'smuggling',
    'chunked GET ends, the next request (no token) follows in the same write',
    (t) => once(get(t, '/orders', 'Transfer-Encoding: chunked') + chunked() + SMUGGLED),
    // The hidden request names Host 127.0.0.1 without the port: 421, or 401 for its missing token.
    { responses: [[200], [401, 421]], upstream: [ORDERS] },
  ),

  // Known attack 2: ambiguous framing. Refused with 400 before any policy runs.
  c(
    'framing',
    'Content-Length and Transfer-Encoding',
    (t) =>
      once(
        http(
          'POST /orders HTTP/1.1',
          admitted(t, 'Content-Length: 4', 'Transfer-Encoding: chunked'),
          chunked(SMUGGLED),
        ),
      ),
    refused(400),
  ),
  c(
    'framing',
    'Transfer-Encoding and Content-Length (TE first)',
    (t) =>
      once(
        http(
          'POST /orders HTTP/1.1',
          admitted(t, 'Transfer-Encoding: chunked', 'Content-Length: 4'),
          chunked(SMUGGLED),
        ),
      ),
    refused(400),
  ),
  c(
    'framing',
    'duplicate Content-Length, same value',
    (t) => once(http('POST /orders HTTP/1.1', admitted(t, 'Content-Length: 2', 'Content-Length: 2'), '{}')),
    refused(400),
  ),
  c(
    'framing',
    'duplicate Content-Length, different values',
    (t) =>
      once(
        http(
          'POST /orders HTTP/1.1',
          admitted(t, 'Content-Length: 2', 'Content-Length: 40'),
          '{}' + SMUGGLED,
        ),
      ),
    refused(400),
  ),
  c(
    'framing',
    'Content-Length list "2, 2"',
    (t) => once(http('POST /orders HTTP/1.1', admitted(t, 'Content-Length: 2, 2'), '{}')),
    refused(400),
  ),
  c(
    'framing',
    'Content-Length not a number ("2e1")',
    (t) => once(http('POST /orders HTTP/1.1', admitted(t, 'Content-Length: 2e1'), '{}')),
    refused(400),
  ),
  c(
    'framing',
    'Content-Length negative',
    (t) => once(http('POST /orders HTTP/1.1', admitted(t, 'Content-Length: -1'), '{}')),
    refused(400),
  ),
  c(
    'framing',
    'Content-Length with a plus sign',
    (t) => once(http('POST /orders HTTP/1.1', admitted(t, 'Content-Length: +2'), '{}')),
    refused(400),
  ),
  c(
    'framing',
    'Content-Length overflowing 64 bits',
    (t) => once(http('POST /orders HTTP/1.1', admitted(t, 'Content-Length: 99999999999999999999'), '{}')),
    refused(400, 413),
  ),
  c(
    'framing',
    'Content-Length above the 2 MiB body limit',
    (t) => once(http('POST /orders HTTP/1.1', admitted(t, `Content-Length: ${3 * MiB}`), '{"sku":')),
    refused(413),
  ),
  c(
    'framing',
    'Transfer-Encoding: xchunked',
    (t) => once(get(t, '/orders', 'Transfer-Encoding: xchunked') + chunked(SMUGGLED)),
    refused(400),
  ),
  c(
    'framing',
    'Transfer-Encoding: chunked, identity',
    (t) => once(get(t, '/orders', 'Transfer-Encoding: chunked, identity') + chunked(SMUGGLED)),
    refused(400),
  ),
  c(
    'framing',
    'Transfer-Encoding: chunked, chunked',
    (t) => once(get(t, '/orders', 'Transfer-Encoding: chunked, chunked') + chunked(SMUGGLED)),
    refused(400),
  ),
  c(
    'framing',
    'Transfer-Encoding: chunked on two header lines',
    (t) =>
      once(get(t, '/orders', 'Transfer-Encoding: chunked', 'Transfer-Encoding: chunked') + chunked(SMUGGLED)),
    refused(400),
  ),
  c(
    'framing',
    'Transfer-Encoding: "chunked" (quoted)',
    (t) => once(get(t, '/orders', 'Transfer-Encoding: "chunked"') + chunked(SMUGGLED)),
    refused(400),
  ),
  c(
    'framing',
    'Transfer-Encoding: chunked followed by a vertical tab',
    (t) => once(get(t, '/orders', 'Transfer-Encoding: chunked\x0b') + chunked(SMUGGLED)),
    refused(400),
  ),
  c(
    'framing',
    'Transfer-Encoding:<TAB>chunked (tab is optional whitespace)',
    (t) => once(get(t, '/orders', 'Transfer-Encoding:\tchunked') + chunked(SMUGGLED)),
    answered(200, fwd('GET', '/orders', { body: SMUGGLED })),
  ),
  c(
    'framing',
    'Transfer-Encoding: CHUNKED (codings are case-insensitive)',
    (t) => once(get(t, '/orders', 'Transfer-Encoding: CHUNKED') + chunked(SMUGGLED)),
    answered(200, fwd('GET', '/orders', { body: SMUGGLED })),
  ),
  c(
    'framing',
    'Transfer-Encoding: gzip, chunked (a coding the gateway cannot forward)',
    (t) =>
      once(http('POST /orders HTTP/1.1', admitted(t, 'Transfer-Encoding: gzip, chunked'), chunked(SMUGGLED))),
    refused(400, 501),
  ),
  c(
    'framing',
    'Transfer-Encoding: identity, chunked',
    (t) =>
      once(
        http('POST /orders HTTP/1.1', admitted(t, 'Transfer-Encoding: identity, chunked'), chunked(SMUGGLED)),
      ),
    [refused(400, 501), answered(200, fwd('POST', '/orders', { body: SMUGGLED }))],
  ),
  c(
    'framing',
    'Transfer-Encoding on an obs-fold line after another header',
    (t) => once(get(t, '/orders', 'X-Note: a', ' Transfer-Encoding: chunked') + chunked(SMUGGLED)),
    refused(400),
  ),
  c(
    'framing',
    'Transfer-Encoding value folded onto the next line',
    (t) => once(get(t, '/orders', 'Transfer-Encoding:', ' chunked') + chunked(SMUGGLED)),
    refused(400),
  ),
  c(
    'framing',
    'Transfer-Encoding with a space before the colon',
    (t) => once(get(t, '/orders', 'Transfer-Encoding : chunked') + chunked(SMUGGLED)),
    refused(400),
  ),
  c(
    'framing',
    'Transfer-Encoding in an HTTP/1.0 request (faulty framing, RFC 9112 §6.1)',
    (t) => once(http('POST /orders HTTP/1.0', admitted(t, 'Transfer-Encoding: chunked'), chunked(SMUGGLED))),
    refused(400),
  ),

  // Chunked bodies.
  c(
    'chunked',
    'chunk size overflowing 64 bits',
    (t) =>
      once(
        http(
          'POST /orders HTTP/1.1',
          admitted(t, 'Transfer-Encoding: chunked'),
          'FFFFFFFFFFFFFFFFFF\r\nab\r\n0\r\n\r\n',
        ),
      ),
    refused(400, 413),
  ),
  c(
    'chunked',
    'chunked body over the 2 MiB limit',
    (t) =>
      once(
        http(
          'POST /orders HTTP/1.1',
          admitted(t, 'Transfer-Encoding: chunked'),
          chunked('a'.repeat(MiB), 'b'.repeat(MiB), 'c'.repeat(1024)),
        ),
      ),
    refused(413),
    5_000,
  ),
  c(
    'chunked',
    'chunk size with a letter that is not hex ("1g")',
    (t) =>
      once(http('POST /orders HTTP/1.1', admitted(t, 'Transfer-Encoding: chunked'), '1g\r\na\r\n0\r\n\r\n')),
    refused(400),
  ),
  c(
    'chunked',
    'chunk size with a 0x prefix',
    (t) =>
      once(
        http('POST /orders HTTP/1.1', admitted(t, 'Transfer-Encoding: chunked'), '0x2\r\nab\r\n0\r\n\r\n'),
      ),
    refused(400),
  ),
  c(
    'chunked',
    'negative chunk size',
    (t) =>
      once(http('POST /orders HTTP/1.1', admitted(t, 'Transfer-Encoding: chunked'), '-2\r\nab\r\n0\r\n\r\n')),
    refused(400),
  ),
  c(
    'chunked',
    'chunk data longer than its size',
    (t) =>
      once(
        http('POST /orders HTTP/1.1', admitted(t, 'Transfer-Encoding: chunked'), '2\r\nabcdef\r\n0\r\n\r\n'),
      ),
    refused(400),
  ),
  c(
    'chunked',
    'chunk lines ended by bare LF',
    (t) => once(http('POST /orders HTTP/1.1', admitted(t, 'Transfer-Encoding: chunked'), '2\nab\n0\n\n')),
    refused(400),
  ),
  c(
    'chunked',
    'chunk extensions',
    (t) =>
      once(
        http(
          'POST /orders HTTP/1.1',
          admitted(t, 'Transfer-Encoding: chunked'),
          `2;name=value\r\nab\r\n1;x\r\nc\r\n0\r\n\r\n`,
        ),
      ),
    answered(200, fwd('POST', '/orders', { body: 'abc' })),
  ),
  c(
    'chunked',
    'chunk extension of 20 KB',
    (t) =>
      once(
        http(
          'POST /orders HTTP/1.1',
          admitted(t, 'Transfer-Encoding: chunked'),
          `2;x=${'a'.repeat(20_000)}\r\nab\r\n0\r\n\r\n`,
        ),
      ),
    refused(400, 413, 431),
  ),
  c(
    'chunked',
    'trailer field (not forwarded)',
    (t) =>
      once(
        http(
          'POST /orders HTTP/1.1',
          admitted(t, 'Transfer-Encoding: chunked'),
          '2\r\nab\r\n0\r\nX-Trailer: 1\r\n\r\n',
        ),
      ),
    answered(200, fwd('POST', '/orders', { body: 'ab', headers: { 'x-trailer': null } })),
  ),
  c(
    'chunked',
    'trailer carrying Content-Length',
    (t) =>
      once(
        http(
          'POST /orders HTTP/1.1',
          admitted(t, 'Transfer-Encoding: chunked'),
          '2\r\nab\r\n0\r\nContent-Length: 40\r\n\r\n',
        ),
      ),
    refused(400),
  ),

  // Oversize lines and headers.
  c(
    'size',
    'valid token of 100 KB',
    (t) => once(http('GET /orders HTTP/1.1', [host(t), `Authorization: Bearer ${t.hugeToken}`])),
    refused(431),
  ),
  c(
    'size',
    'header block of 20 KB (200 headers)',
    (t) =>
      once(get(t, '/orders', ...Array.from({ length: 200 }, (_, i) => `X-Filler-${i}: ${'f'.repeat(80)}`))),
    refused(431),
  ),
  c(
    'size',
    'request target of 9 KB (header block fits)',
    (t) => once(get(t, `/orders/${'a'.repeat(9 * 1024)}`)),
    refused(414),
  ),
  c(
    'size',
    'request target of 30 KB',
    (t) => once(get(t, `/orders?q=${'a'.repeat(30 * 1024)}`)),
    refused(414, 431),
  ),

  // Header and line syntax.
  c('syntax', 'bare LF line ends throughout', (t) => once(get(t).replace(/\r\n/g, '\n')), refused(400)),
  c(
    'syntax',
    'bare LF ending one header line',
    (t) => once(http('GET /orders HTTP/1.1', [`${host(t)}\n${auth(t)}`])),
    refused(400),
  ),
  c('syntax', 'bare CR inside a header value', (t) => once(get(t, '/orders', 'X-Note: a\rb')), refused(400)),
  c('syntax', 'bare CR line ends', (t) => once(get(t).replace(/\r\n/g, '\r')), refused(400)),
  c('syntax', 'NUL in a header value', (t) => once(get(t, '/orders', 'X-Note: a\x00b')), refused(400)),
  c('syntax', 'NUL in a header name', (t) => once(get(t, '/orders', 'X-No\x00te: a')), refused(400)),
  c('syntax', 'DEL in a header value', (t) => once(get(t, '/orders', 'X-Note: a\x7fb')), refused(400)),
  c('syntax', 'header name with "("', (t) => once(get(t, '/orders', 'X(Note): a')), refused(400)),
  c('syntax', 'header name with a space inside', (t) => once(get(t, '/orders', 'X Note: a')), refused(400)),
  c('syntax', 'header line without a colon', (t) => once(get(t, '/orders', 'X-Note a')), refused(400)),
  c('syntax', 'empty header name', (t) => once(get(t, '/orders', ': a')), refused(400)),
  c(
    'syntax',
    'space before the colon of Host',
    (t) => once(http('GET /orders HTTP/1.1', [`Host : ${t.authority}`, auth(t)])),
    refused(400),
  ),
  c('syntax', 'obs-fold header line', (t) => once(get(t, '/orders', 'X-Note: a', ' folded')), refused(400)),
  c('syntax', 'obs-text (byte 0xE9) in a header value', (t) => once(get(t, '/orders', 'X-Note: caf\xe9')), [
    answered(200, ORDERS),
    refused(400),
  ]),
  c('syntax', 'empty line before the request line', (t) => once(`\r\n${get(t)}`), answered(200, ORDERS)),

  // Methods and versions.
  c(
    'method/version',
    'lower-case method "get"',
    (t) => once(get(t).replace(/^GET/, 'get')),
    refused(400, 405, 501),
  ),
  c(
    'method/version',
    'unknown method FOO',
    (t) => once(get(t).replace(/^GET/, 'FOO')),
    refused(400, 405, 501),
  ),
  c('method/version', 'method with "@"', (t) => once(get(t).replace(/^GET/, 'G@T')), refused(400)),
  c(
    'method/version',
    'tab between method and target',
    (t) => once(get(t).replace(/^GET /, 'GET\t')),
    refused(400),
  ),
  c('method/version', 'two spaces between method and target', (t) => once(get(t).replace(/^GET /, 'GET  ')), [
    answered(200, ORDERS),
    refused(400),
  ]),
  c(
    'method/version',
    'space after the version',
    (t) => once(get(t).replace(' HTTP/1.1\r\n', ' HTTP/1.1 \r\n')),
    refused(400),
  ),
  c(
    'method/version',
    'HTTP/1.2',
    (t) => once(get(t).replace(' HTTP/1.1\r\n', ' HTTP/1.2\r\n')),
    refused(400, 505),
  ),
  c(
    'method/version',
    'HTTP/2.0 in a request line',
    (t) => once(get(t).replace(' HTTP/1.1\r\n', ' HTTP/2.0\r\n')),
    refused(400, 505),
  ),
  c(
    'method/version',
    'lower-case "http/1.1"',
    (t) => once(get(t).replace(' HTTP/1.1\r\n', ' http/1.1\r\n')),
    refused(400),
  ),
  c(
    'method/version',
    'version "HTTP/1.1x"',
    (t) => once(get(t).replace(' HTTP/1.1\r\n', ' HTTP/1.1x\r\n')),
    refused(400),
  ),
  c('method/version', 'HTTP/0.9 request line (no version)', () => once('GET /orders\r\n\r\n'), [
    refused(400, 505),
    { responses: [], upstream: [] },
  ]),
  c(
    'method/version',
    'HTTP/1.0 with Host and token',
    (t) => once(http('GET /orders HTTP/1.0', admitted(t))),
    { ...answered(200, ORDERS), closes: true },
  ),
  c('method/version', 'HTTP/1.0 without Host', (t) => once(http('GET /orders HTTP/1.0', [auth(t)])), [
    { ...answered(200, ORDERS), closes: true },
    refused(400, 421),
  ]),
  c(
    'method/version',
    'HTTP/1.1 without Host',
    (t) => once(http('GET /orders HTTP/1.1', [auth(t)])),
    refused(400, 421),
  ),
  c(
    'method/version',
    'two Host headers (own, then foreign)',
    (t) => once(http('GET /orders HTTP/1.1', [host(t), 'Host: evil.example', auth(t)])),
    refused(400, 421),
  ),
  c(
    'method/version',
    'HTTP/2 connection preface',
    () => once('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
    refused(400, 505),
  ),
  c(
    'method/version',
    'TRACE with a valid token (not in the spec: forwarded and logged, or refused)',
    (t) => once(http('TRACE /orders HTTP/1.1', admitted(t))),
    [answered(200, fwd('TRACE', '/orders')), refused(400, 405, 501)],
  ),

  // Request-target forms.
  c(
    'target',
    'absolute-form with a foreign authority',
    (t) => once(get(t, 'https://evil.example/orders')),
    refused(400, 421),
  ),
  c(
    'target',
    "absolute-form with the gateway's own authority",
    (t) => once(get(t, `https://${t.authority}/orders`)),
    answered(200, ORDERS),
  ),
  c(
    'target',
    'absolute-form with the own authority, foreign Host',
    (t) => once(http(`GET https://${t.authority}/orders HTTP/1.1`, ['Host: evil.example', auth(t)])),
    refused(400, 421),
  ),
  c(
    'target',
    'absolute-form with userinfo ("own-authority@evil.example")',
    (t) => once(get(t, `https://${t.authority}@evil.example/orders`)),
    refused(400, 421),
  ),
  c(
    'target',
    'absolute-form with the http scheme',
    (t) => once(get(t, `http://${t.authority}/orders`)),
    refused(400, 421),
  ),
  c('target', 'OPTIONS *', (t) => once(http('OPTIONS * HTTP/1.1', admitted(t))), refused(400, 405)),
  c(
    'target',
    'CONNECT to a foreign host',
    (t) => once(http('CONNECT evil.example:443 HTTP/1.1', ['Host: evil.example:443', auth(t)])),
    refused(400, 405),
  ),
  c(
    'target',
    'CONNECT to the gateway itself',
    (t) => once(http(`CONNECT ${t.authority} HTTP/1.1`, admitted(t))),
    refused(400, 405),
  ),
  c('target', 'fragment in the request target', (t) => once(get(t, '/orders#frag')), [
    answered(200, ORDERS),
    refused(400),
  ]),

  // Paths: normalized once; the operation policy of GET /orders/{id} must apply to every spelling.
  c('path', 'GET /%6Frders/ord-1002', (t) => once(get(t, '/%6Frders/ord-1002')), answered(200, GET_ORDER)),
  c(
    'path',
    'GET /%6frders/ord-1002 (lower-case escape)',
    (t) => once(get(t, '/%6frders/ord-1002')),
    answered(200, GET_ORDER),
  ),
  c('path', 'GET /orders/ord%2D1002', (t) => once(get(t, '/orders/ord%2D1002')), answered(200, GET_ORDER)),
  c(
    'path',
    'GET /orders/../orders/ord-1002',
    (t) => once(get(t, '/orders/../orders/ord-1002')),
    answered(200, GET_ORDER),
  ),
  c('path', 'GET /orders/./ord-1002', (t) => once(get(t, '/orders/./ord-1002')), answered(200, GET_ORDER)),
  c(
    'path',
    'GET /x/%2e%2e/orders/ord-1002',
    (t) => once(get(t, '/x/%2e%2e/orders/ord-1002')),
    answered(200, GET_ORDER),
  ),
  c(
    'path',
    'DELETE /%6Frders/ord-1002 (the deny policy still applies)',
    (t) => once(http('DELETE /%6Frders/ord-1002 HTTP/1.1', admitted(t))),
    refused(403),
  ),
  c(
    'path',
    'DELETE /orders/x/../ord-1002',
    (t) => once(http('DELETE /orders/x/../ord-1002 HTTP/1.1', admitted(t))),
    refused(403),
  ),
  c('path', 'encoded slash %2F', (t) => once(get(t, '/orders%2Ford-1002')), refused(400)),
  c('path', 'encoded dot-dot-slash ..%2F', (t) => once(get(t, '/x/..%2Forders/ord-1002')), refused(400)),
  c('path', 'encoded backslash %5C', (t) => once(get(t, '/orders%5Cord-1002')), refused(400)),
  c('path', 'encoded NUL %00', (t) => once(get(t, '/orders/ord-1002%00')), refused(400)),
  c('path', 'invalid escape %zz', (t) => once(get(t, '/orders/%zz')), refused(400)),
  c('path', 'truncated escape %4', (t) => once(get(t, '/orders/%4')), refused(400)),
  c('path', 'raw backslash', (t) => once(get(t, '/orders\\ord-1002')), refused(400)),
  c('path', 'overlong UTF-8 dot-dot, escaped (%c0%ae%c0%ae)', (t) => once(get(t, '/orders/%c0%ae%c0%ae')), [
    refused(400),
    answered(200, fwd('GET', '/orders/%C0%AE%C0%AE', { headers: { 'x-operation': 'get-order' } })),
  ]),
  c(
    'path',
    'overlong UTF-8 dot-dot, raw bytes',
    (t) => once(get(t, '/orders/\xc0\xae\xc0\xae')),
    refused(400),
  ),
  c(
    'path',
    'double-encoded slash %252F (decoded once only)',
    (t) => once(get(t, '/orders/ord%252F1002')),
    answered(200, fwd('GET', '/orders/ord%252F1002', { headers: { 'x-operation': 'get-order' } })),
  ),
  c('path', 'dot-segments above the root', (t) => once(get(t, '/../../orders')), [
    answered(200, ORDERS),
    refused(400),
  ]),

  // Host and Origin.
  c(
    'host/origin',
    'foreign Host',
    (t) => once(http('GET /orders HTTP/1.1', ['Host: evil.example', auth(t)])),
    refused(421),
  ),
  c(
    'host/origin',
    'Host localhost with another port',
    (t) => once(http('GET /orders HTTP/1.1', [`Host: localhost:${t.port === 1 ? 2 : t.port - 1}`, auth(t)])),
    refused(421),
  ),
  c(
    'host/origin',
    'Host "localhost." (trailing dot)',
    (t) => once(http('GET /orders HTTP/1.1', [`Host: localhost.:${t.port}`, auth(t)])),
    refused(421),
  ),
  c(
    'host/origin',
    'Host with userinfo',
    (t) => once(http('GET /orders HTTP/1.1', [`Host: evil.example@localhost:${t.port}`, auth(t)])),
    refused(400, 421),
  ),
  c(
    'host/origin',
    'Host 127.0.0.1 with the port',
    (t) => once(http('GET /orders HTTP/1.1', [`Host: 127.0.0.1:${t.port}`, auth(t)])),
    answered(200, ORDERS),
  ),
  c(
    'host/origin',
    'Host [::1] with the port',
    (t) => once(http('GET /orders HTTP/1.1', [`Host: [::1]:${t.port}`, auth(t)])),
    answered(200, ORDERS),
  ),
  c(
    'host/origin',
    'cross-site Origin',
    (t) => once(get(t, '/orders', 'Origin: https://evil.example')),
    refused(403),
  ),
  c('host/origin', 'Origin null', (t) => once(get(t, '/orders', 'Origin: null')), refused(403)),
  c(
    'host/origin',
    'Origin https://localhost:PORT.evil.example',
    (t) => once(get(t, '/orders', `Origin: https://${t.authority}.evil.example`)),
    refused(403),
  ),
  c(
    'host/origin',
    'Origin with the http scheme',
    (t) => once(get(t, '/orders', `Origin: http://${t.authority}`)),
    refused(403),
  ),
  c(
    'host/origin',
    'Sec-Fetch-Site: cross-site',
    (t) => once(get(t, '/orders', 'Sec-Fetch-Site: cross-site')),
    refused(403),
  ),
  c(
    'host/origin',
    'same-origin Origin',
    (t) => once(get(t, '/orders', `Origin: https://${t.authority}`)),
    answered(200, ORDERS),
  ),
  c(
    'host/origin',
    'spoofed X-Forwarded-Host and Forwarded (dropped)',
    (t) => once(get(t, '/orders', 'X-Forwarded-Host: evil.example', 'Forwarded: host=evil.example')),
    answered(
      200,
      fwd('GET', '/orders', {
        headers: { 'x-forwarded-host': null, forwarded: null },
      }),
    ),
  ),

  // Pipelining: several requests in one write.
  c('pipelining', 'two valid requests in one write', (t) => once(get(t) + get(t, '/orders/ord-1002')), {
    responses: [[200], [200]],
    upstream: [ORDERS, GET_ORDER],
  }),
  c(
    'pipelining',
    'valid, no token, valid in one write',
    (t) => once(get(t) + http('GET /orders HTTP/1.1', [host(t)]) + get(t, '/orders/ord-1002')),
    { responses: [[200], [401], [200]], upstream: [ORDERS, GET_ORDER] },
  ),
  c(
    'pipelining',
    'valid, then Content-Length + Transfer-Encoding smuggling',
    (t) =>
      once(
        get(t) +
          http(
            'POST /orders HTTP/1.1',
            admitted(t, 'Content-Length: 4', 'Transfer-Encoding: chunked'),
            chunked(SMUGGLED),
          ),
      ),
    { responses: [[200], [400]], upstream: [ORDERS] },
  ),
  c(
    'pipelining',
    'valid, then a chunked GET whose body holds a POST',
    (t) => once(get(t) + get(t, '/orders', 'Transfer-Encoding: chunked') + chunked(SMUGGLED)),
    { responses: [[200], [200]], upstream: [ORDERS, fwd('GET', '/orders', { body: SMUGGLED })] },
  ),
  c(
    'pipelining',
    'obs-fold request, then a valid one (not processed)',
    (t) => once(get(t, '/orders', 'X-Note: a', ' folded') + get(t)),
    refused(400),
  ),

  // Slow senders (timeouts of CORPUS_TIMEOUTS).
  c(
    'slow',
    'headers never finish',
    (t) => once(`GET /orders HTTP/1.1\r\n${host(t)}\r\n`),
    refused(408),
    SLOW_WAIT_MS,
  ),
  c(
    'slow',
    'headers trickled 12 bytes every 300 ms',
    (t) =>
      trickle(
        `GET /orders HTTP/1.1\r\n${host(t)}\r\n`,
        Array.from({ length: 8 }, (_, i) => `X-Slow-${i}: ${i}\r\n`).join('') + `${auth(t)}\r\n\r\n`,
        12,
        300,
      ).slice(0, 10),
    refused(408),
    SLOW_WAIT_MS,
  ),
  c(
    'slow',
    'body of 100 bytes, one byte every 250 ms',
    (t) => trickle(http('POST /orders HTTP/1.1', admitted(t, 'Content-Length: 100')), 'x'.repeat(10), 1, 250),
    refused(408),
    SLOW_WAIT_MS,
  ),
  c(
    'slow',
    'chunked body stops before the last chunk',
    (t) => once(http('POST /orders HTTP/1.1', admitted(t, 'Transfer-Encoding: chunked'), '2\r\nab\r\n')),
    refused(408),
    SLOW_WAIT_MS,
  ),
  c(
    'slow',
    'no token, body still coming (401 without waiting for it)',
    (t) => trickle(http('POST /orders HTTP/1.1', [host(t), 'Content-Length: 100']), 'x'.repeat(6), 1, 250),
    refused(401),
    SLOW_WAIT_MS,
  ),
  c(
    'slow',
    'idle keep-alive connection after a request',
    (t) => once(get(t)),
    { ...answered(200, ORDERS), closes: true },
    SLOW_WAIT_MS,
  ),
  c(
    'slow',
    'Expect: 100-continue, body after 200 ms',
    (t) => [
      {
        bytes: http(
          'POST /orders HTTP/1.1',
          admitted(t, 'Expect: 100-continue', `Content-Length: ${POST_BODY.length}`),
        ),
      },
      { delayMs: 200, bytes: POST_BODY },
    ],
    answered(200, fwd('POST', '/orders', { body: POST_BODY })),
  ),
  c(
    'slow',
    'Expect: 100-continue without a token, body never sent',
    (t) => once(http('POST /orders HTTP/1.1', [host(t), 'Expect: 100-continue', 'Content-Length: 20'])),
    refused(401),
  ),
  c(
    'protocol',
    'Expect with an unknown expectation',
    (t) => once(http('POST /orders HTTP/1.1', admitted(t, 'Expect: 200-ok', 'Content-Length: 2'), '{}')),
    refused(417),
  ),
  c(
    'protocol',
    'Upgrade: websocket (forwarded without the upgrade)',
    (t) =>
      once(
        get(
          t,
          '/orders',
          'Connection: Upgrade',
          'Upgrade: websocket',
          'Sec-WebSocket-Version: 13',
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
        ),
      ),
    [answered(200, fwd('GET', '/orders', { headers: { upgrade: null } })), refused(400, 501)],
  ),
  c(
    'protocol',
    'Upgrade: h2c',
    (t) =>
      once(
        get(
          t,
          '/orders',
          'Connection: Upgrade, HTTP2-Settings',
          'Upgrade: h2c',
          'HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA',
        ),
      ),
    [
      answered(200, fwd('GET', '/orders', { headers: { upgrade: null, 'http2-settings': null } })),
      refused(400, 501),
    ],
  ),
];
