/**
 * What a client connection may do to the backend, over real TLS with a real token: nothing after
 * the gateway decided to close it, nothing once the client is gone, one backend request at a
 * time however deeply it pipelines, and no more memory or backend connections than the limits
 * say. Each case was an attack that worked before (pipelining after a refusal reached the API
 * unlogged; orphaned requests pinned the backend pool; bodies waiting for it escaped the memory
 * budget; a Host behind 2,000 other headers escaped the Host check).
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessLogEntry } from './access-log';
import { GatewayOptions, RunningGateway, startGateway } from './gateway';
import {
  accessTokenClaims,
  realPolicyOptions,
  RecordingBackend,
  startRecordingBackend,
  startTestIssuer,
  tempStateDir,
  TestIssuer,
  tlsSession,
} from './test-servers.test-helpers';

const API_APP_ID = randomUUID();

const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
const until = async (check: () => boolean, ms = 5_000): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('client connections and the backend', () => {
  const state = tempStateDir();
  let issuer: TestIssuer;
  let backend: RecordingBackend;
  const gateways: RunningGateway[] = [];
  const log: AccessLogEntry[] = [];
  let jwt: string;

  beforeAll(async () => {
    issuer = await startTestIssuer(state.dir);
    backend = await startRecordingBackend();
    jwt = await issuer.sign(accessTokenClaims(issuer, API_APP_ID));
  });
  afterAll(async () => {
    backend?.releaseHeld();
    await Promise.all(gateways.map((g) => g.close()));
    await backend?.close();
    await issuer?.close();
    state.remove();
  });

  const gateway = async (opts: Partial<GatewayOptions> = {}) => {
    const g = await startGateway({
      ...realPolicyOptions(state.dir, issuer, API_APP_ID, backend.url),
      accessLog: (entry) => log.push(entry),
      ...opts,
    });
    gateways.push(g);
    return g;
  };
  const get = (g: RunningGateway, path: string, extra = '') =>
    `GET ${path} HTTP/1.1\r\nhost: localhost:${g.port}\r\nauthorization: Bearer ${jwt}\r\n${extra}\r\n`;
  /** Every request the backend got was logged, with its trace id. */
  const everyBackendRequestLogged = () => {
    const logged = new Set(log.map((e) => e.traceId)); // forwarded, or forwarded and then timed out (504)
    expect(backend.received.filter((r) => !logged.has(r.traceId))).toEqual([]);
  };

  it('handles nothing pipelined after a refusal that closes the connection', async () => {
    const g = await gateway();
    const before = backend.received.length;
    for (const refused of [
      `GET /x%2fy HTTP/1.1\r\nhost: localhost:${g.port}\r\n\r\n`, // 400 InvalidPath
      `GET /orders HTTP/1.1\r\nhost: attacker.example\r\n\r\n`, // 421
      `POST /orders HTTP/1.1\r\nhost: localhost:${g.port}\r\ncontent-length: 3\r\n\r\nabc`, // 401, body unread
    ]) {
      const s = await tlsSession(g.port, issuer.caPem);
      s.socket.write(refused + get(g, '/orders?smuggled=1') + get(g, '/orders?smuggled=2'));
      await s.closed;
      expect(statuses(s.text())).toHaveLength(1);
      expect(s.text()).toMatch(/\r\nconnection: close\r\n/i);
    }
    await new Promise((r) => setTimeout(r, 300)); // what was let through would have arrived by now
    expect(backend.received.slice(before)).toEqual([]);
    everyBackendRequestLogged();
  });

  it('handles pipelined requests one after another, and cancels what is left when the client goes', async () => {
    const g = await gateway();
    const before = backend.received.length;
    const s = await tlsSession(g.port, issuer.caPem);
    s.socket.write(
      get(g, '/hold/1') + Array.from({ length: 10 }, (_, i) => get(g, `/orders?n=${i}`)).join(''),
    );
    await until(() => backend.received.length > before);
    await new Promise((r) => setTimeout(r, 200));
    // One at a time: the 10 behind the held one have not been sent.
    expect(backend.received.slice(before).map((r) => r.url)).toEqual(['/hold/1']);
    s.socket.destroy();
    await until(() => log.some((e) => e.path === '/hold/1'));
    // The first request on the connection is cancelled at the backend, not left to run.
    await until(() => backend.cancelled.includes('/hold/1'));
    backend.releaseHeld();
    await new Promise((r) => setTimeout(r, 200));
    expect(backend.received.slice(before).map((r) => r.url)).toEqual(['/hold/1']);
    // Logged, with no status: nothing was answered.
    expect(log.find((e) => e.path === '/hold/1')).toMatchObject({
      status: 0,
      aborted: true,
      policy: 'forwarded',
    });
    everyBackendRequestLogged();
  });

  it('answers 504 to a request still waiting for a backend connection when its deadline passes', async () => {
    const op = join(state.dir, `hold-${randomUUID()}.xml`);
    writeFileSync(
      op,
      '<policies><inbound><base /></inbound><backend><forward-request timeout="5" /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>',
    );
    const g = await gateway({
      maxBackendConnections: 1,
      upstreamTimeoutMs: 300,
      operations: [{ method: 'GET', urlTemplate: '/hold/{id}', policyFile: op }],
    });
    const before = backend.received.length;
    const holder = await tlsSession(g.port, issuer.caPem);
    holder.socket.write(get(g, '/hold/2')); // takes the only backend connection, for up to 5 s
    await until(() => backend.received.length > before);
    const waiter = await tlsSession(g.port, issuer.caPem);
    waiter.socket.write(get(g, '/orders?waited=1', 'connection: close\r\n'));
    await waiter.closed;
    expect(statuses(waiter.text())).toEqual([504]);
    // Answered while still waiting (the holder has no answer yet): it never reached the backend.
    expect(statuses(holder.text())).toEqual([]);
    expect(backend.received.slice(before).map((r) => r.url)).toEqual(['/hold/2']);
    holder.socket.destroy();
    backend.releaseHeld();
  });

  it('cuts a connection off after the request in flight when more than 16 pipelined requests wait', async () => {
    const g = await gateway();
    const before = backend.received.length;
    const s = await tlsSession(g.port, issuer.caPem);
    s.socket.write(
      get(g, '/hold/5') + Array.from({ length: 20 }, (_, i) => get(g, `/orders?deep=${i}`)).join(''),
    );
    await until(() => backend.received.length > before);
    backend.releaseHeld('/hold/5');
    await s.closed;
    // The one in flight is answered; then the connection ends: nothing queued behind it is handled.
    expect(statuses(s.text())).toEqual([200]);
    expect(backend.received.slice(before).map((r) => r.url)).toEqual(['/hold/5']);
    everyBackendRequestLogged();
  });

  it('drops a connection at once that goes on pipelining after it was cut off', async () => {
    const g = await gateway();
    const before = backend.received.length;
    const s = await tlsSession(g.port, issuer.caPem);
    s.socket.write(
      get(g, '/hold/7') + Array.from({ length: 100 }, (_, i) => get(g, `/orders?flood=${i}`)).join(''),
    );
    await s.closed; // closed by the gateway, with /hold/7 unanswered
    await new Promise((r) => setTimeout(r, 300));
    expect(statuses(s.text())).toEqual([]);
    const sent = backend.received.slice(before).map((r) => r.url);
    expect(sent.filter((url) => url !== '/hold/7')).toEqual([]);
    if (sent.length) await until(() => backend.cancelled.includes('/hold/7'));
    everyBackendRequestLogged();
  });

  it('gives a request handed a backend connection from the queue the rest of its deadline', async () => {
    const g = await gateway({ maxBackendConnections: 1, upstreamTimeoutMs: 800 });
    const before = backend.received.length;
    const first = await tlsSession(g.port, issuer.caPem);
    first.socket.write(get(g, '/hold/6a'));
    await until(() => backend.received.length > before);
    const second = await tlsSession(g.port, issuer.caPem);
    second.socket.write(get(g, '/hold/6b')); // queued for the only connection
    await new Promise((r) => setTimeout(r, 300));
    backend.releaseHeld('/hold/6a'); // its connection goes straight to the queued request
    await until(() => backend.received.some((r) => r.url === '/hold/6b'));
    // The backend never answers /hold/6b: it gets its 504 (it used to wait for ever).
    await until(() => statuses(second.text()).length === 1);
    expect(statuses(second.text())).toEqual([504]);
    first.socket.destroy();
    second.socket.destroy();
  });

  it('answers an unsupported Expect in turn, and handles nothing after it', async () => {
    const g = await gateway();
    const before = backend.received.length;
    const s = await tlsSession(g.port, issuer.caPem);
    s.socket.write(
      get(g, '/orders?first=1') + get(g, '/orders?expect=1', 'expect: foo\r\n') + get(g, '/orders?after=1'),
    );
    await s.closed;
    expect(statuses(s.text())).toEqual([200, 417]);
    await new Promise((r) => setTimeout(r, 300));
    expect(backend.received.slice(before).map((r) => r.url)).toEqual(['/orders?first=1']);
    everyBackendRequestLogged();
  });

  it('counts a body in the memory budget until the backend connection has taken it, not only while reading it', async () => {
    const g = await gateway({ bodyMemoryBytes: 150, maxBackendConnections: 1 });
    const post = (path: string) =>
      `POST ${path} HTTP/1.1\r\nhost: localhost:${g.port}\r\nauthorization: Bearer ${jwt}\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\n${'b'.repeat(100)}`;
    const before = backend.received.length;
    const holder = await tlsSession(g.port, issuer.caPem);
    holder.socket.write(get(g, '/hold/3')); // takes the only backend connection
    await until(() => backend.received.length > before);
    const waiting = await tlsSession(g.port, issuer.caPem);
    waiting.socket.write(post('/orders?waiting=1')); // read whole, then waits for a connection: 100 bytes held
    await new Promise((r) => setTimeout(r, 300));
    const refused = await tlsSession(g.port, issuer.caPem);
    refused.socket.write(post('/orders?refused=1'));
    await refused.closed;
    expect(statuses(refused.text())).toEqual([503]);
    backend.releaseHeld();
    await until(() => statuses(waiting.text()).length === 1);
    expect(statuses(waiting.text())).toEqual([200]);
    expect(backend.received.slice(before).map((r) => r.url)).toEqual(['/hold/3', '/orders?waiting=1']);
    holder.socket.destroy();
    waiting.socket.destroy();
  });

  it('sees a Host hidden behind 2,000 other headers (Node reports only 2,000 by default)', async () => {
    const g = await gateway();
    const before = backend.received.length;
    const padding = Array.from({ length: 2000 }, (_, i) => `a${i}:b\r\n`).join('');
    const s = await tlsSession(g.port, issuer.caPem);
    s.socket.write(
      `GET /orders HTTP/1.1\r\nhost: localhost:${g.port}\r\nauthorization: Bearer ${jwt}\r\n${padding}host: attacker.example\r\nconnection: close\r\n\r\n`,
    );
    await s.closed;
    expect(statuses(s.text())).toEqual([421]);
    expect(backend.received.length).toBe(before);
  });

  it('sends "100 Continue" only once the policies admitted the request', async () => {
    const g = await gateway();
    const head = (auth: string) =>
      `POST /orders HTTP/1.1\r\nhost: localhost:${g.port}\r\n${auth}content-type: text/plain\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n`;
    const refused = await tlsSession(g.port, issuer.caPem);
    refused.socket.write(head('')); // no token: refused before the body is asked for
    await refused.closed;
    expect(statuses(refused.text())).toEqual([401]);
    const admitted = await tlsSession(g.port, issuer.caPem);
    admitted.socket.write(head(`authorization: Bearer ${jwt}\r\n`));
    await until(() => statuses(admitted.text()).length === 1);
    expect(statuses(admitted.text())).toEqual([100]);
    admitted.socket.write('hello');
    await until(() => statuses(admitted.text()).length === 2);
    expect(statuses(admitted.text())).toEqual([100, 200]);
    admitted.socket.destroy();
  });

  it('keeps a connection alive across immediate answers (health, metrics) to requests without a body', async () => {
    const g = await gateway();
    const s = await tlsSession(g.port, issuer.caPem);
    const health = `GET /status-0123456789abcdef HTTP/1.1\r\nhost: localhost:${g.port}\r\n\r\n`;
    const metrics = `GET /metrics HTTP/1.1\r\nhost: localhost:${g.port}\r\n\r\n`;
    s.socket.write(health + metrics + health);
    await until(() => statuses(s.text()).length === 3);
    expect(statuses(s.text())).toEqual([200, 200, 200]);
    expect(s.text()).not.toMatch(/\r\nconnection: close\r\n/i);
    s.socket.destroy();
  });

  it('lets a pipelined request with a large body wait its turn behind a slow one, without a timeout', async () => {
    const g = await gateway({ headerTimeoutMs: 500, bodyTimeoutMs: 500 });
    const before = backend.received.length;
    const s = await tlsSession(g.port, issuer.caPem);
    const body = 'x'.repeat(100_000); // more than Node buffers for a request nobody reads yet
    s.socket.write(
      get(g, '/hold/8') +
        `POST /orders?queued=1 HTTP/1.1\r\nhost: localhost:${g.port}\r\nauthorization: Bearer ${jwt}\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
    );
    await until(() => backend.received.length > before);
    await new Promise((r) => setTimeout(r, 3_000)); // well past the header and body timeouts together
    backend.releaseHeld('/hold/8');
    await until(() => statuses(s.text()).length === 2);
    expect(statuses(s.text())).toEqual([200, 200]);
    expect(backend.received.slice(before).map((r) => r.url)).toEqual(['/hold/8', '/orders?queued=1']);
    s.socket.destroy();
  });

  it('refuses a header value a policy cannot send (a character above U+00FF) in APIM form, and goes on', async () => {
    const op = join(state.dir, `echo-q-${randomUUID()}.xml`);
    writeFileSync(
      op,
      '<policies><inbound><base /><set-header name="x-q" exists-action="override"><value>@(context.Request.Url.Query.GetValueOrDefault("q", ""))</value></set-header></inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>',
    );
    const g = await gateway({ operations: [{ method: 'GET', urlTemplate: '/echo', policyFile: op }] });
    const before = backend.received.length;
    const s = await tlsSession(g.port, issuer.caPem);
    s.socket.write(get(g, '/echo?q=%C4%80') + get(g, '/orders?next=1'));
    await until(() => statuses(s.text()).length === 2);
    expect(statuses(s.text())).toEqual([500, 200]);
    expect(s.text()).toContain('"statusCode":500');
    expect(backend.received.slice(before).map((r) => r.url)).toEqual(['/orders?next=1']);
    everyBackendRequestLogged();
    s.socket.destroy();
  });

  it('closes a connection whose TLS handshake does not complete within the header timeout', async () => {
    const g = await gateway({ headerTimeoutMs: 500 });
    const socket: Socket = tcpConnect(g.port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(Buffer.from([0x16, 0x03, 0x01])); // the start of a ClientHello, and nothing more
    // Closed by the gateway (Node's own default would keep it for 120 s, past this test's limit).
    await new Promise<void>((done) => socket.once('close', () => done()));
  }, 10_000);
});
