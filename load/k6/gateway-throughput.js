// @ts-check
// k6: authenticated GET /orders straight at the gateway with a token acquired beforehand.
// Env: GATEWAY_URL, ACCESS_TOKEN, PROFILE_* (lib/profile.js), K6_SUMMARY_FILE; SSL_CERT_FILE,
// the development CA, so that TLS is verified. Fails the run by thresholds (exit 99).
import http from 'k6/http';
import { check } from 'k6';
import { bearer, env, profileOptions, summaryOutput } from './lib/profile.js';

export const options = profileOptions();
const url = `${env('GATEWAY_URL')}/orders`;

export default function () {
  const res = http.get(url, bearer());
  check(res, { 'status is 200': (r) => r.status === 200 });
}

/** @param {any} data */
export function handleSummary(data) {
  return summaryOutput('gateway-throughput.js', data);
}
