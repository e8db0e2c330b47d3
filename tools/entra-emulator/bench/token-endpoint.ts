/**
 * `npm run bench` (nx run entra-emulator:bench): token-endpoint throughput and latency for
 * certificate clients (PS256 client assertion) and secret clients, side by side.
 *
 * Starts an emulator in a temporary state directory on 127.0.0.1, registers an API and a
 * partner (certificate and secret), then for each credential type sends token requests over
 * keep-alive HTTPS connections for a fixed time, in rounds that alternate the two. The load
 * generator is wrk (/usr/bin/wrk or BENCH_WRK) when installed, else the Node.js generator in
 * this process, said loudly (@certflow/testing's load-generators.ts); the secret and the
 * assertion reach wrk through its environment, never its command line. Any answer but 200
 * fails the run. Like MSAL, a certificate client reuses one assertion (its `jti` is not
 * single-use unless strict mode is on), so the figures measure the emulator's verification,
 * not the client's signing.
 *
 *   node tools/entra-emulator/dist-bench/bench/token-endpoint.js [--concurrency C] [--seconds S] [--rounds R]
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createSelfSignedCertificate, pemToDer } from '@certflow/certs';
import { chooseLoadGenerator, type LoadGenerator, type RoundResult } from '@certflow/testing';
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
  concurrency: number;
  seconds: number;
  rounds: number;
}

interface Client {
  name: string;
  generator: LoadGenerator;
  rounds: RoundResult[];
}

const WARM_UP_SECONDS = 2;
const FLAGS = { '--concurrency': 'concurrency', '--seconds': 'seconds', '--rounds': 'rounds' } as const;

function parseArgs(argv: string[]): BenchOptions {
  const options: BenchOptions = { concurrency: 8, seconds: 5, rounds: 3 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split('=', 2) as [string, string | undefined];
    const value = Number(inline ?? argv[++i]);
    const key = FLAGS[flag as keyof typeof FLAGS];
    if (!key || !Number.isInteger(value) || value < 1)
      throw new Error(`usage: token-endpoint [--concurrency C] [--seconds S] [--rounds R] (bad ${flag})`);
    options[key] = value;
  }
  return options;
}

const round2 = (n: number): number => Number(n.toFixed(2));

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** req/s over all rounds; p50 and p99 are the medians of the rounds' own percentiles. */
function summarise(client: Client) {
  const requests = client.rounds.reduce((n, r) => n + r.requests, 0);
  return {
    name: client.name,
    requests,
    // Kept for load/src/publish.ts: a round with any non-200 answer fails the run instead.
    errors: 0,
    reqPerSec: Math.round(requests / client.rounds.reduce((s, r) => s + r.seconds, 0)),
    p50Ms: round2(median(client.rounds.map((r) => r.p50Ms))),
    p99Ms: round2(median(client.rounds.map((r) => r.p99Ms))),
  };
}

function table(clients: ReturnType<typeof summarise>[]): string {
  const rows = clients.map((c) => [
    c.name,
    String(c.requests),
    String(c.reqPerSec),
    c.p50Ms.toFixed(2),
    c.p99Ms.toFixed(2),
  ]);
  const header = ['client', 'requests', 'req/s', 'p50 ms', 'p99 ms'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** load/results/bench-token-endpoint.json, read by npm run load:publish. */
function writeSummary(
  clients: ReturnType<typeof summarise>[],
  loadGenerator: string,
  options: BenchOptions,
): string {
  const summary = {
    bench: 'token-endpoint',
    measuredAt: new Date().toISOString(),
    node: process.version,
    loadGenerator,
    concurrency: options.concurrency,
    rounds: options.rounds,
    secondsPerRound: options.seconds,
    clients,
    certificateVsSecret: Number((clients[0]!.reqPerSec / Math.max(1, clients[1]!.reqPerSec)).toFixed(3)),
  };
  const dir = resolve(__dirname, '../../../../load/results');
  mkdirSync(dir, { recursive: true });
  const out = join(dir, 'bench-token-endpoint.json');
  writeFileSync(out, `${JSON.stringify(summary, null, 2)}\n`);
  return out;
}

function loudly(message: string): void {
  const banner = '!'.repeat(100);
  console.log(`${banner}\n!!! ${message}\n${banner}`);
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const stateDir = mkdtempSync(join(tmpdir(), 'entra-emulator-bench-'));
  let emulator: RunningEmulator | undefined;
  let graph: GraphClient | undefined;
  const clients: Client[] = [];
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

    const clientId = provisioned.partner.appId;
    const assertion = await certificateClientAssertion(emulator.tokenEndpoint, clientId, cert);
    const form = (credential: Record<string, string>) =>
      new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: clientId,
        scope: 'api://certflow-bench/.default',
        ...credential,
      }).toString();
    const endpoint = new URL(emulator.tokenEndpoint);
    const load = (body: string) => ({
      method: 'POST',
      path: endpoint.pathname,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
      connections: options.concurrency,
      caPem: readFileSync(emulator!.caCertificatePath, 'utf8'),
      workDir: stateDir,
    });
    const credentials: Array<[string, Record<string, string>]> = [
      ['certificate (PS256)', { client_assertion_type: ASSERTION_TYPE, client_assertion: assertion }],
      ['secret', { client_secret: secret }],
    ];
    for (const [name, credential] of credentials) {
      const chosen = chooseLoadGenerator(load(form(credential)));
      if (chosen.fallback && clients.length === 0) loudly(chosen.fallback);
      clients.push({ name, generator: chosen.generator, rounds: [] });
    }
    const loadGenerator = clients[0]!.generator.name;
    console.log(
      `token endpoint: load generator ${loadGenerator}; ${options.rounds} rounds of ${options.seconds} s per client type after a ${WARM_UP_SECONDS} s warm-up (emulator on Node ${process.version})`,
    );

    for (const client of clients) await client.generator.run(endpoint, WARM_UP_SECONDS);
    for (let round = 1; round <= options.rounds; round++) {
      // Alternate the order, so neither client type always runs first.
      const order = round % 2 === 1 ? clients : [...clients].reverse();
      const line: Record<string, number> = {};
      for (const client of order) {
        const r = await client.generator.run(endpoint, options.seconds);
        client.rounds.push(r);
        line[client.name] = Math.round(r.requests / r.seconds);
      }
      console.log(JSON.stringify({ event: 'round', round, ...line }));
    }

    const summaries = clients.map(summarise);
    console.log(`load generator: ${loadGenerator}`);
    console.log(table(summaries));
    console.log(`wrote ${writeSummary(summaries, loadGenerator, options)}`);
  } finally {
    for (const client of clients) client.generator.close();
    graph?.close();
    await emulator?.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench: ${(err as Error)?.stack ?? String(err)}`);
  process.exitCode = 1;
});
