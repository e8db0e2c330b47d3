/**
 * `npx nx run stack:bench`: what the gateway costs in front of the API. In one run on one
 * machine it starts the whole stack as a child process (emulator + certflow's gateway running
 * the real apps/api/apim/policy.xml, the API as its own process), gets a real partner access
 * token, starts Debian's nginx (/usr/sbin/nginx) as a plain TLS reverse proxy in front of the
 * same API process (upstream keep-alive, no JWT validation), and then measures authenticated
 * `GET /orders` in alternating rounds:
 *
 * - direct:  the API over plain HTTP (it validates the token itself, with its own cache);
 * - gateway: https → certflow's gateway (validate-jwt) → the API;
 * - nginx:   https → nginx (no token check) → the API.
 *
 * Prints req/s, p50 and p99 of each and the ratios gateway/nginx (goal ≥ 0.7) and
 * gateway/direct, and writes load/results/bench-gateway-chain.json. Without nginx it says so
 * loudly and measures the other two.
 *
 * The load generator shares the machine with everything it measures, so it is kept as cheap as
 * wrk: each keep-alive connection writes one prebuilt request and reads the response by its
 * Content-Length.
 */
import { DevelopmentCa } from '@certflow/certs';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { requestPartnerToken } from '../partner-credentials';
import { launchStackProcess } from '../stack-process';
import { workspaceRoot } from '../workspace';

const NGINX = process.env['BENCH_NGINX'] ?? '/usr/sbin/nginx';
const NGINX_WORKERS = Number(process.env['BENCH_NGINX_WORKERS'] ?? '1');
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? '6');
const REQUESTS_PER_ROUND = Number(process.env['BENCH_REQUESTS'] ?? '3000');
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? '32');
const WARM_UP_REQUESTS = 3_000;
const GOAL_GATEWAY_VS_NGINX = 0.7;
const PATH = '/orders';

type ChainName = 'direct' | 'gateway' | 'nginx';

interface Chain {
  name: ChainName;
  url: URL;
  connections: KeepAliveConnection[];
}

interface Totals {
  requests: number;
  ms: number;
  latenciesMs: number[];
}

async function main(): Promise<void> {
  const stateDir = mkdtempSync(join(tmpdir(), 'certflow-bench-chain-'));
  const stack = await launchStackProcess(stateDir);
  let nginx: NginxProcess | undefined;
  const chains: Chain[] = [];
  try {
    const file = stack.file;
    const token = await requestPartnerToken(file);
    const caPem = readFileSync(file.caCertificatePath, 'utf8');
    const apiUrl = new URL(file.api.url);

    let nginxSkipped: string | undefined;
    if (existsSync(NGINX)) {
      nginx = await startNginx(stateDir, apiUrl);
    } else {
      nginxSkipped = `${NGINX} not found`;
      const banner = '!'.repeat(100);
      console.log(
        `${banner}\n!!! nginx baseline NOT run: ${NGINX} is not installed. Install it with: apt-get install nginx-light\n${banner}`,
      );
    }

    const urls: Array<[ChainName, URL]> = [
      ['direct', apiUrl],
      ['gateway', new URL(file.gateway.url)],
      ...(nginx ? ([['nginx', nginx.url]] as Array<[ChainName, URL]>) : []),
    ];
    for (const [name, url] of urls) {
      chains.push({
        name,
        url,
        connections: await Promise.all(
          Array.from({ length: CONCURRENCY }, () => KeepAliveConnection.open(url, caPem)),
        ),
      });
    }
    const request = Buffer.from(
      `GET ${PATH} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer ${token}\r\n\r\n`,
      'latin1',
    );
    for (const chain of chains) await run(chain, request, WARM_UP_REQUESTS);

    const totals = Object.fromEntries(
      chains.map((c) => [c.name, { requests: 0, ms: 0, latenciesMs: [] } as Totals]),
    ) as Record<ChainName, Totals>;
    const roundRatios: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      // Rotate the order, so no chain always runs first (or on the warmest process).
      const order = chains.map((_, i) => chains[(i + round) % chains.length]!);
      const line: Record<string, number> = { round };
      for (const chain of order) {
        const { ms, latenciesMs } = await run(chain, request, REQUESTS_PER_ROUND);
        const t = totals[chain.name];
        t.requests += REQUESTS_PER_ROUND;
        t.ms += ms;
        t.latenciesMs.push(...latenciesMs);
        line[chain.name] = Math.round((REQUESTS_PER_ROUND / ms) * 1000);
      }
      if (line['nginx']) roundRatios.push(line['gateway']! / line['nginx']);
      console.log(JSON.stringify({ event: 'round', ...line }));
    }

    const summary = (name: ChainName) => {
      const t = totals[name];
      if (!t) return undefined;
      const sorted = Float64Array.from(t.latenciesMs).sort();
      return {
        reqPerSec: Math.round((t.requests / t.ms) * 1000),
        p50Ms: round2(percentile(sorted, 0.5)),
        p99Ms: round2(percentile(sorted, 0.99)),
        requests: t.requests,
      };
    };
    const direct = summary('direct')!;
    const gateway = summary('gateway')!;
    const nginxResult = nginx ? summary('nginx') : undefined;
    const result = {
      event: 'result',
      bench: 'gateway-chain',
      measuredAt: new Date().toISOString(),
      node: process.version,
      cpus: (await import('node:os')).cpus().length,
      path: `GET ${PATH} (authenticated, app role Orders.Read)`,
      chains: {
        direct: { ...direct, description: 'the API over plain HTTP, validating the token itself' },
        gateway: {
          ...gateway,
          description: "https → certflow's gateway (apps/api/apim/policy.xml validate-jwt) → API",
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
      gatewayVsNginx: nginxResult ? round3(gateway.reqPerSec / nginxResult.reqPerSec) : null,
      medianRoundGatewayVsNginx: roundRatios.length ? round3(median(roundRatios)) : null,
      gatewayVsDirect: round3(gateway.reqPerSec / direct.reqPerSec),
      goalGatewayVsNginx: GOAL_GATEWAY_VS_NGINX,
      nginxSkipped: nginxSkipped ?? null,
      rounds: ROUNDS,
      requestsPerRound: REQUESTS_PER_ROUND,
      concurrency: CONCURRENCY,
    };
    console.log(JSON.stringify(result));
    const fmt = (name: string, s: { reqPerSec: number; p50Ms: number; p99Ms: number }) =>
      `${name.padEnd(8)} ${String(s.reqPerSec).padStart(7)} req/s   p50 ${s.p50Ms} ms   p99 ${s.p99Ms} ms`;
    console.log(fmt('direct', direct));
    console.log(fmt('gateway', gateway));
    if (nginxResult) console.log(fmt('nginx', nginxResult));
    console.log(
      nginxResult
        ? `gateway/nginx ${result.gatewayVsNginx} (median of rounds ${result.medianRoundGatewayVsNginx}; goal ≥ ${GOAL_GATEWAY_VS_NGINX}: ${result.gatewayVsNginx! >= GOAL_GATEWAY_VS_NGINX ? 'reached' : 'NOT reached'}), gateway/direct ${result.gatewayVsDirect}`
        : `gateway/direct ${result.gatewayVsDirect}; gateway/nginx not measured (apt-get install nginx-light)`,
    );
    const out = resolve(workspaceRoot(), 'load/results/bench-gateway-chain.json');
    mkdirSync(resolve(out, '..'), { recursive: true });
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`wrote ${out}`);
  } finally {
    for (const chain of chains) for (const c of chain.connections) c.close();
    await nginx?.stop();
    await stack.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

const round2 = (n: number): number => Math.round(n * 100) / 100;
const round3 = (n: number): number => Math.round(n * 1000) / 1000;

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Sends `total` requests, one in flight per connection; every answer must be 200. */
async function run(
  chain: Chain,
  request: Buffer,
  total: number,
): Promise<{ ms: number; latenciesMs: number[] }> {
  let sent = 0;
  const latenciesMs: number[] = [];
  const started = process.hrtime.bigint();
  const lane = async (connection: KeepAliveConnection): Promise<void> => {
    while (sent < total) {
      sent++;
      const t0 = process.hrtime.bigint();
      const status = await connection.send(request);
      latenciesMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (status !== 200) throw new Error(`${chain.name}: ${PATH} answered ${status}`);
    }
  };
  await Promise.all(chain.connections.map(lane));
  return { ms: Number(process.hrtime.bigint() - started) / 1e6, latenciesMs };
}

/** One keep-alive HTTP/1.1 connection (TLS for https: URLs); responses must carry Content-Length. */
class KeepAliveConnection {
  private buffered: Buffer = Buffer.alloc(0);
  private pending: { resolve: (status: number) => void; reject: (err: Error) => void } | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (err) => this.pending?.reject(err));
    socket.on('close', () => this.pending?.reject(new Error('connection closed')));
  }

  static open(url: URL, caPem: string): Promise<KeepAliveConnection> {
    return new Promise((resolvePromise, reject) => {
      const port = Number(url.port);
      const socket: Socket =
        url.protocol === 'https:'
          ? tlsConnect({ host: url.hostname, port, ca: caPem, servername: url.hostname }, () =>
              resolvePromise(new KeepAliveConnection(socket)),
            )
          : netConnect(port, url.hostname, () => resolvePromise(new KeepAliveConnection(socket)));
      socket.once('error', reject);
    });
  }

  send(request: Buffer): Promise<number> {
    return new Promise((resolvePromise, reject) => {
      this.pending = { resolve: resolvePromise, reject };
      this.socket.write(request);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const headerEnd = this.buffered.indexOf('\r\n\r\n');
    if (headerEnd < 0) return;
    const head = this.buffered.toString('latin1', 0, headerEnd);
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (!length) {
      this.pending?.reject(new Error(`response without content-length: ${head.split('\r\n')[0]}`));
      return;
    }
    const end = headerEnd + 4 + Number(length[1]);
    if (this.buffered.length < end) return;
    this.buffered = this.buffered.subarray(end);
    const pending = this.pending;
    this.pending = undefined;
    pending?.resolve(Number(head.slice(9, 12)));
  }
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
      proxy_set_header Host $host;
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
