import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer as createHttpsServer, Server as HttpsServer } from 'node:https';
import { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DevelopmentCa, createCertificateAuthority } from '@certflow/certs';
import { LAST_BUCKET_MIN_MS, runLoad, type LoadOptions } from './http-load';
import { brokenThresholds } from './thresholds';

let server: HttpsServer;
let url: string;
let ca: DevelopmentCa;
const stateDir = mkdtempSync(join(tmpdir(), 'certflow-load-test-'));

beforeAll(async () => {
  ca = DevelopmentCa.loadOrCreate(stateDir);
  const tls = ca.issueServerCertificate();
  server = createHttpsServer({ cert: tls.certificatePem, key: tls.privateKeyPem }, (req, res) => {
    res.statusCode = req.headers.authorization === 'Bearer good' ? 200 : 401;
    res.end('{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `https://localhost:${(server.address() as AddressInfo).port}/orders`;
});

/** runLoad against the test server, trusting its CA; 2 connections, 20 requests at most, unless `opts` says otherwise. */
const loadServer = (opts: Partial<LoadOptions> = {}) =>
  runLoad({ url, ca: ca.certificatePem, connections: 2, durationMs: 10_000, maxRequests: 20, ...opts });

afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(stateDir, { recursive: true, force: true });
});

describe('runLoad', () => {
  it('counts statuses and latencies over verified TLS, and stops at the request cap', async () => {
    const result = await loadServer({
      headers: { authorization: 'Bearer good' },
      connections: 4,
      maxRequests: 200,
    });
    expect(result.requests).toBe(200);
    expect(result.statuses).toEqual({ '200': 200 });
    expect(result.errors).toEqual({});
    expect(result.latencyMs.p50).toBeGreaterThan(0);
    expect(result.latencyMs.p99).toBeGreaterThanOrEqual(result.latencyMs.p50);
    expect(brokenThresholds(result, { maxFailureRate: 0, maxP99Ms: 60_000, expectedStatus: 200 })).toEqual(
      [],
    );
  });

  it('reports unexpected statuses as broken thresholds', async () => {
    const result = await loadServer();
    expect(result.statuses).toEqual({ '401': 20 });
    expect(brokenThresholds(result, { maxFailureRate: 0, maxP99Ms: 60_000, expectedStatus: 200 })[0]).toMatch(
      /failure rate 100\.00%/,
    );
  });

  it('ends early when its signal is aborted, finishing the requests in flight', async () => {
    const stop = new AbortController();
    const running = loadServer({
      headers: { authorization: 'Bearer good' },
      durationMs: 60_000,
      maxRequests: 10_000_000,
      signal: stop.signal,
    });
    await new Promise((r) => setTimeout(r, 300));
    stop.abort();
    const result = await running;
    expect(result.durationMs).toBeLessThan(30_000);
    expect(result.requests).toBeGreaterThan(0);
    expect(result.statuses).toEqual({ '200': result.requests });
  });

  it('refuses a server whose certificate does not chain to the given CA', async () => {
    const otherCa = createCertificateAuthority({ commonName: 'someone else' });
    const result = await runLoad({
      url,
      ca: otherCa.certificatePem,
      connections: 1,
      durationMs: 10_000,
      maxRequests: 3,
    });
    expect(result.statuses).toEqual({});
    expect(Object.keys(result.errors)).toEqual(['UNABLE_TO_VERIFY_LEAF_SIGNATURE']);
  });
});

describe('runLoad timeline', () => {
  it('counts each second of the run: requests, failures (other statuses, transport errors), p50 ≤ p99', async () => {
    let n = 0;
    const tls = ca.issueServerCertificate();
    const flaky = createHttpsServer({ cert: tls.certificatePem, key: tls.privateKeyPem }, (_req, res) => {
      n += 1;
      // Every seventh answer is a 503, every thirteenth connection is cut: both are failures.
      if (n % 13 === 0) return res.socket?.destroy();
      res.statusCode = n % 7 === 0 ? 503 : 200;
      setTimeout(() => res.end('{}'), n % 5);
    });
    await new Promise<void>((r) => flaky.listen(0, '127.0.0.1', r));
    const before = Date.now();
    try {
      const result = await runLoad({
        url: `https://localhost:${(flaky.address() as AddressInfo).port}/orders`,
        ca: ca.certificatePem,
        connections: 4,
        durationMs: 2_300,
        maxRequests: 1_000_000,
      });
      const timeline = result.timeline!;
      expect(result.startedAt).toBeGreaterThanOrEqual(before);
      expect(timeline.map((p) => p.second)).toEqual([0, 1, 2]);
      expect(timeline.reduce((s, p) => s + p.requests, 0)).toBe(result.requests);
      const failed = result.requests - (result.statuses['200'] ?? 0);
      expect(result.statuses['503']).toBeGreaterThan(0);
      expect(Object.values(result.errors).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      expect(timeline.reduce((s, p) => s + p.failures, 0)).toBe(failed);
      for (const p of timeline) {
        expect(p.requests).toBeGreaterThan(0);
        expect(p.p50).toBeGreaterThan(0);
        expect(p.p99).toBeGreaterThanOrEqual(p.p50);
      }
    } finally {
      await new Promise((r) => flaky.close(r));
    }
  });

  it('counts a final partial second shorter than 200 ms in the second before it, failures included', async () => {
    const result = await loadServer({
      durationMs: 1_060,
      maxRequests: 1e6,
    });
    expect(result.durationMs).toBeLessThan(1_000 + LAST_BUCKET_MIN_MS);
    expect(result.timeline!.map((p) => p.second)).toEqual([0]);
    // No 'Bearer good': every answer is a 401, a failure, and the last 60 ms keep theirs.
    expect(result.timeline![0]!.requests).toBe(result.requests);
    expect(result.timeline![0]!.failures).toBe(result.requests);
    const longer = await loadServer({
      durationMs: 1_400,
      maxRequests: 1e6,
    });
    expect(longer.timeline!.map((p) => p.second)).toEqual([0, 1]);
  });

  it('counts failures against expectedStatus', async () => {
    const result = await loadServer({
      expectedStatus: 401,
    });
    expect(result.statuses).toEqual({ '401': 20 });
    expect(result.timeline!.reduce((s, p) => s + p.failures, 0)).toBe(0);
    const wrong = await loadServer();
    expect(wrong.timeline!.reduce((s, p) => s + p.failures, 0)).toBe(20);
  });
});

describe('runLoad with a request body', () => {
  it('sends the same body with every POST', async () => {
    const bodies = new Set<string>();
    const tls = ca.issueServerCertificate();
    const echo = createHttpsServer({ cert: tls.certificatePem, key: tls.privateKeyPem }, (req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (d) => (body += d));
      req.on('end', () => {
        bodies.add(`${req.method} ${req.headers['content-type']} ${body}`);
        res.end();
      });
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    try {
      const result = await runLoad({
        url: `https://localhost:${(echo.address() as AddressInfo).port}/token`,
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=client_credentials&scope=api%3A%2F%2Fx%2F.default',
        ca: ca.certificatePem,
        connections: 3,
        durationMs: 10_000,
        maxRequests: 30,
      });
      expect(result.statuses).toEqual({ '200': 30 });
      expect([...bodies]).toEqual([
        'POST application/x-www-form-urlencoded grant_type=client_credentials&scope=api%3A%2F%2Fx%2F.default',
      ]);
    } finally {
      await new Promise((r) => echo.close(r));
    }
  });
});
