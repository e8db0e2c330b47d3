/**
 * `npx nx run stack:bench`: what the gateway costs in front of the API, against what Node.js
 * itself costs as a proxy. In one run on one machine it starts the whole stack as a child
 * process (emulator + certflow's gateway running the real apps/api/apim/policy.xml with
 * validate-jwt, its access log and its metrics on; the API as its own process), gets a real
 * partner access token, and measures authenticated `GET /orders` in alternating rounds through:
 *
 * - direct:  the API over plain HTTP (it validates the token itself, with its own cache);
 * - node:    https → a bare Node.js proxy (node-proxy.ts: https.createServer → keep-alive
 *            http.Agent, no policy) in its own process → the API: the Node.js baseline, what
 *            any Node.js gateway pays for TLS and HTTP before doing any work of its own;
 * - gateway: https → certflow's gateway (validate-jwt, access log, metrics) → the API;
 * - nginx:   https → Debian's nginx (/usr/sbin/nginx; 1 worker, upstream keep-alive, no token
 *            check) → the API, when installed (else said loudly, and the others still run).
 *
 * The load generator is wrk (/usr/bin/wrk or BENCH_WRK: 1 thread, 32 connections) when
 * installed, else the Node.js generator of @certflow/testing's load-generators.ts, said loudly:
 * its figures are lower and not comparable with wrk's. wrk does not verify TLS certificates
 * (the bench says so, and the generator's name in the results JSON too). Each chain gets a short warm-up, then BENCH_ROUNDS rounds of
 * BENCH_SECONDS seconds, the order rotating each round. req/s is a chain's requests over its
 * time in all rounds; p50 and p99 are the medians of the rounds' own percentiles.
 *
 * Prints req/s, p50 and p99 of each chain, the ratios gateway/node (goal ≥ 0.9), gateway/nginx,
 * node/nginx and gateway/direct and the load generator's name, and writes
 * load/results/bench-gateway-chain.json (read by `npm run load:publish`, load/src/publish.ts).
 * profile-gateway.ts profiles the gateway under the same load.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { DevelopmentCa } from '@certflow/certs';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect as netConnect, createServer, type AddressInfo } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
// The stack as built (launchStackProcess starts the dist/main.js next to it), not a second copy
// of its sources compiled into dist-bench: the bench target builds the stack first.
import { launchStackProcess, requestPartnerToken, servedApi, workspaceRoot } from '@certflow/stack';
import { envInteger } from './settings';
import { startNodeProxy, type BenchProcess } from './bench-processes';
import { chooseLoadGenerator, type LoadGenerator, type RoundResult } from '@certflow/testing';

const NGINX = process.env['BENCH_NGINX'] ?? '/usr/sbin/nginx';
const NGINX_WORKERS = envInteger('BENCH_NGINX_WORKERS', 1);
const ROUNDS = envInteger('BENCH_ROUNDS', 3);
const SECONDS = envInteger('BENCH_SECONDS', 6);
const CONCURRENCY = envInteger('BENCH_CONCURRENCY', 32);
const WARM_UP_SECONDS = 2;
const GOAL_GATEWAY_VS_NODE = 0.9;
const PATH = '/orders';

type ChainName = 'direct' | 'node' | 'gateway' | 'nginx';

function loudly(message: string): void {
  const banner = '!'.repeat(100);
  console.log(`${banner}\n!!! ${message}\n${banner}`);
}

async function main(): Promise<void> {
  const stateDir = mkdtempSync(join(tmpdir(), 'certflow-bench-chain-'));
  const stack = await launchStackProcess(stateDir);
  let nginx: NginxProcess | undefined;
  let nodeProxy: BenchProcess | undefined;
  let generator: LoadGenerator | undefined;
  try {
    const file = stack.file;
    const token = await requestPartnerToken(file);
    const apiUrl = new URL(servedApi(file).url);
    nodeProxy = await startNodeProxy(stateDir, apiUrl);

    let nginxSkipped: string | undefined;
    if (existsSync(NGINX)) nginx = await startNginx(stateDir, apiUrl);
    else {
      nginxSkipped = `${NGINX} not found`;
      loudly(
        `nginx baseline NOT run: ${NGINX} is not installed. Install it with: apt-get install nginx-light`,
      );
    }

    const chosen = chooseLoadGenerator({
      path: PATH,
      headers: { authorization: `Bearer ${token}` },
      connections: CONCURRENCY,
      caPem: readFileSync(file.caCertificatePath, 'utf8'),
      workDir: stateDir,
    });
    generator = chosen.generator;
    if (chosen.fallback) loudly(chosen.fallback);
    console.log(
      `load generator: ${generator.name}; ${ROUNDS} rounds of ${SECONDS} s per chain after a ${WARM_UP_SECONDS} s warm-up`,
    );

    const chains: Array<[ChainName, URL]> = [
      ['direct', apiUrl],
      ['node', nodeProxy.url],
      ['gateway', new URL(file.gateway.url)],
      ...(nginx ? ([['nginx', nginx.url]] as Array<[ChainName, URL]>) : []),
    ];
    for (const [, url] of chains) await generator.run(url, WARM_UP_SECONDS);

    const rounds = new Map<ChainName, RoundResult[]>(chains.map(([name]) => [name, []]));
    const roundRatios = { gatewayVsNode: [] as number[], gatewayVsNginx: [] as number[] };
    for (let round = 1; round <= ROUNDS; round++) {
      // Rotate the order, so no chain always runs first (or on the warmest process).
      const order = chains.map((_, i) => chains[(i + round) % chains.length]!);
      const line: Partial<Record<ChainName, number>> = {};
      for (const [name, url] of order) {
        const r = await generator.run(url, SECONDS);
        rounds.get(name)!.push(r);
        line[name] = Math.round(r.requests / r.seconds);
      }
      roundRatios.gatewayVsNode.push(line.gateway! / line.node!);
      if (line.nginx) roundRatios.gatewayVsNginx.push(line.gateway! / line.nginx);
      console.log(JSON.stringify({ event: 'round', round, ...line }));
    }

    const summary = (name: ChainName) => {
      const rs = rounds.get(name);
      if (!rs) return undefined;
      const requests = rs.reduce((n, r) => n + r.requests, 0);
      return {
        reqPerSec: Math.round(requests / rs.reduce((s, r) => s + r.seconds, 0)),
        p50Ms: round2(median(rs.map((r) => r.p50Ms))),
        p99Ms: round2(median(rs.map((r) => r.p99Ms))),
        requests,
      };
    };
    const direct = summary('direct')!;
    const node = summary('node')!;
    const gateway = summary('gateway')!;
    const nginxResult = summary('nginx');
    const ratio = (a: number, b: number | undefined): number | null => (b ? round3(a / b) : null);
    const result = {
      event: 'result',
      bench: 'gateway-chain',
      measuredAt: new Date().toISOString(),
      node: process.version,
      cpus: cpus().length,
      loadGenerator: generator.name,
      path: `GET ${PATH} (authenticated, app role Orders.Read)`,
      chains: {
        direct: { ...direct, description: 'the API over plain HTTP, validating the token itself' },
        node: {
          ...node,
          description: `https → bare Node.js ${process.version} proxy (https.createServer → keep-alive http.Agent, no policy) → API`,
        },
        gateway: {
          ...gateway,
          description:
            "https → certflow's gateway (apps/api/apim/policy.xml validate-jwt, access log, metrics) → API",
        },
        ...(nginxResult
          ? {
              nginx: {
                ...nginxResult,
                description: `https → nginx ${nginx!.version} (${NGINX_WORKERS} worker, upstream keepalive, no JWT validation) → API`,
              },
            }
          : {}),
      },
      gatewayVsNode: ratio(gateway.reqPerSec, node.reqPerSec)!,
      medianRoundGatewayVsNode: round3(median(roundRatios.gatewayVsNode)),
      goalGatewayVsNode: GOAL_GATEWAY_VS_NODE,
      gatewayVsNginx: ratio(gateway.reqPerSec, nginxResult?.reqPerSec),
      medianRoundGatewayVsNginx: roundRatios.gatewayVsNginx.length
        ? round3(median(roundRatios.gatewayVsNginx))
        : null,
      nodeVsNginx: ratio(node.reqPerSec, nginxResult?.reqPerSec),
      gatewayVsDirect: ratio(gateway.reqPerSec, direct.reqPerSec)!,
      nginxSkipped: nginxSkipped ?? null,
      rounds: ROUNDS,
      secondsPerRound: SECONDS,
      concurrency: CONCURRENCY,
    };
    console.log(JSON.stringify(result));
    const fmt = (name: string, s: { reqPerSec: number; p50Ms: number; p99Ms: number }) =>
      `${name.padEnd(8)} ${String(s.reqPerSec).padStart(7)} req/s   p50 ${s.p50Ms} ms   p99 ${s.p99Ms} ms`;
    console.log(`load generator: ${generator.name}`);
    console.log(fmt('direct', direct));
    console.log(fmt('node', node));
    console.log(fmt('gateway', gateway));
    if (nginxResult) console.log(fmt('nginx', nginxResult));
    const reached = result.gatewayVsNode >= GOAL_GATEWAY_VS_NODE ? 'reached' : 'NOT reached';
    console.log(
      `gateway/node ${result.gatewayVsNode} (median of rounds ${result.medianRoundGatewayVsNode}; goal ≥ ${GOAL_GATEWAY_VS_NODE}: ${reached})`,
    );
    console.log(
      nginxResult
        ? `gateway/nginx ${result.gatewayVsNginx} (median of rounds ${result.medianRoundGatewayVsNginx}), node/nginx ${result.nodeVsNginx}, gateway/direct ${result.gatewayVsDirect}`
        : `gateway/direct ${result.gatewayVsDirect}; gateway/nginx and node/nginx not measured (apt-get install nginx-light)`,
    );
    const out = resolve(workspaceRoot(), 'load/results/bench-gateway-chain.json');
    mkdirSync(resolve(out, '..'), { recursive: true });
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`wrote ${out}`);
  } finally {
    generator?.close();
    await nodeProxy?.stop();
    await nginx?.stop();
    await stack.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

const round2 = (n: number): number => Math.round(n * 100) / 100;
const round3 = (n: number): number => Math.round(n * 1000) / 1000;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

interface NginxProcess {
  url: URL;
  version: string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolvePromise(port));
    });
  });
}

/** nginx with a generated config in a temp dir: TLS with a dev-CA certificate, proxy_pass with upstream keepalive. */
async function startNginx(stateDir: string, api: URL): Promise<NginxProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'certflow-bench-nginx-'));
  const tls = DevelopmentCa.loadOrCreate(stateDir).issueServerCertificate();
  writeFileSync(join(dir, 'server.crt.pem'), tls.certificatePem);
  writeFileSync(join(dir, 'server.key.pem'), tls.privateKeyPem, { mode: 0o600 });
  for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, sub));
  const port = await freePort();
  const conf = `
daemon off;
master_process on;
worker_processes ${NGINX_WORKERS};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
${process.getuid?.() === 0 ? 'user root;' : ''}
events { worker_connections 1024; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  upstream api {
    server ${api.hostname}:${api.port};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port} ssl;
    server_name localhost;
    ssl_certificate ${dir}/server.crt.pem;
    ssl_certificate_key ${dir}/server.key.pem;
    location / {
      proxy_pass http://api;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # The API's own host and port, as the gateway and the bare Node.js proxy send.
      proxy_set_header Host ${api.host};
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto https;
    }
  }
}
`;
  const confFile = join(dir, 'nginx.conf');
  writeFileSync(confFile, conf);
  const version = (spawnSync(NGINX, ['-v'], { encoding: 'utf8' }).stderr ?? '')
    .trim()
    .replace(/^nginx version: nginx\//, '');
  const child: ChildProcess = spawn(NGINX, ['-p', dir, '-c', confFile, '-e', join(dir, 'error.log')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  const stop = (): Promise<void> =>
    new Promise<void>((done) => {
      if (child.exitCode !== null || child.signalCode !== null) return done();
      child.once('exit', () => done());
      child.kill('SIGQUIT');
      setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
    }).then(() => rmSync(dir, { recursive: true, force: true }));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) {
      const log = existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : '';
      await stop();
      throw new Error(`nginx exited with code ${child.exitCode}: ${output}${log}`);
    }
    const up = await new Promise<boolean>((done) => {
      const s = netConnect(port, '127.0.0.1', () => {
        s.destroy();
        done(true);
      });
      s.once('error', () => done(false));
    });
    if (up) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`nginx did not listen on ${port} within 10 s: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url: new URL(`https://localhost:${port}`), version, stop };
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error)?.stack ?? String(err)}`);
  process.exitCode = 1;
});
