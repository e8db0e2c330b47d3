/**
 * The load suites. Each gets the running stack and the partner's token, runs bounded load,
 * and returns its measurements and the thresholds they break.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { GraphClient, NO_FAULTS, readEmulatorInfo } from '@certflow/entra-emulator';
import { parseCertificate } from '@certflow/certs';
import {
  appEntryPoint,
  partnerCertificate,
  PARTNER_KEY_ID_FILE,
  partnerTokenResponse,
  requestPartnerToken,
  runJsonCommand,
  servedApi,
  stackPartner,
  tokenRequestForm,
  type StackFile,
} from '@certflow/stack';
import { runLoad, type LoadResult } from './http-load';
import { brokenThresholds } from './thresholds';
import type { Profile } from './profiles';
import { k6Available, runK6 } from './k6';
import {
  counterSum,
  partnerWorkerEnvironment,
  startPartnerFacade,
  tokensIssuedToPartner,
} from './partner-facade';
import { startRedisServer } from '@certflow/testing';

export interface SuiteContext {
  file: StackFile;
  token: string;
  ca: Buffer;
  profile: Profile;
  resultsDir: string;
  /** k6 scripts that could not run because k6 is not installed. */
  k6NotRun: string[];
}

export interface Measurement {
  name: string;
  result: LoadResult;
}

export interface SuiteResult {
  suite: string;
  description: string;
  measurements: Measurement[];
  /** Derived figures: ratios against a baseline, token request counts. */
  figures: Record<string, number>;
  broken: string[];
}

function common(ctx: SuiteContext) {
  const { connections, durationMs, maxRequests } = ctx.profile;
  return { ca: ctx.ca, connections, durationMs, maxRequests };
}

/** Runs the suite's k6 script too when k6 is installed; says loudly when it is not. */
function withK6(ctx: SuiteContext, script: string, env: Record<string, string>, broken: string[]): void {
  if (!k6Available()) {
    ctx.k6NotRun.push(script);
    return;
  }
  const summary = `${ctx.resultsDir}/k6-${script.replace(/\.js$/, '')}.${ctx.profile.name}.json`;
  const ok = runK6(
    script,
    { ...env, PROFILE: ctx.profile.name, SSL_CERT_FILE: ctx.file.caCertificatePath },
    summary,
  );
  if (!ok) broken.push(`k6 ${script}: thresholds failed`);
}

function check(ctx: SuiteContext, measurements: Measurement[]): string[] {
  return measurements.flatMap(({ name, result }) =>
    brokenThresholds(result, ctx.profile.thresholds).map((b) => `${name}: ${b}`),
  );
}

/** Client-assertion token requests against the emulator's token endpoint (one assertion, reused as MSAL does). */
async function tokenEndpoint(ctx: SuiteContext): Promise<SuiteResult> {
  const partner = stackPartner(ctx.file);
  const form = new URLSearchParams(
    await tokenRequestForm(ctx.file, partner.appId, partnerCertificate(partner)),
  ).toString();
  const measurements = [
    {
      name: 'token endpoint (certificate)',
      result: await runLoad({
        ...common(ctx),
        url: ctx.file.emulator.tokenEndpoint,
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form,
      }),
    },
  ];
  const broken = check(ctx, measurements);
  withK6(
    ctx,
    'token-endpoint.js',
    { TOKEN_ENDPOINT: ctx.file.emulator.tokenEndpoint, TOKEN_FORM: form },
    broken,
  );
  return {
    suite: 'token-endpoint',
    description: 'client_credentials with a certificate client assertion, straight at the emulator',
    measurements,
    figures: {},
    broken,
  };
}

/** Authenticated requests through the gateway, and the same straight at the API as the baseline. */
async function gatewayThroughput(ctx: SuiteContext): Promise<SuiteResult> {
  const headers = { authorization: `Bearer ${ctx.token}` };
  const direct = await runLoad({ ...common(ctx), headers, url: `${servedApi(ctx.file).url}/orders` });
  const gateway = await runLoad({ ...common(ctx), headers, url: `${ctx.file.gateway.url}/orders` });
  const measurements = [
    { name: 'API direct (baseline)', result: direct },
    { name: 'through the gateway', result: gateway },
  ];
  const broken = check(ctx, measurements);
  withK6(
    ctx,
    'gateway-throughput.js',
    { GATEWAY_URL: ctx.file.gateway.url, ACCESS_TOKEN: ctx.token },
    broken,
  );
  return {
    suite: 'gateway-throughput',
    description: 'GET /orders with a bearer token through the gateway (validate-jwt) vs straight at the API',
    measurements,
    figures: { 'gateway / direct': gateway.requestsPerSecond / Math.max(1, direct.requestsPerSecond) },
    broken,
  };
}

/**
 * The token endpoint goes down (every token request answered 503) in the middle of the load:
 * calls with a token already held must not fail. The suite checks that the outage was real.
 */
async function idpOutage(ctx: SuiteContext): Promise<SuiteResult> {
  const graph = await GraphClient.connect(readEmulatorInfo(ctx.file.stateDir));
  const headers = { authorization: `Bearer ${ctx.token}` };
  const third = ctx.profile.durationMs / 3;
  const load = runLoad({ ...common(ctx), headers, url: `${ctx.file.gateway.url}/orders` });
  let probe = 'no token request was made during the outage';
  try {
    await sleep(third);
    await graph.setFaults({ outage: '503' });
    probe = await requestPartnerToken(ctx.file).then(
      () => 'a token request succeeded during the outage',
      (err: Error) => (/HTTP 503/.test(err.message) ? 'ok' : `unexpected token error: ${err.message}`),
    );
    await sleep(third);
  } finally {
    await graph.setFaults(NO_FAULTS);
    graph.close();
  }
  const measurements = [{ name: 'through the gateway, IdP down for the middle third', result: await load }];
  const broken = check(ctx, measurements);
  if (probe !== 'ok') broken.push(`the outage was not in effect: ${probe}`);
  return {
    suite: 'idp-outage',
    description:
      'authenticated calls through the gateway while the token endpoint answers 503 for the middle third',
    measurements,
    figures: {},
    broken,
  };
}

/** Shortest access-token lifetime the stack's emulator gives (its default: 60 to 90 minutes). */
const MIN_TOKEN_LIFETIME_MS = 60 * 60_000;

/** Token requests one worker (or one replica set) may make in `durationMs`: one per lifetime. */
const tokenBudget = (durationMs: number): number => 1 + Math.floor(durationMs / MIN_TOKEN_LIFETIME_MS);

/**
 * Load through the partner worker's `serve` facade, where every call takes a token from
 * certflow's cache and calls the API through the gateway: first one worker on its own, then
 * two replicas sharing one real Redis. The emulator's own counter of issued tokens must show
 * one token request per token lifetime for the worker and one for the replica set, however
 * many calls were made.
 */
async function cachedCalls(ctx: SuiteContext): Promise<SuiteResult> {
  const broken: string[] = [];
  const budget = tokenBudget(ctx.profile.durationMs);
  const issued = () => tokensIssuedToPartner(ctx.file, ctx.ca);

  const beforeStandalone = await issued();
  const worker = await startPartnerFacade(ctx.file, 'standalone');
  const standalone = await runLoad({ ...common(ctx), url: `${worker.url}/call/orders` }).finally(() =>
    worker.stop(),
  );
  const standaloneTokens = (await issued()) - beforeStandalone;

  const redis = await startRedisServer();
  const shared = { PARTNER_REDIS_URL: redis.url, PARTNER_CACHE_KEY: randomBytes(32).toString('hex') };
  const beforeShared = await issued();
  let replicas: LoadResult[];
  try {
    const facades = await Promise.all(
      ['replica 1', 'replica 2'].map((n) => startPartnerFacade(ctx.file, n, shared)),
    );
    const connections = Math.max(1, Math.floor(ctx.profile.connections / facades.length));
    replicas = await Promise.all(
      facades.map((f) => runLoad({ ...common(ctx), connections, url: `${f.url}/call/orders` })),
    ).finally(() => Promise.all(facades.map((f) => f.stop())));
  } finally {
    await redis.stop();
  }
  const sharedTokens = (await issued()) - beforeShared;

  const measurements = [
    { name: 'partner facade, one worker', result: standalone },
    ...replicas.map((result, i) => ({ name: `partner facade, replica ${i + 1} of 2 (Redis)`, result })),
  ];
  broken.push(...check(ctx, measurements));
  if (standaloneTokens < 1 || standaloneTokens > budget) {
    broken.push(
      `one worker made ${standaloneTokens} token requests for ${standalone.requests} calls (expected 1 to ${budget})`,
    );
  }
  const sharedCalls = replicas.reduce((n, r) => n + r.requests, 0);
  if (sharedTokens < 1 || sharedTokens > budget) {
    broken.push(
      `two replicas sharing Redis made ${sharedTokens} token requests for ${sharedCalls} calls (expected 1 to ${budget})`,
    );
  }
  return {
    suite: 'cached-calls',
    description:
      "GET /orders through the partner worker's facade (token cache → gateway → API), alone and as two replicas on Redis",
    measurements,
    figures: {
      'token requests, one worker': standaloneTokens,
      'token requests, two replicas on Redis': sharedTokens,
      'calls per token request, one worker': standalone.requests / Math.max(1, standaloneTokens),
      'calls per token request, two replicas': sharedCalls / Math.max(1, sharedTokens),
    },
    broken,
  };
}

/**
 * Certificate rotation in the middle of the load: a partner facade serves calls while
 * `partner-worker cert rotate` runs in another process (Graph addKey with a proof signed by the
 * current certificate, switch, removeKey of the old one). The facade picks up the new files
 * without a restart and keeps serving its cached token, which stays valid: the rotation costs
 * no token request and no failed call. Afterwards the facade reports the new certificate, the
 * emulator refuses the old one (AADSTS700027) and issues tokens to the new one. (That the
 * worker's next token request signs with the new key is proven in the partner worker's own
 * tests, with short-lived tokens.) Changes the stack's partner certificate, so it runs last.
 */
async function rotationUnderLoad(ctx: SuiteContext): Promise<SuiteResult> {
  const broken: string[] = [];
  const partner = stackPartner(ctx.file);
  const old = partnerCertificate(partner);
  const oldThumbprints = parseCertificate(old.certificatePem).thumbprints;
  // The keyId the API owner told the partner (the stack writes it); cert rotate removes it.
  const oldKeyId = readFileSync(join(partner.certificateDirectory, PARTNER_KEY_ID_FILE), 'utf8').trim();

  const issuedBefore = await tokensIssuedToPartner(ctx.file, ctx.ca);
  const facade = await startPartnerFacade(ctx.file, 'rotating');
  const stopLoad = new AbortController();
  let rotation:
    { code: number | null; output: string; ms: number; events: Record<string, unknown>[] } | undefined;
  let result: LoadResult;
  let facadeMetrics = '';
  let facadeHealth: { certificate?: { thumbprintSha256?: string } } = {};
  try {
    const load = runLoad({
      ...common(ctx),
      // Upper bound; the run ends a third of the profile's duration after the rotation finished.
      durationMs: ctx.profile.durationMs + 120_000,
      url: `${facade.url}/call/orders`,
      signal: stopLoad.signal,
    });
    try {
      await sleep(ctx.profile.durationMs / 3);
      const started = performance.now();
      const run = await runJsonCommand(
        appEntryPoint('partner-worker'),
        ['cert', 'rotate', '--json'],
        partnerWorkerEnvironment(ctx.file),
        undefined,
        90_000,
      );
      rotation = { ...run, ms: performance.now() - started };
      // Wait (bounded) until the facade has picked the new files up, then serve a third of the
      // duration on the new certificate.
      const rotated = parseCertificate(partnerCertificate(partner).certificatePem).thumbprints.sha256Hex;
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline) {
        facadeHealth = (await fetch(`${facade.url}/health`).then((r) => r.json())) as typeof facadeHealth;
        if (facadeHealth.certificate?.thumbprintSha256 === rotated) break;
        await sleep(100);
      }
      await sleep(ctx.profile.durationMs / 3);
    } finally {
      stopLoad.abort();
      result = await load;
    }
    facadeMetrics = await fetch(`${facade.url}/metrics`).then((r) => r.text());
    facadeHealth = (await fetch(`${facade.url}/health`).then((r) => r.json())) as typeof facadeHealth;
  } finally {
    await facade.stop();
  }
  const issued = (await tokensIssuedToPartner(ctx.file, ctx.ca)) - issuedBefore;

  const measurements = [{ name: 'partner facade, certificate rotated mid-load', result }];
  broken.push(...check(ctx, measurements));
  if (rotation?.code !== 0) broken.push(`cert rotate exited with ${rotation?.code}:\n${rotation?.output}`);
  const removed = rotation?.events.find((e) => e.event === 'rotation')?.removedKeyId;
  if (removed !== oldKeyId)
    broken.push(`cert rotate removed ${String(removed)}, not the old keyId ${oldKeyId}`);
  const now = partnerCertificate(partner);
  const nowThumbprint = parseCertificate(now.certificatePem).thumbprints.sha256Hex;
  if (nowThumbprint === oldThumbprints.sha256Hex) broken.push('the certificate files did not change');
  if (facadeHealth.certificate?.thumbprintSha256 !== nowThumbprint)
    broken.push(
      `the facade reports the certificate ${facadeHealth.certificate?.thumbprintSha256}, not the new ${nowThumbprint}`,
    );
  const switches = counterSum(facadeMetrics, 'partner_certificate_switches_total');
  if (switches !== 1) broken.push(`the facade switched certificates ${switches} times (expected 1)`);
  // The facade's one token stays valid across the switch (the rotation's Graph token is not counted).
  if (issued !== 1)
    broken.push(
      `${issued} API tokens were issued to the partner (expected 1: the rotation must not cost a token)`,
    );
  const oldAnswer = await partnerTokenResponse(ctx.file, partner, old);
  if (oldAnswer.status !== 401 || !oldAnswer.text.includes('AADSTS700027'))
    broken.push(
      `the old certificate was not refused: HTTP ${oldAnswer.status} ${oldAnswer.text.slice(0, 200)}`,
    );
  const newAnswer = await partnerTokenResponse(ctx.file, partner, now);
  if (newAnswer.status !== 200)
    broken.push(
      `the new certificate gets no token: HTTP ${newAnswer.status} ${newAnswer.text.slice(0, 200)}`,
    );
  return {
    suite: 'rotation-under-load',
    description:
      'calls through the partner facade while cert rotate (addKey, switch, removeKey) runs in another process',
    measurements,
    figures: {
      'rotation took (ms)': Math.round(rotation?.ms ?? 0),
      'API tokens issued during the suite': issued,
      'certificate switches': switches,
    },
    broken,
  };
}

/** In the order they run: rotation-under-load changes the partner's certificate, so it is last. */
export const SUITES: Record<string, (ctx: SuiteContext) => Promise<SuiteResult>> = {
  'token-endpoint': tokenEndpoint,
  'gateway-throughput': gatewayThroughput,
  'idp-outage': idpOutage,
  'cached-calls': cachedCalls,
  'rotation-under-load': rotationUnderLoad,
};
