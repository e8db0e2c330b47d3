/**
 * `npm run bench` (nx run entra-emulator:bench): token-endpoint throughput and latency for
 * certificate clients (PS256 client assertion) and secret clients, side by side.
 *
 * Starts an emulator in a temporary state directory on 127.0.0.1, registers an API and a
 * partner (certificate and secret), then for each credential type sends token requests over
 * keep-alive HTTPS connections from a fixed number of concurrent workers, bounded by a request
 * count and a time limit. Like MSAL, a certificate client reuses one assertion (its `jti` is
 * not single-use unless strict mode is on), so the figures measure the emulator's verification,
 * not the client's signing.
 *
 *   node tools/entra-emulator/dist-bench/bench/token-endpoint.js [--requests N] [--concurrency C] [--seconds S]
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createSelfSignedCertificate, pemToDer } from '@certflow/certs';
// The emulator as it ships (its dist, with the portal files next to it: the bench target builds
// it first), not a second copy of its sources compiled into dist-bench.
import {
  ASSERTION_TYPE,
  certificateClientAssertion,
  GraphClient,
  provisionApiAndPartner,
  startEmulator,
  type RunningEmulator,
} from '@certflow/entra-emulator';

interface BenchOptions {
  requests: number;
  concurrency: number;
  seconds: number;
}

interface Result {
  name: string;
  requests: number;
  errors: number;
  seconds: number;
  latenciesMs: number[];
}

function parseArgs(argv: string[]): BenchOptions {
  const options: BenchOptions = { requests: 2000, concurrency: 8, seconds: 15 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split('=', 2) as [string, string | undefined];
    const value = Number(inline ?? argv[++i]);
    const key = (
      { '--requests': 'requests', '--concurrency': 'concurrency', '--seconds': 'seconds' } as const
    )[flag as '--requests'];
    if (!key || !Number.isInteger(value) || value < 1)
      throw new Error(`usage: token-endpoint [--requests N] [--concurrency C] [--seconds S] (bad ${flag})`);
    options[key] = value;
  }
  return options;
}

function post(agent: Agent, url: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function run(
  name: string,
  agent: Agent,
  url: string,
  body: string,
  options: BenchOptions,
): Promise<Result> {
  // Warm-up: connections open, caches filled.
  await Promise.all(Array.from({ length: options.concurrency }, () => post(agent, url, body)));
  const latenciesMs: number[] = [];
  let errors = 0;
  let sent = 0;
  const deadline = process.hrtime.bigint() + BigInt(options.seconds) * 1_000_000_000n;
  const started = process.hrtime.bigint();
  const worker = async () => {
    while (sent < options.requests && process.hrtime.bigint() < deadline) {
      sent++;
      const t0 = process.hrtime.bigint();
      try {
        if ((await post(agent, url, body)) !== 200) errors++;
      } catch {
        errors++;
      }
      latenciesMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return {
    name,
    requests: latenciesMs.length,
    errors,
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
    latenciesMs,
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function table(results: Result[], options: BenchOptions): string {
  const rows = results.map((r) => {
    const sorted = [...r.latenciesMs].sort((a, b) => a - b);
    return [
      r.name,
      String(r.requests),
      String(r.errors),
      (r.requests / r.seconds).toFixed(0),
      percentile(sorted, 50).toFixed(2),
      percentile(sorted, 99).toFixed(2),
    ];
  });
  const header = ['client', 'requests', 'errors', 'req/s', 'p50 ms', 'p99 ms'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [
    `token endpoint, ${options.concurrency} concurrent keep-alive connections, up to ${options.requests} requests or ${options.seconds} s per client type (Node ${process.version})`,
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
  ].join('\n');
}

/** load/results/bench-token-endpoint.json, read by npm run load:publish. */
function writeSummary(results: Result[], options: BenchOptions): string {
  const clients = results.map((r) => {
    const sorted = [...r.latenciesMs].sort((a, b) => a - b);
    const round2 = (n: number) => Number(n.toFixed(2));
    return {
      name: r.name,
      requests: r.requests,
      errors: r.errors,
      reqPerSec: Math.round(r.requests / r.seconds),
      p50Ms: round2(percentile(sorted, 50)),
      p99Ms: round2(percentile(sorted, 99)),
    };
  });
  const summary = {
    bench: 'token-endpoint',
    measuredAt: new Date().toISOString(),
    node: process.version,
    concurrency: options.concurrency,
    clients,
    certificateVsSecret: Number((clients[0]!.reqPerSec / Math.max(1, clients[1]!.reqPerSec)).toFixed(3)),
  };
  const dir = resolve(__dirname, '../../../../load/results');
  mkdirSync(dir, { recursive: true });
  const out = join(dir, 'bench-token-endpoint.json');
  writeFileSync(out, `${JSON.stringify(summary, null, 2)}\n`);
  return out;
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const stateDir = mkdtempSync(join(tmpdir(), 'entra-emulator-bench-'));
  let emulator: RunningEmulator | undefined;
  let graph: GraphClient | undefined;
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency });
  try {
    emulator = await startEmulator({ stateDir, host: '127.0.0.1', port: 0 });
    graph = await GraphClient.connect(emulator);
    const provisioned = await provisionApiAndPartner(graph, {
      apiDisplayName: 'bench API',
      apiIdentifierUri: 'api://certflow-bench',
      roles: ['Orders.Read'],
      partnerDisplayName: 'bench partner',
      grantRoles: ['Orders.Read'],
    });
    const cert = createSelfSignedCertificate({ commonName: 'bench partner' });
    await graph.addCertificate(provisioned.partner.objectId, pemToDer(cert.certificatePem));
    const secret = (await graph.addPassword(provisioned.partner.objectId, 'bench')).secretText!;
    agent.options.ca = readFileSync(emulator.caCertificatePath);

    const clientId = provisioned.partner.appId;
    const assertion = await certificateClientAssertion(emulator.tokenEndpoint, clientId, cert);
    const scope = 'api://certflow-bench/.default';
    const certificateBody = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: clientId,
      scope,
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: assertion,
    }).toString();
    const secretBody = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: clientId,
      scope,
      client_secret: secret,
    }).toString();

    const results = [
      await run('certificate (PS256)', agent, emulator.tokenEndpoint, certificateBody, options),
      await run('secret', agent, emulator.tokenEndpoint, secretBody, options),
    ];
    console.log(table(results, options));
    console.log(`wrote ${writeSummary(results, options)}`);
    if (results.some((r) => r.errors > 0)) process.exitCode = 1;
  } finally {
    agent.destroy();
    graph?.close();
    await emulator?.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench: ${(err as Error)?.stack ?? String(err)}`);
  process.exitCode = 1;
});
