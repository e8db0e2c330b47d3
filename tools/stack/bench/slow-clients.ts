/**
 * `npx nx run stack:bench-slow-clients` (also part of `npm run bench`): what slow clients cost
 * everybody else at the gateway. It starts the stack as a child process (the gateway runs the
 * real apps/api/apim/policy.xml), gets a real partner token, and then:
 *
 * 1. measures authenticated `GET /orders` one at a time on a keep-alive connection (baseline);
 * 2. opens SLOW_CONNECTIONS (500) TLS connections that each send a valid token and
 *    `Content-Length: 100`, then one byte every 2 s (the body timeout is 10 s, so they are cut off
 *    and reconnect: there are always about 500 of them);
 * 3. measures the same requests again while they are open, and samples the resident memory of
 *    the process that runs the gateway.
 *
 * Prints p50/p99 of both phases and the memory, checks them against the goals (p99 under 1 s
 * with the slow clients open; resident memory of the gateway process under MEMORY_BOUND_MIB),
 * and writes load/results/bench-slow-clients.json. A benchmark, not a test: a missed goal is
 * reported (exit code 0), never asserted. The measured requests come from this process (one
 * request at a time: a latency probe, not a throughput load, so not wrk); its output and JSON
 * say so (LOAD_GENERATOR).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
// The stack as built (launchStackProcess starts the dist/main.js next to it), not a second copy
// of its sources compiled into dist-bench: the bench target builds the stack first.
import { launchStackProcess, requestPartnerToken, workspaceRoot } from '@certflow/stack';
import { KeepAliveConnection } from '@certflow/testing';
import { envInteger } from './settings';

const SLOW_CONNECTIONS = envInteger('BENCH_SLOW_CONNECTIONS', 500);
const REQUESTS = envInteger('BENCH_SLOW_REQUESTS', 400);
const GOAL_P99_MS = 1_000;
/** The documented bound for the process that runs the gateway (and the emulator) under this load. */
const MEMORY_BOUND_MIB = 256;
const LOAD_GENERATOR = `node ${process.version} in the bench process (1 keep-alive connection, one request at a time; verifies TLS certificates)`;

interface Phase {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  requests: number;
}

function residentMib(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? NaN);
  return Math.round((kib / 1024) * 10) / 10;
}

function percentile(sorted: number[], p: number): number {
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]! * 100) / 100;
}

async function measure(url: URL, caPem: string, request: Buffer): Promise<Phase> {
  const connection = await KeepAliveConnection.open(url, caPem);
  const latencies: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const started = performance.now();
    const status = await connection.send(request);
    if (status !== 200) throw new Error(`GET /orders answered ${status}`);
    latencies.push(performance.now() - started);
  }
  connection.close();
  latencies.sort((a, b) => a - b);
  return {
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    maxMs: Math.round(latencies[latencies.length - 1]! * 100) / 100,
    requests: latencies.length,
  };
}

/** Keeps `count` slow senders connected until `stop()`: each trickles a body the gateway waits for. */
function slowSenders(url: URL, caPem: string, head: string, count: number): { open(): number; stop(): void } {
  const sockets = new Set<TLSSocket>();
  let stopped = false;
  const start = (): void => {
    if (stopped) return;
    const socket = connect({
      host: url.hostname,
      port: Number(url.port),
      servername: 'localhost',
      ca: caPem,
    });
    sockets.add(socket);
    let timer: NodeJS.Timeout | undefined;
    socket.once('secureConnect', () => {
      socket.write(head);
      timer = setInterval(() => socket.write('x'), 2_000);
    });
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearInterval(timer);
      sockets.delete(socket);
      setTimeout(start, 10); // cut off by the body timeout: come back, as an attacker would
    });
  };
  for (let i = 0; i < count; i++) setTimeout(start, i * 4);
  return {
    open: () => [...sockets].filter((s) => !s.destroyed && s.readyState === 'open').length,
    stop: () => {
      stopped = true;
      for (const s of sockets) s.destroy();
    },
  };
}

async function main(): Promise<void> {
  const stateDir = mkdtempSync(join(tmpdir(), 'certflow-bench-slow-'));
  const stack = await launchStackProcess(stateDir);
  try {
    const token = await requestPartnerToken(stack.file);
    const caPem = readFileSync(stack.file.caCertificatePath, 'utf8');
    const url = new URL(stack.file.gateway.url);
    const host = `localhost:${url.port}`;
    const request = Buffer.from(
      `GET /orders HTTP/1.1\r\nhost: ${host}\r\nauthorization: Bearer ${token}\r\n\r\n`,
      'latin1',
    );
    await measure(url, caPem, request); // warm-up
    const memoryBefore = residentMib(stack.pid);
    const baseline = await measure(url, caPem, request);

    const slowHead = `POST /orders HTTP/1.1\r\nhost: ${host}\r\nauthorization: Bearer ${token}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n`;
    const senders = slowSenders(url, caPem, slowHead, SLOW_CONNECTIONS);
    await new Promise((r) => setTimeout(r, SLOW_CONNECTIONS * 4 + 3_000));
    const openAtStart = senders.open();
    let memoryPeak = residentMib(stack.pid);
    const sampler = setInterval(() => (memoryPeak = Math.max(memoryPeak, residentMib(stack.pid))), 200);
    const underLoad = await measure(url, caPem, request);
    const openAtEnd = senders.open();
    clearInterval(sampler);
    senders.stop();

    const goalMet = underLoad.p99Ms < GOAL_P99_MS;
    const memoryMet = memoryPeak < MEMORY_BOUND_MIB;
    const result = {
      event: 'result',
      bench: 'slow-clients',
      measuredAt: new Date().toISOString(),
      node: process.version,
      loadGenerator: LOAD_GENERATOR,
      slowConnections: { target: SLOW_CONNECTIONS, openAtStart, openAtEnd },
      baseline,
      underLoad,
      goalP99Ms: GOAL_P99_MS,
      goalMet,
      memoryMib: { before: memoryBefore, peak: memoryPeak, bound: MEMORY_BOUND_MIB, met: memoryMet },
    };
    console.log(JSON.stringify(result));
    console.log(
      `load generator: ${LOAD_GENERATOR}\n` +
        `slow clients open: ${openAtStart} at start, ${openAtEnd} at end (target ${SLOW_CONNECTIONS})\n` +
        `GET /orders alone:            p50 ${baseline.p50Ms} ms  p99 ${baseline.p99Ms} ms  (${baseline.requests} requests)\n` +
        `GET /orders with slow bodies: p50 ${underLoad.p50Ms} ms  p99 ${underLoad.p99Ms} ms  max ${underLoad.maxMs} ms` +
        `  (goal p99 < ${GOAL_P99_MS} ms: ${goalMet ? 'met' : 'NOT met'})\n` +
        `gateway process resident memory: ${memoryBefore} MiB before, ${memoryPeak} MiB peak` +
        `  (bound ${MEMORY_BOUND_MIB} MiB: ${memoryMet ? 'met' : 'NOT met'})`,
    );
    const out = resolve(workspaceRoot(), 'load/results/bench-slow-clients.json');
    mkdirSync(resolve(out, '..'), { recursive: true });
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`wrote ${out}`);
  } finally {
    await stack.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error((err as Error).stack ?? String(err));
  process.exitCode = 1;
});
