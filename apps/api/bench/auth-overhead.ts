/**
 * `npx nx run api:bench`: what token validation costs. In one process and one run it starts
 * the Entra ID emulator (child process) and the API, then measures the throughput of the same
 * orders listing behind authentication (a real access token, app role Orders.Read) and public,
 * in alternating rounds of a fixed number of requests over keep-alive connections. Prints
 * req/s of both and their ratio; the goal is a ratio of at least 0.9.
 *
 * The load generator shares the process (and the CPU) with the API, so it is kept as cheap as
 * wrk: each connection writes a prebuilt request and reads the response by its Content-Length.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { KeepAliveConnection } from '@certflow/testing';
import { startApi } from '../src/api-app';
import { loadApiConfig } from '../src/config/api-config';
import { BenchTwinModule } from './bench-twin.module';
import { startBenchAuthority } from './emulator-process';

const ROUNDS = 10;
const REQUESTS_PER_ROUND = 3_000;
const CONCURRENCY = 32;
const WARM_UP_REQUESTS = 1_000;

async function main(): Promise<void> {
  const stateDir = mkdtempSync(join(tmpdir(), 'certflow-bench-'));
  const emulatorMain = resolve(__dirname, '../../../../tools/entra-emulator/dist/main.js');
  const authority = await startBenchAuthority(emulatorMain, stateDir);
  const startBenchApi = (env: Record<string, string> = {}) =>
    startApi(
      loadApiConfig({
        PORT: '0',
        ENTRA_INSTANCE: authority.instance,
        ENTRA_TENANT_ID: authority.tenantId,
        API_AUDIENCES: authority.apiAppId,
        ENTRA_CA_FILE: authority.caFile,
        ...env,
      }),
      { logger: false, modules: [BenchTwinModule] },
    );
  const api = await startBenchApi();
  // For reference only: the same API verifying the RSA signature on every request.
  const uncachedApi = await startBenchApi({ API_TOKEN_CACHE_SIZE: '0' });
  // Plain HTTP on loopback: no CA to trust. Host names the API's own address: it refuses any
  // other name on loopback (421).
  const open = async (url: string): Promise<Pool> => ({
    host: new URL(url).host,
    connections: await Promise.all(
      Array.from({ length: CONCURRENCY }, () => KeepAliveConnection.open(new URL(url), '')),
    ),
  });
  const pool = await open(api.url);
  const uncachedPool = await open(uncachedApi.url);
  try {
    const targets = {
      public: { path: '/bench/orders/public', headers: {} },
      authenticated: {
        path: '/bench/orders/authenticated',
        headers: { authorization: `Bearer ${authority.accessToken}` },
      },
    };
    for (const target of Object.values(targets)) await run(pool, target, WARM_UP_REQUESTS);
    const totals = { public: { requests: 0, ms: 0 }, authenticated: { requests: 0, ms: 0 } };
    const roundRatios: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      // Alternate which goes first, so neither always runs on a warmer process.
      const order =
        round % 2 === 1 ? (['public', 'authenticated'] as const) : (['authenticated', 'public'] as const);
      const line: Record<string, number> = { round };
      for (const name of order) {
        const ms = await run(pool, targets[name], REQUESTS_PER_ROUND);
        totals[name].requests += REQUESTS_PER_ROUND;
        totals[name].ms += ms;
        line[name] = Math.round((REQUESTS_PER_ROUND / ms) * 1000);
      }
      roundRatios.push(line['authenticated']! / line['public']!);
      console.log(JSON.stringify({ event: 'round', ...line }));
    }
    const rate = (t: { requests: number; ms: number }) => (t.requests / t.ms) * 1000;
    await run(uncachedPool, targets.authenticated, WARM_UP_REQUESTS);
    const uncachedMs = await run(uncachedPool, targets.authenticated, REQUESTS_PER_ROUND);
    const result = {
      event: 'result',
      publicReqPerSec: Math.round(rate(totals.public)),
      authenticatedReqPerSec: Math.round(rate(totals.authenticated)),
      ratio: Number((rate(totals.authenticated) / rate(totals.public)).toFixed(3)),
      // Each round measures both back to back: the median of their ratios resists noise from other processes.
      medianRoundRatio: Number(median(roundRatios).toFixed(3)),
      uncachedAuthenticatedReqPerSec: Math.round((REQUESTS_PER_ROUND / uncachedMs) * 1000),
      goal: 0.9,
      rounds: ROUNDS,
      requestsPerRound: REQUESTS_PER_ROUND,
      concurrency: CONCURRENCY,
      // Both routes are loaded side by side from this process: a ratio, not a throughput figure.
      loadGenerator: `node ${process.version} in the bench process (raw keep-alive sockets, both routes side by side)`,
    };
    console.log(JSON.stringify(result));
    const resultsDir = resolve(__dirname, '../../../../load/results');
    mkdirSync(resultsDir, { recursive: true });
    writeFileSync(
      join(resultsDir, 'bench-auth-overhead.json'),
      `${JSON.stringify({ bench: 'auth-overhead', measuredAt: new Date().toISOString(), node: process.version, ...result }, null, 2)}\n`,
    );
    console.log(
      `load generator: ${result.loadGenerator}; ` +
        `public ${result.publicReqPerSec} req/s, authenticated ${result.authenticatedReqPerSec} req/s, ratio ${result.ratio}, median round ratio ${result.medianRoundRatio} (goal ≥ ${result.goal}); ` +
        `without the verified-token cache ${result.uncachedAuthenticatedReqPerSec} req/s`,
    );
  } finally {
    for (const connection of [...pool.connections, ...uncachedPool.connections]) connection.close();
    await api.close();
    await uncachedApi.close();
    await authority.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Sends `total` GETs, one in flight per connection; every answer must be 200. Returns the elapsed ms. */
interface Pool {
  host: string;
  connections: KeepAliveConnection[];
}

async function run(
  { host, connections }: Pool,
  target: { path: string; headers: Record<string, string> },
  total: number,
): Promise<number> {
  const head = Object.entries(target.headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  const bytes = Buffer.from(`GET ${target.path} HTTP/1.1\r\nhost: ${host}\r\n${head}\r\n`, 'latin1');
  let sent = 0;
  const started = process.hrtime.bigint();
  const lane = async (connection: KeepAliveConnection) => {
    while (sent < total) {
      sent++;
      const status = await connection.send(bytes);
      if (status !== 200) throw new Error(`${target.path} answered ${status}`);
    }
  };
  await Promise.all(connections.map(lane));
  return Number(process.hrtime.bigint() - started) / 1e6;
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error)?.stack ?? String(err)}`);
  process.exitCode = 1;
});
