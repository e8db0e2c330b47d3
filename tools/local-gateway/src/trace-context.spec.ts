import { DevelopmentCa } from '@certflow/certs';
import { parseTraceparent } from '@certflow/observability';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessLogEntry } from './access-log';
import { RunningGateway, startGateway } from './gateway';
import {
  EchoUpstream,
  httpsCall,
  startEchoUpstream,
  tempStateDir,
  tlsSession,
} from './test-servers.test-helpers';

const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';
const CALLER = `00-${CALLER_TRACE}-${CALLER_SPAN}-01`;
const HEX = (digits: number) => new RegExp(`^[0-9a-f]{${digits}}$`);

describe('W3C trace context through the gateway', () => {
  const state = tempStateDir();
  let caPem: string;
  let upstream: EchoUpstream;
  let gateway: RunningGateway;
  const log: AccessLogEntry[] = [];

  beforeAll(async () => {
    caPem = DevelopmentCa.loadOrCreate(state.dir).certificatePem;
    upstream = await startEchoUpstream();
    const policyFile = join(state.dir, 'policy.xml');
    writeFileSync(
      policyFile,
      `<policies><inbound><check-header name="X-Partner" failed-check-httpcode="403" failed-check-error-message="Unknown partner" ignore-case="false"><value>contoso</value></check-header></inbound></policies>`,
    );
    gateway = await startGateway({
      stateDir: state.dir,
      policyFile,
      backendUrl: upstream.url,
      accessLog: (entry) => log.push(entry),
    });
  });

  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
    state.remove();
  });

  /** The line is written when the gateway's response closes, which may come after the client has read it. */
  async function logged(): Promise<void> {
    for (let i = 0; log.length === 0 && i < 200; i++) await new Promise((done) => setTimeout(done, 10));
  }

  /** Sends one request and returns its access-log line and, when it was forwarded, the headers the backend got. */
  async function send(headers: Record<string, string>) {
    log.length = 0;
    upstream.received.length = 0;
    const res = await httpsCall(`${gateway.url}/orders`, { caPem, headers });
    await logged();
    expect(log).toHaveLength(1);
    return { res, entry: log[0]!, backend: upstream.received[0]?.headers };
  }

  it('keeps a valid caller trace end to end: the log and the backend see its trace id, with the gateway’s span as parent', async () => {
    const { res, entry, backend } = await send({
      'x-partner': 'contoso',
      traceparent: CALLER,
      tracestate: 'vendor=kept',
    });
    expect(res.status).toBe(200);
    expect(entry.traceId).toBe(CALLER_TRACE);
    expect(entry.parentSpanId).toBe(CALLER_SPAN);
    expect(backend?.tracestate).toBe('vendor=kept');
    expect(entry.spanId).toMatch(HEX(16));
    expect(entry.spanId).not.toBe(CALLER_SPAN);
    expect(backend?.traceparent).toBe(`00-${CALLER_TRACE}-${entry.spanId}-01`);
    expect(backend?.['x-appgw-trace-id']).toBe(CALLER_TRACE);
  });

  it.each([
    ['malformed', { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}` }],
    ['all-zero', { traceparent: `00-${'0'.repeat(32)}-${CALLER_SPAN}-01` }],
    ['absent', {}],
  ])('starts a new trace when traceparent is %s', async (_, extra: Record<string, string>) => {
    // tracestate belongs to the traceparent it came with: dropped with it.
    const { entry, backend } = await send({ 'x-partner': 'contoso', tracestate: 'vendor=evil', ...extra });
    expect(backend?.tracestate).toBeUndefined();
    expect(entry.parentSpanId).toBeUndefined();
    expect(entry.traceId).toMatch(HEX(32));
    expect(entry.traceId).not.toBe(CALLER_TRACE);
    expect(parseTraceparent(backend?.traceparent)).toEqual({
      traceId: entry.traceId,
      spanId: entry.spanId,
      flags: '00',
    });
    expect(backend?.['x-appgw-trace-id']).toBe(entry.traceId);
  });

  it('logs the trace of a request a policy refused', async () => {
    const { res, entry, backend } = await send({ 'x-partner': 'evil', traceparent: CALLER });
    expect(res.status).toBe(403);
    expect(backend).toBeUndefined();
    expect(entry).toMatchObject({ policy: 'rejected', errorSource: 'check-header', traceId: CALLER_TRACE });
    expect(entry.spanId).toMatch(HEX(16));
  });

  it('logs a new trace for a request the HTTP parser refused', async () => {
    log.length = 0;
    const session = await tlsSession(gateway.port, caPem);
    session.socket.write('GET /orders HTTP/1.1\r\nHost: localhost\r\nBad Header: x\r\n\r\n');
    await session.closed;
    await logged();
    expect(session.text()).toMatch(/^HTTP\/1\.1 400 /);
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ status: 400, errorSource: 'gateway', errorReason: 'MalformedRequest' });
    expect(log[0]!.traceId).toMatch(HEX(32));
    expect(log[0]!.spanId).toMatch(HEX(16));
  });
});
