/**
 * The cached-calls suite: load through the partner worker's `serve` facade, where every call
 * takes a token from certflow's cache and calls the API through the gateway. One worker with
 * the stack's key file, one with a key in a SoftHSM2 token, then two replicas (key file)
 * sharing one real Redis. The emulator's own counter of issued tokens must show one token
 * request per token lifetime for each, however many calls were made; the facades' own
 * `partner_assertion_signatures_total{key_store}` shows what that means for the signer: about
 * as many signatures as token requests, so the key's cost (a file or a token) disappears
 * behind the cache.
 */
import { randomBytes } from 'node:crypto';
import { DEFAULT_TOKEN_LIFETIME } from '@certflow/entra-emulator';
import { startRedisServer } from '@certflow/testing';
import { runLoad, type LoadResult } from './http-load';
import { createHsmPartner } from './hsm-partner';
import { counterSum, startPartnerFacade, tokensIssuedToPartner } from './partner-facade';
import { check, common, type SuiteContext, type SuiteResult } from './suite-context';

/** Shortest access-token lifetime the stack's emulator gives (its default lifetime's lower bound). */
export const MIN_TOKEN_LIFETIME_MS =
  1000 * (typeof DEFAULT_TOKEN_LIFETIME === 'number' ? DEFAULT_TOKEN_LIFETIME : DEFAULT_TOKEN_LIFETIME.min);

/** Token requests one worker (or one replica set) may make in `durationMs`: one per lifetime. */
const tokenBudget = (durationMs: number): number => 1 + Math.floor(durationMs / MIN_TOKEN_LIFETIME_MS);

const KEY_STORES = ['file', 'pkcs11'] as const;
type KeyStore = (typeof KEY_STORES)[number];

interface FacadeRun {
  results: LoadResult[];
  calls: number;
  /** Access tokens the emulator issued to the partner during the run. */
  tokens: number;
  /** Client assertions the facades signed, by key store. */
  signatures: Record<KeyStore, number>;
}

/** Starts one facade per label with `env`, loads them all at once, reads their metrics, stops them. */
async function facadeRun(
  ctx: SuiteContext,
  labels: string[],
  env: Record<string, string> = {},
): Promise<FacadeRun> {
  const before = await tokensIssuedToPartner(ctx.file, ctx.ca);
  const facades = await Promise.all(labels.map((label) => startPartnerFacade(ctx.file, label, env)));
  const metrics: string[] = [];
  try {
    const connections = Math.max(1, Math.floor(ctx.profile.connections / facades.length));
    const results = await Promise.all(
      facades.map((f) => runLoad({ ...common(ctx), connections, url: `${f.url}/call/orders` })),
    );
    for (const f of facades) metrics.push(await fetch(`${f.url}/metrics`).then((r) => r.text()));
    const signed = (keyStore: KeyStore) =>
      metrics.reduce(
        (n, text) => n + counterSum(text, 'partner_assertion_signatures_total', { key_store: keyStore }),
        0,
      );
    return {
      results,
      calls: results.reduce((n, r) => n + r.requests, 0),
      tokens: (await tokensIssuedToPartner(ctx.file, ctx.ca)) - before,
      signatures: { file: signed('file'), pkcs11: signed('pkcs11') },
    };
  } finally {
    await Promise.all(facades.map((f) => f.stop()));
  }
}

/** Token requests and signatures within the budget, and every signature made with `keyStore`. */
function budgetBroken(run: FacadeRun, who: string, keyStore: KeyStore, budget: number): string[] {
  const broken: string[] = [];
  if (run.tokens < 1 || run.tokens > budget)
    broken.push(`${who} made ${run.tokens} token requests for ${run.calls} calls (expected 1 to ${budget})`);
  const signed = run.signatures[keyStore];
  if (signed < 1 || signed > budget)
    broken.push(
      `${who} signed ${signed} client assertions with its ${keyStore} key for ${run.calls} calls (expected 1 to ${budget})`,
    );
  for (const other of KEY_STORES.filter((k) => k !== keyStore && run.signatures[k] !== 0))
    broken.push(`${who} counted ${run.signatures[other]} signatures under key_store="${other}"`);
  return broken;
}

const per1000 = (run: FacadeRun, keyStore: KeyStore): number =>
  (1000 * run.signatures[keyStore]) / Math.max(1, run.calls);

export async function cachedCalls(ctx: SuiteContext): Promise<SuiteResult> {
  const budget = tokenBudget(ctx.profile.durationMs);
  const file = await facadeRun(ctx, ['key file']);

  const hsmPartner = await createHsmPartner(ctx.file, 'certflow-load-cache');
  let hsm: FacadeRun;
  try {
    hsm = await facadeRun(ctx, ['key in SoftHSM2'], hsmPartner.env);
  } finally {
    await hsmPartner.remove();
  }

  const redis = await startRedisServer();
  let shared: FacadeRun;
  try {
    shared = await facadeRun(ctx, ['replica 1', 'replica 2'], {
      PARTNER_REDIS_URL: redis.url,
      PARTNER_CACHE_KEY: randomBytes(32).toString('hex'),
    });
  } finally {
    await redis.stop();
  }

  const measurements = [
    { name: 'partner facade, one worker (key file)', result: file.results[0]! },
    { name: 'partner facade, one worker (key in SoftHSM2)', result: hsm.results[0]! },
    ...shared.results.map((result, i) => ({
      name: `partner facade, replica ${i + 1} of 2 (Redis)`,
      result,
    })),
  ];
  const broken = [
    ...check(ctx, measurements),
    ...budgetBroken(file, 'one worker with a key file', 'file', budget),
    ...budgetBroken(hsm, 'one worker with its key in SoftHSM2', 'pkcs11', budget),
    ...budgetBroken(shared, 'two replicas sharing Redis', 'file', budget),
  ];
  return {
    suite: 'cached-calls',
    description:
      "GET /orders through the partner worker's facade (token cache → gateway → API): alone with a key file, alone with the key in SoftHSM2, and as two replicas on Redis",
    measurements,
    figures: {
      'token requests, one worker (key file)': file.tokens,
      'token requests, one worker (key in SoftHSM2)': hsm.tokens,
      'token requests, two replicas on Redis': shared.tokens,
      'calls per token request, one worker (key file)': file.calls / Math.max(1, file.tokens),
      'calls per token request, one worker (key in SoftHSM2)': hsm.calls / Math.max(1, hsm.tokens),
      'calls per token request, two replicas': shared.calls / Math.max(1, shared.tokens),
      'signatures per 1000 calls, key file': per1000(file, 'file'),
      'signatures per 1000 calls, key in SoftHSM2': per1000(hsm, 'pkcs11'),
      'signatures per 1000 calls, two replicas (key file)': per1000(shared, 'file'),
    },
    broken,
  };
}
