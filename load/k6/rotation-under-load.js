// @ts-check
// k6: calls through the partner facade while the runner runs `partner-worker cert rotate` in
// another process. k6 only drives the load; the runner stops it with SIGINT after the rotation
// (k6 then runs handleSummary) and judges the thresholds from the summary; run alone, the
// thresholds make `k6 run` exit 99.
// Env: FACADE_URL, PROFILE_* (lib/profile.js; the runner sets PROFILE_DURATION_MS to an upper
// bound), K6_SUMMARY_FILE, SSL_CERT_FILE (development CA).
import http from 'k6/http';
import { check } from 'k6';
import { env, profileOptions, summaryOutput } from './lib/profile.js';

export const options = profileOptions();
const url = `${env('FACADE_URL')}/call/orders`;

export default function () {
  const res = http.get(url);
  check(res, { 'status is 200': (r) => r.status === 200 });
}

/** @param {any} data */
export function handleSummary(data) {
  return summaryOutput('rotation-under-load.js', data);
}
