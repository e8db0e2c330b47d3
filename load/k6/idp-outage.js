// @ts-check
// k6: authenticated calls through the gateway while the emulator's token endpoint answers 503
// for the middle third: calls with a token already held must not fail. VU 1 switches the
// outage on and off through the emulator's admin API and checks that a token request really
// gets 503 meanwhile; teardown() switches every fault off again (the runner does too).
// Fails the run by thresholds (exit 99): the usual ones, and outage_confirmed (count>=1),
// which only a 503 seen during the outage increments.
// Env: GATEWAY_URL, ACCESS_TOKEN, TOKEN_ENDPOINT, TOKEN_FORM, EMULATOR_URL,
// EMULATOR_ADMIN_TOKEN, PROFILE_* (lib/profile.js), K6_SUMMARY_FILE, SSL_CERT_FILE.
import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import { bearer, durationMs, env, profileOptions, summaryOutput } from './lib/profile.js';
import { clearFaults, setFaults } from './lib/emulator.js';

export const options = profileOptions({ outage_confirmed: ['count>=1'] });
const outageConfirmed = new Counter('outage_confirmed');
const url = `${env('GATEWAY_URL')}/orders`;
const third = durationMs() / 3;
/** 0: before the outage, 1: during, 2: after (VU 1 only). */
let phase = 0;

// Without a 503 the counter has no sample; k6 evaluates an empty Counter's threshold on 0, so
// count>=1 then fails.
export function setup() {
  return { startedAt: Date.now() };
}

/**
 * VU 1: outage on after a third, a token request that must get 503, outage off after two thirds.
 * @param {{ startedAt: number }} data
 */
function switchOutage(data) {
  const elapsed = Date.now() - data.startedAt;
  if (phase === 0 && elapsed >= third) {
    phase = 1;
    check(setFaults({ outage: '503' }), { 'outage switched on': (s) => s === 200 });
    const probe = http.post(env('TOKEN_ENDPOINT'), env('TOKEN_FORM'), {
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      responseCallback: http.expectedStatuses(503),
    });
    if (check(probe, { 'a token request during the outage gets 503': (r) => r.status === 503 }))
      outageConfirmed.add(1);
  } else if (phase === 1 && elapsed >= 2 * third) {
    phase = 2;
    check(clearFaults(), { 'outage switched off': (s) => s === 200 });
  }
}

/** @param {{ startedAt: number }} data */
export default function (data) {
  if (__VU === 1) switchOutage(data);
  const res = http.get(url, bearer());
  check(res, { 'status is 200': (r) => r.status === 200 });
}

export function teardown() {
  const status = clearFaults();
  if (status !== 200) exec.test.fail(`switching the faults off answered HTTP ${status}`);
}

/** @param {any} data */
export function handleSummary(data) {
  return summaryOutput('idp-outage.js', data);
}
