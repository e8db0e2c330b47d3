/**
 * The load generators of the gateway benchmarks, both driving keep-alive connections with one
 * request in flight each for a fixed time, and both reporting {requests, seconds, p50, p99}:
 *
 * - wrk (Debian's /usr/bin/wrk; 1 thread): a C load generator, so the measured servers, not the
 *   generator, are the limit. A Lua script sets the Authorization header (read from the
 *   environment, never from the command line) and prints the counts and latency percentiles
 *   from wrk's `done()` callback as one JSON line.
 * - node: the fallback when wrk is missing. It shares the machine's cores with what it measures
 *   and costs more per request than wrk, so its figures are lower; it is kept cheap (one prebuilt
 *   request per connection, responses read by their Content-Length).
 *
 * Any answer but 200 or any socket error fails the round: a rejected request is not a fast one.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';

export interface RoundResult {
  requests: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
}

export interface LoadGenerator {
  /** e.g. `wrk 4.1.0 (1 thread, 32 connections)` */
  readonly name: string;
  run(url: URL, seconds: number): Promise<RoundResult>;
  close(): void;
}

export interface LoadOptions {
  /** Sent as `Authorization: Bearer …` with every request. */
  token: string;
  path: string;
  connections: number;
  /** Trusted for the https: chains (the node generator verifies the certificate; wrk does not). */
  caPem: string;
  /** A private directory for wrk's Lua script. */
  workDir: string;
}

const WRK_TOKEN_VARIABLE = 'CERTFLOW_BENCH_TOKEN';
const WRK_RESULT_MARKER = 'certflow-wrk-result ';

// Percentiles come in microseconds; errors.status counts answers with a status above 399.
const WRK_SCRIPT = `
local token = os.getenv("${WRK_TOKEN_VARIABLE}")
if not token or token == "" then error("${WRK_TOKEN_VARIABLE} is not set") end
wrk.headers["Authorization"] = "Bearer " .. token

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\n${WRK_RESULT_MARKER}{"requests":%d,"durationUs":%d,"p50Us":%d,"p99Us":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.timeout, e.status))
end
`;

/** wrk when `wrkPath` exists (and runs), else undefined. */
export function wrkGenerator(wrkPath: string, opts: LoadOptions): LoadGenerator | undefined {
  if (!existsSync(wrkPath)) return undefined;
  const probe = spawnSync(wrkPath, ['-v'], { encoding: 'utf8' });
  const version = /wrk (?:debian\/)?(\S+)/.exec(`${probe.stdout}${probe.stderr}`)?.[1];
  if (!version) return undefined;
  const script = join(opts.workDir, 'bench.lua');
  writeFileSync(script, WRK_SCRIPT, { mode: 0o600 });
  return {
    name: `wrk ${version} (1 thread, ${opts.connections} connections)`,
    close: () => undefined,
    run: (url, seconds) =>
      new Promise<RoundResult>((resolve, reject) => {
        const args = ['-t1', `-c${opts.connections}`, `-d${seconds}s`, '--timeout', '5s', '-s', script];
        const child = spawn(wrkPath, [...args, new URL(opts.path, url).href], {
          env: { ...process.env, [WRK_TOKEN_VARIABLE]: opts.token },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let output = '';
        child.stdout.on('data', (d) => (output += d));
        child.stderr.on('data', (d) => (output += d));
        child.once('error', reject);
        child.once('close', (code) => {
          const line = output.split('\n').find((l) => l.startsWith(WRK_RESULT_MARKER));
          if (code !== 0 || !line) return reject(new Error(`wrk ${url.href} exited with ${code}: ${output}`));
          const r = JSON.parse(line.slice(WRK_RESULT_MARKER.length)) as Record<string, number>;
          const errors = ['connect', 'read', 'write', 'timeout', 'status'].filter((k) => r[k]! > 0);
          if (errors.length)
            return reject(
              new Error(`wrk ${url.href}: ${errors.map((k) => `${r[k]} ${k} errors`).join(', ')}`),
            );
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
export function nodeGenerator(opts: LoadOptions): LoadGenerator {
  const pools = new Map<string, KeepAliveConnection[]>();
  const requestTo = (url: URL): Buffer =>
    Buffer.from(
      `GET ${opts.path} HTTP/1.1\r\nhost: ${url.host}\r\nauthorization: Bearer ${opts.token}\r\n\r\n`,
      'latin1',
    );
  // A bound on the requests of one round on top of its time, in case a server answers instantly.
  const maxRequestsPerRound = 10_000_000;
  return {
    name: `node ${process.version} in the bench process (${opts.connections} connections)`,
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
      const started = process.hrtime.bigint();
      const deadline = started + BigInt(Math.round(seconds * 1e9));
      const lane = async (connection: KeepAliveConnection): Promise<void> => {
        while (process.hrtime.bigint() < deadline && latenciesMs.length < maxRequestsPerRound) {
          const t0 = process.hrtime.bigint();
          const status = await connection.send(request);
          latenciesMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
          if (status !== 200) throw new Error(`${url.href}${opts.path} answered ${status}`);
        }
      };
      await Promise.all(pool.map(lane));
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
  if (sorted.length === 0) return NaN;
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
