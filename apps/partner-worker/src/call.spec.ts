/**
 * `call [METHOD] <path> [--data …] [--header …]` over real HTTPS: a stub authority that checks
 * the partner's real certificate assertion, and an API that records every request it receives.
 * Usage errors stop the command before a token is asked for or anything is sent.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { json, tempDir, type StubAuthority, type TestServer } from '@certflow/testing';
import { runCli, type CliIo } from './cli';
import { startPartnerStubs } from './stub-servers.test-helpers';

interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

const dir = tempDir('partner-worker-call-');
const cwd = dir.path;
const received: Received[] = [];
let authority: StubAuthority;
let api: TestServer;
let env: Record<string, string>;

beforeAll(async () => {
  ({ authority, api, env } = await startPartnerStubs(cwd, {
    certDir: 'partner',
    commonName: 'fabrikam-partner',
    handler: (req, body, res) => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      if (req.url === '/orders' && req.method === 'POST') return json(res, 201, { id: 'ord-1', echo: body });
      if (req.url === '/broken') return json(res, 500, { statusCode: 500 });
      if (req.method === 'HEAD') return void res.writeHead(200).end();
      return json(res, 200, { method: req.method });
    },
  }));
});

afterAll(async () => {
  await authority?.close();
  await api?.close();
  dir.remove();
});

beforeEach(() => {
  received.length = 0;
});

async function call(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { env, cwd, stdout: (l) => out.push(l), stderr: (l) => err.push(l) };
  const code = await runCli(['call', ...argv], io);
  // What follows the token's narration (the assertion and token lines come first).
  const answer = out.slice(out.findIndex((l) => l.startsWith('HTTP '))).join('\n');
  return { code, out: out.join('\n'), answer, err: err.join('\n') };
}

describe('call sends any request', () => {
  it('POST with --data: the JSON as written, content-type application/json; prints HTTP <status> first', async () => {
    const data = '{"customerReference":"PO-7", "total":{"amount":"1.00","currency":"EUR"}}';
    const r = await call('POST', '/orders', '--data', data, '--header', 'X-Request-Id:  r-7 ');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.answer.split('\n')[0]).toBe('HTTP 201');
    expect(JSON.parse(r.answer.slice('HTTP 201\n'.length))).toEqual({ id: 'ord-1', echo: data });
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({
      method: 'POST',
      url: '/orders',
      body: data,
      headers: {
        'content-type': 'application/json',
        'x-request-id': 'r-7',
        authorization: expect.stringMatching(/^Bearer /),
        traceparent: expect.stringMatching(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/),
      },
    });
  });

  it('--data @FILE, a lower-case method, and a Content-Type of its own', async () => {
    writeFileSync(join(cwd, 'patch.json'), '{"note":"from a file"}\n');
    const r = await call(
      'patch',
      '/orders/ord-1',
      '--data',
      '@patch.json',
      '--header',
      'Content-Type: application/merge-patch+json',
    );
    expect(r.code).toBe(0);
    expect(received).toEqual([
      expect.objectContaining({
        method: 'PATCH',
        url: '/orders/ord-1',
        body: '{"note":"from a file"}\n',
        headers: expect.objectContaining({ 'content-type': 'application/merge-patch+json' }),
      }),
    ]);
  });

  it('GET by default, DELETE and HEAD without a body', async () => {
    expect((await call('/orders')).answer).toBe('HTTP 200\n{\n  "method": "GET"\n}');
    expect((await call('DELETE', '/orders/ord-1')).code).toBe(0);
    expect((await call('HEAD', '/orders')).answer).toBe('HTTP 200\n');
    expect(received.map((r) => [r.method, r.body, r.headers['content-type']])).toEqual([
      ['GET', '', undefined],
      ['DELETE', '', undefined],
      ['HEAD', '', undefined],
    ]);
  });

  it('a POST answered 500 is not repeated (it may have been processed): exit 1, sent once', async () => {
    const r = await call('POST', '/broken', '--data', '{}');
    expect(r.code).toBe(1);
    expect(r.answer.split('\n')[0]).toBe('HTTP 500');
    expect(r.err).toMatch(/POST \/broken answered HTTP 500/);
    expect(received).toHaveLength(1);
  });
});

describe('call refuses, before asking for a token or sending anything (exit 2)', () => {
  it.each([
    [['FETCH', '/orders'], /unknown method "FETCH": use one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS/],
    [['POST'], /call POST needs a path, e\.g\. call POST \/orders/],
    [['POST', 'orders'], /the path must start with "\/", got "orders"/],
    [['/orders', '/more'], /unexpected argument "\/more"/],
    [['/orders', '--header', 'X-Request-Id'], /--header must be "Name: value", got "X-Request-Id"/],
    [['/orders', '--header', ': value'], /--header must be "Name: value"/],
    [
      ['/orders', '--header', 'Authorization: Bearer mine'],
      /--header: header "Authorization" is set by the client/,
    ],
    [['/orders', '--header', 'Host: evil.example'], /header "Host" is set by the client/],
    [['POST', '/orders', '--data', '{}', '--header', 'Content-Length: 2'], /header "Content-Length" is set/],
    [['/orders', '--header', 'traceparent: 00-x'], /header "traceparent" is set by the client/],
    [['/orders', '--header', 'X-A: 1', '--header', 'x-a: 2'], /--header x-a is given twice/],
    [['/orders', '--header', 'X-A: 1\r\nX-Injected: 1'], /--header: header "X-A"/],
    [
      ['POST', '/orders', '--data', "{customerReference:'PO-1'}"],
      /--data is not JSON \(error at line 1, column 2\); call sends its body as JSON with content-type application\/json/,
    ],
    [['POST', '/orders', '--data', ''], /--data is not JSON/],
    [
      ['POST', '/orders', '--data', '@no-such.json'],
      /--data @no-such.json: cannot read .*no-such\.json \(ENOENT\)/,
    ],
    [
      ['/orders', '--data', '{}'],
      /a GET request carries no body: drop --data, or give a method, e\.g\. call POST/,
    ],
    [['HEAD', '/orders', '--data', '{}'], /a HEAD request carries no body/],
  ])('%j', async (argv, message) => {
    const before = authority.tokenRequests;
    const r = await call(...argv);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.err).toContain('Usage: partner-worker');
    expect(r.out).toBe('');
    expect(authority.tokenRequests).toBe(before);
    expect(received).toEqual([]);
  });

  it.each([
    ['a password file', 'root:$6$hashhash:19000:0:99999:7:::\n', 'line 1, column 1', 'root'],
    ['a bad value', '{"total": 12,\n "note": secret-value}', 'line 2, column 10', 'secret'],
    ['text after the JSON', '{}\nTOPSECRET', 'line 2, column 1', 'TOPSECRET'],
    ['a cut-off file', '{"note": "hidden', 'line 1, column 17', 'hidden'],
  ])(
    '--data @FILE with %s: where the parser stopped, never the content',
    async (_, content, where, secret) => {
      writeFileSync(join(cwd, 'not-json.txt'), content);
      const r = await call('POST', '/orders', '--data', '@not-json.txt');
      expect(r.code).toBe(2);
      expect(r.err).toContain(`--data @not-json.txt is not JSON (error at ${where})`);
      expect(r.err).not.toContain(secret);
      expect(received).toEqual([]);
    },
  );

  it('call --help explains the request options and the retry rule', async () => {
    const r = await call('--help');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Usage: partner-worker call \[METHOD\] <path> \[--data JSON\|@FILE\]/);
    expect(r.out).toMatch(/a POST or PATCH only when it cannot have been acted on/);
  });
});
