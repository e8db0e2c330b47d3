/** The guard in front of a real node:http server on loopback, attacked over real sockets. */
import { createServer, IncomingMessage, request, type Server } from 'node:http';
import { connect, Socket, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guardIncomingMessage, loopbackGuard } from './node-request';
import type { GuardDecision } from './loopback-guard';

let server: Server;
let port: number;
/** Requests that got past the guard: the "something was done" the attacks must never reach. */
let handled = 0;
/** The guard in front of the server: guardIncomingMessage, or loopbackGuard (which remembers decisions). */
let guard: (req: IncomingMessage) => GuardDecision;

beforeAll(async () => {
  server = createServer((req, res) => {
    const decision = guard(req);
    if (!decision.ok) {
      res.writeHead(decision.status, {
        'content-type': 'application/json',
        ...(decision.status === 421 ? { connection: 'close' } : {}),
      });
      res.end(JSON.stringify({ error: decision.reason }));
      return;
    }
    handled++;
    res.end('done');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

const options = { scheme: 'http', boundToLoopback: true } as const;

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

function send(headers: Record<string, string>): Promise<{ status: number; connection?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Writes bytes as they are (repeated headers, no Host, absolute form) and reads the status. */
function sendRaw(head: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(head));
    let text = '';
    socket.on('data', (chunk) => (text += chunk.toString('latin1')));
    socket.on('end', () => resolve(Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0)));
    socket.on('error', reject);
  });
}

describe.each([
  ['guardIncomingMessage', () => (req: IncomingMessage) => guardIncomingMessage(req, options)],
  ['loopbackGuard', () => loopbackGuard(options)],
])('a loopback HTTP server behind %s', (_name, makeGuard) => {
  beforeAll(() => {
    guard = makeGuard();
  });

  it('serves its own origin', async () => {
    const before = handled;
    expect((await send({ host: `localhost:${port}` })).status).toBe(200);
    expect((await send({ host: `127.0.0.1:${port}`, origin: `http://127.0.0.1:${port}` })).status).toBe(200);
    expect(handled).toBe(before + 2);
  });

  it('answers DNS rebinding with 421 and connection: close, doing nothing', async () => {
    const before = handled;
    const answer = await send({
      host: `attacker.example:${port}`,
      origin: `http://attacker.example:${port}`,
    });
    expect(answer).toEqual({ status: 421, connection: 'close' });
    expect((await send({ host: 'attacker.example' })).status).toBe(421);
    expect(handled).toBe(before);
  });

  it('answers a cross-site request with 403, doing nothing', async () => {
    const before = handled;
    expect((await send({ host: `localhost:${port}`, origin: 'https://attacker.example' })).status).toBe(403);
    expect((await send({ host: `localhost:${port}`, origin: 'null' })).status).toBe(403);
    expect((await send({ host: `localhost:${port}`, 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    expect(handled).toBe(before);
  });

  it('refuses a repeated Host that Node would have reduced to its first value', async () => {
    const before = handled;
    const status = await sendRaw(
      `GET / HTTP/1.1\r\nHost: localhost:${port}\r\nHost: attacker.example\r\nConnection: close\r\n\r\n`,
    );
    expect(status).toBe(421);
    expect(handled).toBe(before);
  });

  it('refuses an HTTP/1.0 request without Host and an absolute-form target for another host', async () => {
    const before = handled;
    expect(await sendRaw('GET / HTTP/1.0\r\n\r\n')).toBe(421);
    expect(
      await sendRaw(
        `GET http://attacker.example/ HTTP/1.1\r\nHost: localhost:${port}\r\nConnection: close\r\n\r\n`,
      ),
    ).toBe(421);
    expect(
      await sendRaw(
        `GET http://localhost:${port}/ HTTP/1.1\r\nHost: localhost:${port}\r\nConnection: close\r\n\r\n`,
      ),
    ).toBe(200);
    expect(handled).toBe(before + 1);
  });

  it('refuses a request whose connection has no port any more, instead of throwing in the handler', () => {
    const orphan = new IncomingMessage(new Socket());
    orphan.rawHeaders = ['Host', 'localhost:8080'];
    expect(guard(orphan)).toMatchObject({
      ok: false,
      status: 421,
    });
  });
});
