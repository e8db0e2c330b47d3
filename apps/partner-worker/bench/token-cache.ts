/**
 * `npx nx run partner-worker:bench`: what a cache hit costs, in one run, for
 *
 * - certflow's TokenCache (`cache.getToken(key)`: a Map lookup and a clock read), and
 * - `acquireTokenByClientCredential` on a warm MSAL cache (a real msal-node 7
 *   ConfidentialClientApplication with the partner's certificate, against the Entra ID emulator
 *   started here as a child process),
 *
 * first with 1 cached token, then with 10,000 cached tokens (10,000 distinct scopes for the same
 * client). Every measured call is awaited and timed on its own with process.hrtime.bigint();
 * the two caches are measured in alternating rounds so that neither always runs on a warmer
 * process. Prints p50/p99 per call and the ratios (goal: certflow at least 40× faster at p50,
 * and flat as tokens grow), and writes load/results/bench-token-cache.json.
 *
 * How the caches get 10,000 tokens. The emulator only issues tokens for registered resources, and
 * registering 10,000 APIs would measure the emulator, not the caches. So:
 * - MSAL: one real token is acquired over the network for the measured scope; MSAL's own
 *   serialized cache entry for it is then copied 9,999 times with only the scope (`target`) and
 *   the entry key changed, and loaded back with MSAL's own `deserialize`. The copies are exactly
 *   what MSAL would have stored after 9,999 more acquisitions (same client, tenant, environment,
 *   lifetimes); the bench checks that MSAL counts 10,000 access tokens and answers one of the
 *   copied scopes from its cache. MSAL's lookup walks every access token entry, so what is
 *   inside them does not change its cost.
 * - certflow: the measured key's token is fetched through MSAL from the emulator; the other
 *   9,999 keys are filled through the same TokenCache.getToken with a fetcher that hands back
 *   that real token (the entries are the same shape; a Map lookup does not look at them).
 */
import { ConfidentialClientApplication, LogLevel } from '@azure/msal-node';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  CertificateTokenClient,
  HttpsNetworkClient,
  TokenCache,
  authorityFor,
  toThumbprintHex,
  type TokenKey,
} from '@certflow/partner-client';
import { IN_PROCESS_LOAD } from '@certflow/testing';
import { startBenchAuthority } from './emulator-process';

const IDENTIFIER_URI = 'api://certflow-orders-cache-bench';
const SIZES = [1, 10_000];
const ROUNDS = 5;
/** Timed calls per round: [certflow, MSAL] for each size (MSAL at 10,000 takes milliseconds a call). */
const PER_ROUND: Record<number, [number, number]> = { 1: [40_000, 4_000], 10_000: [40_000, 60] };
const GOAL_RATIO_P50 = 40;

interface Percentiles {
  samples: number;
  p50Us: number;
  p99Us: number;
  meanUs: number;
}

function percentiles(samplesNs: number[]): Percentiles {
  const sorted = Float64Array.from(samplesNs).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! / 1000;
  const sum = sorted.reduce((a, b) => a + b, 0);
  const round = (v: number) => Math.round(v * 1000) / 1000;
  return {
    samples: sorted.length,
    p50Us: round(at(0.5)),
    p99Us: round(at(0.99)),
    meanUs: round(sum / sorted.length / 1000),
  };
}

/** Times each call on its own; `check` looks at each result outside the timed window. */
async function time<T>(
  calls: number,
  once: () => Promise<T>,
  check: (result: T) => void,
  into: number[],
): Promise<void> {
  for (let i = 0; i < calls; i++) {
    const start = process.hrtime.bigint();
    const result = await once();
    const end = process.hrtime.bigint();
    check(result);
    into.push(Number(end - start));
  }
}

/** MSAL's serialized cache (the parts used here). */
interface SerializedCache {
  AccessToken: Record<string, { target: string } & Record<string, unknown>>;
  [section: string]: unknown;
}

async function main(): Promise<void> {
  const stateDir = mkdtempSync(join(tmpdir(), 'certflow-token-cache-bench-'));
  // Compiled to apps/partner-worker/dist-bench/bench/: the workspace is four levels up.
  const workspace = resolve(__dirname, '..', '..', '..', '..');
  const emulatorMain = join(workspace, 'tools', 'entra-emulator', 'dist', 'main.js');
  const resultsDir = join(workspace, 'load', 'results');
  const authority = await startBenchAuthority(emulatorMain, stateDir, IDENTIFIER_URI);
  const network = new HttpsNetworkClient({ ca: authority.caPem });
  try {
    const authorityUrl = authorityFor(authority.instance, authority.tenantId);
    // MSAL configured as certflow configures it (certificate-token-client.ts), used directly.
    const msal = new ConfidentialClientApplication({
      auth: {
        clientId: authority.clientId,
        authority: authorityUrl,
        knownAuthorities: [new URL(authority.instance).host],
        authorityMetadata: JSON.stringify({
          token_endpoint: `${authorityUrl}/oauth2/v2.0/token`,
          authorization_endpoint: `${authorityUrl}/oauth2/v2.0/authorize`,
          issuer: `${authorityUrl}/v2.0`,
          jwks_uri: `${authorityUrl}/discovery/v2.0/keys`,
        }),
        clientCertificate: {
          thumbprintSha256: toThumbprintHex(authority.credential.certificate.thumbprints.sha256Hex),
          privateKey: authority.credential.privateKeyPem,
        },
      },
      system: {
        networkClient: network,
        loggerOptions: { logLevel: LogLevel.Error, piiLoggingEnabled: false, loggerCallback: () => {} },
      },
    });
    const msalRequest = { scopes: [authority.scope] };
    const msalHit = () => msal.acquireTokenByClientCredential(msalRequest);
    const msalCheck = (result: Awaited<ReturnType<typeof msalHit>>) => {
      if (!result?.fromCache || !result.accessToken) throw new Error('MSAL did not answer from its cache');
    };
    const first = await msal.acquireTokenByClientCredential({ scopes: [authority.scope] });
    if (!first?.accessToken || first.fromCache)
      throw new Error('the first MSAL call should have reached the emulator');

    // certflow's cache, fetching through MSAL (skipCache, as the worker does) from the same emulator.
    const client = new CertificateTokenClient({
      entraInstance: authority.instance,
      tenantId: authority.tenantId,
      clientId: authority.clientId,
      scope: authority.scope,
      credential: authority.credential,
      networkClient: network,
    });
    let realToken: Awaited<ReturnType<CertificateTokenClient['fetchToken']>> | undefined;
    const cache = new TokenCache({
      proactive: false,
      fetcher: async (ctx) => {
        if (ctx.key.scope === authority.scope)
          return (realToken = await client.fetchToken({ skipCache: true }));
        if (!realToken) throw new Error('the measured token comes first');
        return realToken;
      },
    });
    const key: TokenKey = { authority: authorityUrl, clientId: authority.clientId, scope: authority.scope };
    const certflowHit = () => cache.getToken(key);
    const certflowCheck = (token: Awaited<ReturnType<typeof certflowHit>>) => {
      if (token.source !== 'cache' || !token.accessToken)
        throw new Error('certflow did not answer from its cache');
    };
    await cache.getToken(key);
    if (network.requestCounts.post !== 2)
      throw new Error(`expected 2 token requests, saw ${network.requestCounts.post}`);

    const results: Record<string, unknown>[] = [];
    for (const size of SIZES) {
      if (size > 1) await fill(size, msal, cache, key, authority.scope, first.expiresOn);
      // Warm-up: JIT both paths.
      const scratch: number[] = [];
      await time(20_000, certflowHit, certflowCheck, scratch);
      await time(size > 1 ? 10 : 2_000, msalHit, msalCheck, scratch);
      const certflowNs: number[] = [];
      const msalNs: number[] = [];
      const [certflowCalls, msalCalls] = PER_ROUND[size]!;
      for (let round = 0; round < ROUNDS; round++) {
        if (round % 2 === 0) {
          await time(certflowCalls, certflowHit, certflowCheck, certflowNs);
          await time(msalCalls, msalHit, msalCheck, msalNs);
        } else {
          await time(msalCalls, msalHit, msalCheck, msalNs);
          await time(certflowCalls, certflowHit, certflowCheck, certflowNs);
        }
      }
      const certflow = percentiles(certflowNs);
      const msalStats = percentiles(msalNs);
      const line = {
        event: 'size',
        cachedTokens: size,
        certflow,
        msal: msalStats,
        ratioP50: Math.round((msalStats.p50Us / certflow.p50Us) * 10) / 10,
        ratioP99: Math.round((msalStats.p99Us / certflow.p99Us) * 10) / 10,
      };
      results.push(line);
      console.log(JSON.stringify(line));
    }
    if (network.requestCounts.post !== 2)
      throw new Error(`a timed call reached the emulator (${network.requestCounts.post} token requests)`);

    const [one, many] = results as { certflow: Percentiles; msal: Percentiles; ratioP50: number }[];
    const summary = {
      event: 'result',
      bench: 'token-cache',
      date: new Date().toISOString(),
      node: process.version,
      cpu: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}`,
      msalNode: '7.2.3',
      loadGenerator: IN_PROCESS_LOAD,
      goal: { ratioP50AtLeast: GOAL_RATIO_P50, flat: 'certflow p50 at 10,000 tokens about the same as at 1' },
      sizes: results,
      certflowP50Growth: Math.round((many!.certflow.p50Us / one!.certflow.p50Us) * 100) / 100,
      msalP50Growth: Math.round((many!.msal.p50Us / one!.msal.p50Us) * 10) / 10,
      goalMet: one!.ratioP50 >= GOAL_RATIO_P50 && many!.ratioP50 >= GOAL_RATIO_P50,
    };
    mkdirSync(resultsDir, { recursive: true });
    writeFileSync(join(resultsDir, 'bench-token-cache.json'), `${JSON.stringify(summary, null, 2)}\n`);
    console.log(JSON.stringify(summary));
    console.log(`load generator: ${IN_PROCESS_LOAD}`);
    for (const r of results as {
      cachedTokens: number;
      certflow: Percentiles;
      msal: Percentiles;
      ratioP50: number;
      ratioP99: number;
    }[])
      console.log(
        `${r.cachedTokens.toLocaleString('en')} cached token(s): certflow p50 ${r.certflow.p50Us} µs, p99 ${r.certflow.p99Us} µs; ` +
          `MSAL p50 ${r.msal.p50Us} µs, p99 ${r.msal.p99Us} µs; certflow ${r.ratioP50}× faster at p50, ${r.ratioP99}× at p99`,
      );
    console.log(
      `certflow p50 grew ${summary.certflowP50Growth}× from 1 to 10,000 tokens, MSAL's ${summary.msalP50Growth}×; goal (≥ ${GOAL_RATIO_P50}× at p50) ${summary.goalMet ? 'met' : 'NOT met'}; wrote ${join(resultsDir, 'bench-token-cache.json')}`,
    );
    cache.close();
  } finally {
    network.close();
    await authority.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

/** Brings both caches to `size` tokens (see the header comment for how, and why it is fair). */
async function fill(
  size: number,
  msal: ConfidentialClientApplication,
  cache: TokenCache,
  key: TokenKey,
  scope: string,
  expiresOn: Date | null,
): Promise<void> {
  const tokenCache = msal.getTokenCache();
  const serialized = JSON.parse(tokenCache.serialize()) as SerializedCache;
  const entries = Object.entries(serialized.AccessToken);
  if (entries.length !== 1)
    throw new Error(`expected MSAL to hold 1 access token, it holds ${entries.length}`);
  const [entryKey, entry] = entries[0]!;
  const target = entry.target;
  if (!entryKey.includes(target.toLowerCase()))
    throw new Error(`MSAL's cache key ${entryKey} does not contain the scope ${target}`);
  for (let i = 1; i < size; i++) {
    const otherTarget = target.replace(IDENTIFIER_URI, `${IDENTIFIER_URI}-${i}`);
    serialized.AccessToken[entryKey.replace(target.toLowerCase(), otherTarget.toLowerCase())] = {
      ...entry,
      target: otherTarget,
    };
  }
  tokenCache.deserialize(JSON.stringify(serialized));
  const held = Object.keys((JSON.parse(tokenCache.serialize()) as SerializedCache).AccessToken).length;
  if (held !== size) throw new Error(`MSAL holds ${held} access tokens after loading ${size}`);
  const copied = await msal.acquireTokenByClientCredential({
    scopes: [scope.replace(IDENTIFIER_URI, `${IDENTIFIER_URI}-${size - 1}`)],
  });
  if (!copied?.fromCache) throw new Error('MSAL did not answer a copied scope from its cache');
  if (expiresOn && copied.expiresOn?.getTime() !== expiresOn.getTime())
    throw new Error('the copied entry has another expiry');

  for (let i = 1; i < size; i++)
    await cache.getToken({ ...key, scope: scope.replace(IDENTIFIER_URI, `${IDENTIFIER_URI}-${i}`) });
  if (cache.size !== size) throw new Error(`certflow holds ${cache.size} tokens, expected ${size}`);
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error)?.stack ?? String(err)}`);
  process.exitCode = 1;
});
