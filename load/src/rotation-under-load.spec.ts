import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { callsServed, overlapProblems, waitForCalls } from './rotation-under-load';

/** A facade's /metrics whose call count starts growing 800 ms after it starts, as under a slow-starting engine. */
let server: Server;
let url: string;
let startedAt: number;
beforeAll(async () => {
  startedAt = Date.now();
  server = createServer((req, res) => {
    if (req.url !== '/metrics') return res.writeHead(404).end();
    const calls = Math.max(0, Math.floor((Date.now() - startedAt - 800) / 10));
    res.end(
      '# TYPE partner_calls_total counter\n' +
        `partner_calls_total{outcome="ok",status="200"} ${calls}\n` +
        `partner_calls_total{outcome="upstream",status="503"} ${calls > 0 ? 1 : 0}\n`,
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((r) => server.close(r)));

describe('the rotation waits for the load', () => {
  it('waits until the facade has served the calls asked for, counting every outcome', async () => {
    expect(await callsServed(url)).toBe(0);
    const served = await waitForCalls(url, 20, 10_000);
    expect(served).toBeGreaterThanOrEqual(20);
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(800 + 190);
  });

  it('gives up at its bound with the count it read', async () => {
    const t0 = Date.now();
    const served = await waitForCalls(url, 1e9, 400);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
    expect(served).toBeLessThan(1e9);
  });

  it('fails a rotation that began before the load flowed, or outlasted it', () => {
    expect(overlapProblems({ atStart: 40, atEnd: 90, atStop: 150 }, 20)).toEqual([]);
    expect(overlapProblems({ atStart: 3, atEnd: 90, atStop: 150 }, 20)).toEqual([
      'the load had not started when the rotation began: the facade had served 3 calls (at least 20 expected)',
    ]);
    expect(overlapProblems({ atStart: 40, atEnd: 40, atStop: 40 }, 20)).toEqual([
      'the facade served no call while cert rotate ran',
      'the load stopped before the rotation ended: the facade served no call after it',
    ]);
    expect(overlapProblems({ atStart: 40, atEnd: 90, atStop: 90 }, 20)).toEqual([
      'the load stopped before the rotation ended: the facade served no call after it',
    ]);
  });
});
