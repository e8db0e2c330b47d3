/**
 * The HTTP load generators of the benchmarks (stack:bench, entra-emulator:bench). Both drive
 * keep-alive connections with one request in flight each for a fixed time, send one fixed
 * request (method, path, headers, body), and report {requests, seconds, p50, p99}:
 *
 * - wrk (Debian's /usr/bin/wrk, or BENCH_WRK; 1 thread): a C load generator, so the measured
 *   servers, not the generator, are the limit. The request's method, headers and body reach
 *   wrk's Lua script through the environment, never the command line (they carry tokens and
 *   client secrets). wrk does NOT verify TLS certificates; its name says so.
 * - node: the fallback when wrk is missing. It shares the machine's cores with what it measures
 *   and costs more per request than wrk, so its figures are lower; it is kept cheap (one prebuilt
 *   request per connection, responses read by their Content-Length). It verifies TLS
 *   certificates against the CA it is given.
 *
 * Every answer is checked: any status but the expected one (200 unless told) or any socket
 * error fails the round, with the count and the first wrong status. A rejected request is not
 * a fast one.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';

/** What a bench whose load is generated inside its own process prints and records instead. */
export const IN_PROCESS_LOAD = 'in-process (no HTTP load generator)';

export interface RoundResult {
  requests: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
}

export interface LoadGenerator {
  /** e.g. `wrk 4.1.0 (1 thread, 32 connections; does not verify TLS certificates)` */
  readonly name: string;
  run(url: URL, seconds: number): Promise<RoundResult>;
  close(): void;
}

export interface LoadOptions {
  /** GET unless told. */
  method?: string;
  /** Resolved against the URL given to `run`. */
  path: string;
  /** Sent with every request; values may be secrets (they never reach a command line). */
  headers?: Record<string, string>;
  /** Sent with every request (Content-Length is added); may hold secrets. */
  body?: string;
  /** The only status that counts as an answer; 200 unless told. */
  expectedStatus?: number;
  connections: number;
  /** Trusted for https: URLs by the node generator (wrk verifies nothing). */
  caPem: string;
  /** A private directory for wrk's Lua script. */
  workDir: string;
}

/** The wrk binary the benches use: BENCH_WRK, else Debian's. */
export const wrkPath = (): string => process.env['BENCH_WRK'] ?? '/usr/bin/wrk';

/**
 * wrk when it is installed, else the node generator and why (for the bench to say loudly: the
 * node generator's figures are lower than wrk's and not comparable with them).
 */
export function chooseLoadGenerator(
  opts: LoadOptions,
  wrk = wrkPath(),
): { generator: LoadGenerator; fallback?: string } {
  const generator = wrkGenerator(wrk, opts);
  if (generator) return { generator };
  const node = nodeGenerator(opts);
  return {
    generator: node,
    fallback: `wrk NOT found at ${wrk} (apt-get install wrk, or set BENCH_WRK): the load generator is ${node.name}; its figures are lower than wrk's and not comparable with them`,
  };
}

function validated(opts: LoadOptions): Required<Omit<LoadOptions, 'body'>> & { body: string } {
  const method = opts.method ?? 'GET';
  if (!/^[A-Z]+$/.test(method)) throw new Error(`load generator: bad method '${method}'`);
  if (!opts.path.startsWith('/') || /\s/.test(opts.path))
    throw new Error(`load generator: path must start with / and hold no spaces, got '${opts.path}'`);
  const headers = opts.headers ?? {};
  for (const [name, value] of Object.entries(headers))
    if (!/^[A-Za-z0-9-]+$/.test(name) || /[\r\n]/.test(value))
      throw new Error(`load generator: bad header '${name}' (a token name, a value on one line)`);
  const expectedStatus = opts.expectedStatus ?? 200;
  if (!Number.isInteger(expectedStatus) || expectedStatus < 100 || expectedStatus > 599)
    throw new Error(`load generator: bad expected status ${expectedStatus}`);
  if (!Number.isInteger(opts.connections) || opts.connections < 1)
    throw new Error(`load generator: connections must be a positive integer, got ${opts.connections}`);
  return { ...opts, method, headers, expectedStatus, body: opts.body ?? '' };
}

const ENV = {
  method: 'CERTFLOW_BENCH_METHOD',
  headers: 'CERTFLOW_BENCH_HEADERS',
  body: 'CERTFLOW_BENCH_BODY',
  expected: 'CERTFLOW_BENCH_EXPECTED_STATUS',
};
const WRK_RESULT_MARKER = 'certflow-wrk-result ';

// setup() and done() run in wrk's main Lua state, response() in each thread's own: done() sums
// the threads' counts of unexpected answers. Percentiles come in microseconds.
const WRK_SCRIPT = `
local function need(name)
  local value = os.getenv(name)
  if value == nil then error(name .. " is not set") end
  return value
end
wrk.method = need("${ENV.method}")
local body = need("${ENV.body}")
if body ~= "" then wrk.body = body end
for line in need("${ENV.headers}"):gmatch("[^\\n]+") do
  local name, value = line:match("^([^:]+): (.*)$")
  if name == nil then error("${ENV.headers}: a line is not 'name: value'") end
  wrk.headers[name] = value
end
local expected = tonumber(need("${ENV.expected}"))

unexpected = 0
firstUnexpected = 0
function response(status, headers, body)
  if status ~= expected then
    unexpected = unexpected + 1
    if firstUnexpected == 0 then firstUnexpected = status end
  end
end

local threads = {}
function setup(thread) table.insert(threads, thread) end

function done(summary, latency, requests)
  local bad, first = 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("unexpected")
    if first == 0 then first = thread:get("firstUnexpected") end
  end
  local e = summary.errors
  io.write(string.format(
    '\\n${WRK_RESULT_MARKER}{"requests":%d,"durationUs":%d,"p50Us":%d,"p99Us":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"unexpected":%d,"firstUnexpected":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.timeout, bad, first))
end
`;

/** wrk when `wrk` exists (and runs), else undefined. */
export function wrkGenerator(wrk: string, options: LoadOptions): LoadGenerator | undefined {
  const opts = validated(options);
  if (!existsSync(wrk)) return undefined;
  const probe = spawnSync(wrk, ['-v'], { encoding: 'utf8' });
  const version = /wrk (?:debian\/)?(\S+)/.exec(`${probe.stdout}${probe.stderr}`)?.[1];
  if (!version) return undefined;
  const script = join(opts.workDir, 'certflow-bench.lua');
  writeFileSync(script, WRK_SCRIPT, { mode: 0o600 });
  const env = {
    ...process.env,
    [ENV.method]: opts.method,
    [ENV.headers]: Object.entries(opts.headers)
      .map(([name, value]) => `${name}: ${value}\n`)
      .join(''),
    [ENV.body]: opts.body,
    [ENV.expected]: String(opts.expectedStatus),
  };
  return {
    name: `wrk ${version} (1 thread, ${opts.connections} connections; does not verify TLS certificates)`,
    close: () => undefined,
    run: (url, seconds) =>
      new Promise<RoundResult>((resolve, reject) => {
        const target = new URL(opts.path, url).href;
        const args = ['-t1', `-c${opts.connections}`, `-d${seconds}s`, '--timeout', '5s', '-s', script];
        const child = spawn(wrk, [...args, target], { env, stdio: ['ignore', 'pipe', 'pipe'] });
        let output = '';
        child.stdout.on('data', (d) => (output += d));
        child.stderr.on('data', (d) => (output += d));
        child.once('error', reject);
        child.once('close', (code) => {
          const line = output.split('\n').find((l) => l.startsWith(WRK_RESULT_MARKER));
          if (code !== 0 || !line) return reject(new Error(`wrk ${target} exited with ${code}: ${output}`));
          const r = JSON.parse(line.slice(WRK_RESULT_MARKER.length)) as Record<string, number>;
          const errors = ['connect', 'read', 'write', 'timeout'].filter((k) => r[k]! > 0);
          const problems = errors.map((k) => `${r[k]} ${k} errors`);
          if (r['unexpected']! > 0)
            problems.push(
              `${r['unexpected']} answers not ${opts.expectedStatus} (the first: ${r['firstUnexpected']})`,
            );
          if (r['requests'] === 0) problems.push('no answers at all');
          if (problems.length)
            return reject(new Error(`wrk ${opts.method} ${target}: ${problems.join(', ')}`));
          resolve({
            requests: r['requests']!,
            seconds: r['durationUs']! / 1e6,
            p50Ms: r['p50Us']! / 1000,
            p99Ms: r['p99Us']! / 1000,
          });
        });
      }),
  };
}

/** The Node.js fallback (see the header comment for why its figures are lower than wrk's). */
export function nodeGenerator(options: LoadOptions): LoadGenerator {
  const opts = validated(options);
  const pools = new Map<string, KeepAliveConnection[]>();
  const body = Buffer.from(opts.body, 'utf8');
  const requestTo = (url: URL): Buffer => {
    const target = new URL(opts.path, url);
    const headers = Object.entries(opts.headers).map(([name, value]) => `${name}: ${value}\r\n`);
    if (body.length > 0 || opts.method !== 'GET') headers.push(`content-length: ${body.length}\r\n`);
    const head = `${opts.method} ${target.pathname}${target.search} HTTP/1.1\r\nhost: ${url.host}\r\n${headers.join('')}\r\n`;
    return Buffer.concat([Buffer.from(head, 'latin1'), body]);
  };
  // A bound on the requests of one round on top of its time, in case a server answers instantly.
  const maxRequestsPerRound = 10_000_000;
  return {
    name: `node ${process.version} in the bench process (${opts.connections} connections; verifies TLS certificates)`,
    close: () => {
      for (const pool of pools.values()) for (const c of pool) c.close();
    },
    run: async (url, seconds) => {
      let pool = pools.get(url.href);
      if (!pool) {
        pool = await Promise.all(
          Array.from({ length: opts.connections }, () => KeepAliveConnection.open(url, opts.caPem)),
        );
        pools.set(url.href, pool);
      }
      const request = requestTo(url);
      const latenciesMs: number[] = [];
      let unexpected = 0;
      let firstUnexpected = 0;
      const started = process.hrtime.bigint();
      const deadline = started + BigInt(Math.round(seconds * 1e9));
      const lane = async (connection: KeepAliveConnection): Promise<void> => {
        while (process.hrtime.bigint() < deadline && latenciesMs.length < maxRequestsPerRound) {
          const t0 = process.hrtime.bigint();
          const status = await connection.send(request);
          latenciesMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
          if (status !== opts.expectedStatus) {
            unexpected++;
            firstUnexpected ||= status;
          }
        }
      };
      await Promise.all(pool.map(lane));
      const target = `${opts.method} ${new URL(opts.path, url).href}`;
      if (unexpected > 0)
        throw new Error(
          `node ${target}: ${unexpected} answers not ${opts.expectedStatus} (the first: ${firstUnexpected})`,
        );
      if (latenciesMs.length === 0) throw new Error(`node ${target}: no answers at all`);
      const sorted = Float64Array.from(latenciesMs).sort();
      return {
        requests: latenciesMs.length,
        seconds: Number(process.hrtime.bigint() - started) / 1e9,
        p50Ms: percentile(sorted, 0.5),
        p99Ms: percentile(sorted, 0.99),
      };
    },
  };
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

/** One keep-alive HTTP/1.1 connection (TLS for https: URLs); responses must carry Content-Length. */
export class KeepAliveConnection {
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
      const servername = isIP(url.hostname) ? undefined : url.hostname;
      const socket: Socket =
        url.protocol === 'https:'
          ? tlsConnect({ host: url.hostname, port, ca: caPem, servername }, () =>
              resolvePromise(new KeepAliveConnection(socket)),
            )
          : netConnect(port, url.hostname, () => resolvePromise(new KeepAliveConnection(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends one whole request and resolves with the status of its answer. */
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
