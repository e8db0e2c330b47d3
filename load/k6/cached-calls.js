// @ts-check
// k6: calls through the partner worker's facade (`partner-worker serve`, started by the runner),
// where every call takes a token from certflow's cache and calls the API through the gateway.
// setup() and teardown() read the emulator's own count of tokens issued to the partner; more
// than one per token lifetime fails the run with exec.test.fail() (exit code 110:
// https://grafana.com/docs/k6/latest/javascript-api/k6-execution/#test-fail); the load itself
// fails it by thresholds (exit 99).
// Env: FACADE_URL, EMULATOR_URL, PARTNER_CLIENT_ID, API_CLIENT_ID, MIN_TOKEN_LIFETIME_MS,
// PROFILE_* (lib/profile.js), K6_SUMMARY_FILE, SSL_CERT_FILE (development CA).
import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { env, profileOptions, summaryOutput } from './lib/profile.js';
import { tokensIssuedToPartner } from './lib/emulator.js';

export const options = profileOptions();
const url = `${env('FACADE_URL')}/call/orders`;
const lifetimeMs = Number(env('MIN_TOKEN_LIFETIME_MS'));

export function setup() {
  return { before: tokensIssuedToPartner(), startedAt: Date.now() };
}

export default function () {
  const res = http.get(url);
  check(res, { 'status is 200': (r) => r.status === 200 });
}

/** @param {{ before: number, startedAt: number }} data */
export function teardown(data) {
  const issued = tokensIssuedToPartner() - data.before;
  const budget = 1 + Math.floor((Date.now() - data.startedAt) / lifetimeMs);
  if (issued > budget)
    exec.test.fail(
      `${issued} tokens were issued to the partner, more than one per token lifetime (${budget})`,
    );
}

/** @param {any} data */
export function handleSummary(data) {
  return summaryOutput('cached-calls.js', data);
}
