/**
 * The load suites. Each gets the running stack and the partner's token, runs bounded load,
 * and returns its measurements and the thresholds they break. cached-calls and the rotations
 * have modules of their own.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { GraphClient, NO_FAULTS, readEmulatorInfo } from '@certflow/entra-emulator';
import {
  partnerCertificate,
  requestPartnerToken,
  servedApi,
  stackPartner,
  tokenRequestForm,
} from '@certflow/stack';
import { runLoad } from './http-load';
import { k6Available, runK6 } from './k6';
import { cachedCalls } from './cached-calls';
import { rotationUnderLoad, rotationUnderLoadPkcs11 } from './rotation-under-load';
import { check, common, type SuiteContext, type SuiteResult } from './suite-context';

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

/**
 * In the order they run: the rotations come last (they register and remove certificates of the
 * stack's partner), and rotation-under-load, which changes the stack's partner certificate, is
 * the very last.
 */
export const SUITES: Record<string, (ctx: SuiteContext) => Promise<SuiteResult>> = {
  'token-endpoint': tokenEndpoint,
  'gateway-throughput': gatewayThroughput,
  'idp-outage': idpOutage,
  'cached-calls': cachedCalls,
  'rotation-under-load-pkcs11': rotationUnderLoadPkcs11,
  'rotation-under-load': rotationUnderLoad,
};
