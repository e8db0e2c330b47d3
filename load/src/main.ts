/**
 * certflow load suites. `--profile smoke` (seconds, part of npm test) or `--profile full`
 * (npm run load). Starts the whole stack in a temporary state directory, gets the partner's
 * token once (as a cached client would), then drives authenticated requests through the
 * gateway, and the same requests straight at the API as the baseline.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { launchStackProcess, requestPartnerToken } from '@certflow/stack';
import { runLoad, type LoadResult } from './http-load';
import { brokenThresholds, type Thresholds } from './thresholds';
import { k6Available, reportK6Missing, runK6 } from './k6';

const PROFILES = {
  smoke: { durationMs: 4_000, connections: 8, maxRequests: 200_000, thresholds: { maxFailureRate: 0, maxP99Ms: 1_000, expectedStatus: 200 } },
  full: { durationMs: 30_000, connections: 32, maxRequests: 5_000_000, thresholds: { maxFailureRate: 0, maxP99Ms: 500, expectedStatus: 200 } },
} satisfies Record<string, { durationMs: number; connections: number; maxRequests: number; thresholds: Thresholds }>;

type Profile = keyof typeof PROFILES;

function describe(name: string, r: LoadResult): string {
  return (
    `${name.padEnd(22)} ${String(r.requestsPerSecond).padStart(7)} req/s  ` +
    `p50 ${r.latencyMs.p50.toFixed(2)} ms  p99 ${r.latencyMs.p99.toFixed(2)} ms  ` +
    `${r.requests} requests, statuses ${JSON.stringify(r.statuses)}` +
    (Object.keys(r.errors).length ? `, errors ${JSON.stringify(r.errors)}` : '')
  );
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { profile: { type: 'string', default: 'smoke' } }, strict: true });
  if (!(values.profile! in PROFILES)) {
    console.error(`--profile must be one of ${Object.keys(PROFILES).join(', ')}, got '${values.profile}'`);
    return 2;
  }
  const profileName = values.profile as Profile;
  const profile = PROFILES[profileName];
  const resultsDir = resolve(__dirname, '..', 'results');
  mkdirSync(resultsDir, { recursive: true });

  const stateDir = mkdtempSync(join(tmpdir(), 'certflow-load-'));
  const stack = await launchStackProcess(stateDir);
  try {
    const file = stack.file;
    const token = await requestPartnerToken(file);
    const headers = { authorization: `Bearer ${token}` };
    const ca = readFileSync(file.caCertificatePath);
    const common = { headers, ca, connections: profile.connections, durationMs: profile.durationMs, maxRequests: profile.maxRequests };

    console.log(`gateway-throughput (${profileName}): ${profile.connections} connections, ${profile.durationMs / 1000} s each`);
    const direct = await runLoad({ ...common, url: `${file.api.url}/orders` });
    console.log(describe('API direct (baseline)', direct));
    const gateway = await runLoad({ ...common, url: `${file.gateway.url}/orders` });
    console.log(describe('through the gateway', gateway));
    const ratio = gateway.requestsPerSecond / Math.max(1, direct.requestsPerSecond);
    console.log(`gateway / direct throughput ratio: ${ratio.toFixed(2)}`);

    const broken = [
      ...brokenThresholds(direct, profile.thresholds).map((b) => `API direct: ${b}`),
      ...brokenThresholds(gateway, profile.thresholds).map((b) => `gateway: ${b}`),
    ];
    const summary = { suite: 'gateway-throughput', profile: profileName, at: new Date().toISOString(), thresholds: profile.thresholds, direct, gateway, ratio, broken };
    writeFileSync(join(resultsDir, `gateway-throughput.${profileName}.json`), JSON.stringify(summary, null, 2) + '\n');

    if (k6Available()) {
      const ok = runK6('gateway-throughput.js', {
        GATEWAY_URL: file.gateway.url,
        ACCESS_TOKEN: token,
        PROFILE: profileName,
        SSL_CERT_FILE: file.caCertificatePath,
      }, join(resultsDir, `k6-gateway-throughput.${profileName}.json`));
      if (!ok) broken.push('k6 gateway-throughput: thresholds failed');
    } else {
      reportK6Missing('gateway-throughput.js');
    }

    if (broken.length) {
      console.error(`\nFAILED thresholds:\n  ${broken.join('\n  ')}`);
      return 1;
    }
    console.log('all thresholds hold');
    return 0;
  } finally {
    await stack.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
