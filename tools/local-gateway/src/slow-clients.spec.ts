/**
 * Slow clients against the gateway, with real TLS connections and a real signed token: a client
 * that trickles its body must hold nothing that other clients need (no backend connection, no
 * more memory than the budget allows), and must be cut off by the body and header timeouts with
 * an answer. Bounded: 500 connections, a few seconds. How fast the normal request is answered
 * meanwhile, and how much memory the gateway uses, is measured by `npx nx run stack:bench-slow-clients`
 * (never asserted here: timing on a shared machine is not a test).
 */
import { randomUUID } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessLogEntry } from './access-log';
import { GatewayOptions, RunningGateway, startGateway } from './gateway';
import {
  accessTokenClaims,
  httpsCall,
  realPolicyOptions,
  RecordingBackend,
  startRecordingBackend,
  startTestIssuer,
  tempStateDir,
  TestIssuer,
  tlsSession,
} from './test-servers.test-helpers';

const API_APP_ID = randomUUID();
const SLOW_CONNECTIONS = 500;

/** Opens a TLS connection, writes `head`, and collects whatever comes back until it closes. */
async function openSlow(
  port: number,
  caPem: string,
  head: string,
): Promise<{ socket: TLSSocket; answer: Promise<string> }> {
  const session = await tlsSession(port, caPem);
  session.socket.write(head);
  return { socket: session.socket, answer: session.closed.then(() => session.text()) };
}

describe('slow clients', () => {
  const state = tempStateDir();
  let issuer: TestIssuer;
  let upstream: RecordingBackend;
  const gateways: RunningGateway[] = [];
  const log: AccessLogEntry[] = [];

  beforeAll(async () => {
    issuer = await startTestIssuer(state.dir);
    upstream = await startRecordingBackend();
  });
  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.close()));
    await upstream?.close();
    await issuer?.close();
    state.remove();
  });

  const gateway = async (opts: Partial<GatewayOptions>) => {
    const g = await startGateway({
      ...realPolicyOptions(state.dir, issuer, API_APP_ID, upstream.url),
      accessLog: (entry) => log.push(entry),
      ...opts,
    });
    gateways.push(g);
    return g;
  };
  const token = () => issuer.sign(accessTokenClaims(issuer, API_APP_ID));
  const slowHead = (g: RunningGateway, jwt: string, declared = 100) =>
    `POST /orders HTTP/1.1\r\nhost: localhost:${g.port}\r\nauthorization: Bearer ${jwt}\r\ncontent-type: text/plain\r\ncontent-length: ${declared}\r\n\r\nx`;

  it(`${SLOW_CONNECTIONS} trickling bodies hold no backend connection; a normal request is still answered; then each gets 408`, async () => {
    const g = await gateway({ bodyTimeoutMs: 4_000 });
    const jwt = await token();
    const before = { requests: upstream.received.length, maxOpen: upstream.connections.maxOpen };
    const slow: Array<{ socket: TLSSocket; answer: Promise<string> }> = [];
    for (let i = 0; i < SLOW_CONNECTIONS; i += 50)
      slow.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(50, SLOW_CONNECTIONS - i) }, () =>
            openSlow(g.port, issuer.caPem, slowHead(g, jwt)),
          ),
        )),
      );

    const normal = await httpsCall(`${g.url}/orders`, {
      caPem: issuer.caPem,
      headers: { authorization: `Bearer ${jwt}` },
    });
    expect(normal.status).toBe(200);
    // Only the normal request reached the backend, over at most one new connection.
    expect(upstream.received.length - before.requests).toBe(1);
    expect(upstream.connections.maxOpen).toBeLessThanOrEqual(before.maxOpen + 1);

    const answers = await Promise.all(slow.map((s) => s.answer));
    for (const answer of answers) {
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
      expect(answer).toMatch(/\r\nconnection: close\r\n/i);
      expect(answer).toContain('"statusCode":408');
    }
    expect(upstream.received.length - before.requests).toBe(1);
    expect(log.filter((e) => e.status === 408 && e.errorReason === 'RequestTimeout')).toHaveLength(
      SLOW_CONNECTIONS,
    );
  }, 60_000);

  it('refuses a body past the shared memory budget with 503 and Retry-After, and nothing reaches the backend', async () => {
    const g = await gateway({ bodyMemoryBytes: 150, bodyTimeoutMs: 3_000 });
    const jwt = await token();
    const before = upstream.received.length;
    // 100 bytes of the budget held by a slow body…
    const holder = await openSlow(g.port, issuer.caPem, slowHead(g, jwt, 200) + 'y'.repeat(99));
    await new Promise((r) => setTimeout(r, 300));
    // …so a second body of 100 bytes does not fit.
    const refused = await httpsCall(`${g.url}/orders`, {
      caPem: issuer.caPem,
      method: 'POST',
      headers: { authorization: `Bearer ${jwt}`, 'content-type': 'text/plain' },
      body: 'z'.repeat(100),
    });
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.json()).toMatchObject({ statusCode: 503 });
    holder.socket.destroy();
    await holder.answer;
    // Once the slow body is gone its bytes are given back: the same request now passes.
    const passed = await httpsCall(`${g.url}/orders`, {
      caPem: issuer.caPem,
      method: 'POST',
      headers: { authorization: `Bearer ${jwt}`, 'content-type': 'text/plain' },
      body: 'z'.repeat(100),
    });
    expect(passed.status).toBe(200);
    expect(upstream.received.length - before).toBe(1);
  }, 30_000);

  it('answers 408 to headers that do not arrive in time (slowloris), in APIM form, and logs it', async () => {
    const g = await gateway({ headerTimeoutMs: 1_000 });
    const before = upstream.received.length;
    const { answer } = await openSlow(
      g.port,
      issuer.caPem,
      `GET /orders HTTP/1.1\r\nhost: localhost:${g.port}\r\nx-a: 1\r\n`,
    );
    const text = await answer;
    expect(text).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(text).toContain('{"statusCode":408,"message":"The request was not received in time."}');
    expect(upstream.received.length).toBe(before);
    expect(log.some((e) => e.status === 408 && e.path === '')).toBe(true);
  }, 30_000);
});
