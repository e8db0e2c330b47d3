/**
 * What a suite's timeline needs beyond its load results: the emulator's count of API tokens
 * issued to the partner, read from its /metrics (TLS verified against the stack's CA) about
 * every 500 ms while the suite runs. The report draws it on the load's time axis, so that
 * caching (or its absence) shows at a glance.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { tokensIssuedToPartner } from './partner-facade';
import type { SuiteContext, SuiteResult, TokenSample } from './suite-context';

const SAMPLE_INTERVAL_MS = 500;

/**
 * Reads the partner's token count now and then about every 500 ms until `stop()`, which takes a
 * last reading and resolves with them all. A reading that fails is left out; if none succeeded,
 * `stop()` rejects with the last error.
 */
export function sampleTokens(ctx: SuiteContext) {
  const samples: TokenSample[] = [];
  const stopped = new AbortController();
  let lastError: unknown;
  const read = async (): Promise<void> => {
    const atMs = Date.now();
    try {
      samples.push({ atMs, issued: await tokensIssuedToPartner(ctx.file, ctx.ca) });
    } catch (err) {
      lastError = err;
    }
  };
  const loop = (async () => {
    while (!stopped.signal.aborted) {
      const next = Date.now() + SAMPLE_INTERVAL_MS;
      await read();
      await sleep(Math.max(0, next - Date.now()), undefined, { signal: stopped.signal }).catch(() => {});
    }
  })();
  return {
    async stop(): Promise<TokenSample[]> {
      stopped.abort();
      await loop;
      await read();
      if (samples.length === 0)
        throw new Error(`no reading of the emulator's token count succeeded: ${String(lastError)}`);
      return samples;
    },
  };
}

/**
 * Runs a suite while sampling the partner's token count, and attaches the samples to its result;
 * a suite whose token count could not be read at all says so among its broken checks.
 */
export async function withTokenSamples(
  ctx: SuiteContext,
  suite: () => Promise<SuiteResult>,
): Promise<SuiteResult> {
  const sampler = sampleTokens(ctx);
  let result: SuiteResult;
  try {
    result = await suite();
  } catch (err) {
    await sampler.stop().catch(() => undefined);
    throw err;
  }
  try {
    return { ...result, tokenSamples: await sampler.stop() };
  } catch (err) {
    return { ...result, broken: [...result.broken, (err as Error).message] };
  }
}
