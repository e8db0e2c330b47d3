/**
 * The load suites. Each gets the running stack and the partner's token, runs bounded load,
 * and returns its measurements and the thresholds they break. cached-calls and the rotations
 * have modules of their own.
 */
import { GraphClient, NO_FAULTS, readEmulatorInfo } from '@certflow/entra-emulator';
import { requestPartnerToken, servedApi } from '@certflow/stack';
import { runLoad } from './http-load';
import { cachedCalls } from './cached-calls';
import { rotationUnderLoad, rotationUnderLoadPkcs11 } from './rotation-under-load';
import {
  check,
  common,
  partnerTokenForm,
  pause,
  type Marker,
  type SuiteContext,
  type SuiteResult,
} from './suite-context';
import { withTokenSamples } from './timeline';

/** Client-assertion token requests against the emulator's token endpoint (one assertion, reused as MSAL does). */
async function tokenEndpoint(ctx: SuiteContext): Promise<SuiteResult> {
  const form = await partnerTokenForm(ctx);
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
  return {
    suite: 'token-endpoint',
    description: 'client_credentials with a certificate client assertion, straight at the emulator',
    measurements,
    figures: {},
    broken: check(ctx, measurements),
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
  return {
    suite: 'gateway-throughput',
    description: 'GET /orders with a bearer token through the gateway (validate-jwt) vs straight at the API',
    measurements,
    figures: { 'gateway / direct': gateway.requestsPerSecond / Math.max(1, direct.requestsPerSecond) },
    broken: check(ctx, measurements),
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
  let outage: Marker | undefined;
  try {
    await pause(ctx, third);
    await graph.setFaults({ outage: '503' });
    outage = {
      label: 'IdP outage (token endpoint answers 503)',
      kind: 'outage',
      startMs: Date.now(),
      endMs: 0,
    };
    probe = await requestPartnerToken(ctx.file).then(
      () => 'a token request succeeded during the outage',
      (err: Error) => (/HTTP 503/.test(err.message) ? 'ok' : `unexpected token error: ${err.message}`),
    );
    await pause(ctx, third);
  } finally {
    await graph.setFaults(NO_FAULTS);
    if (outage) outage.endMs = Date.now();
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
    markers: outage ? [outage] : [],
  };
}

type Suite = (ctx: SuiteContext) => Promise<SuiteResult>;

/** The suite with the emulator's count of the partner's tokens sampled while it runs. */
const sampled =
  (suite: Suite): Suite =>
  (ctx) =>
    withTokenSamples(ctx, () => suite(ctx));

/**
 * In the order they run: the rotations come last (they register and remove certificates of the
 * stack's partner), and rotation-under-load, which changes the stack's partner certificate, is
 * the very last.
 */
export const SUITES: Record<string, Suite> = {
  'token-endpoint': sampled(tokenEndpoint),
  'gateway-throughput': sampled(gatewayThroughput),
  'idp-outage': sampled(idpOutage),
  'cached-calls': sampled(cachedCalls),
  'rotation-under-load-pkcs11': sampled((ctx) => rotationUnderLoadPkcs11(ctx)),
  'rotation-under-load': sampled((ctx) => rotationUnderLoad(ctx)),
};
