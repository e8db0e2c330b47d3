// @ts-check
// k6: client-credentials token requests with a client assertion prepared ahead (signed with the
// partner's certificate by the runner, reused as MSAL reuses it for up to 10 minutes).
// Env: TOKEN_ENDPOINT, TOKEN_FORM (the url-encoded body), PROFILE_* (lib/profile.js),
// K6_SUMMARY_FILE, SSL_CERT_FILE (development CA). Fails the run by thresholds (exit 99).
import http from 'k6/http';
import { check } from 'k6';
import { env, profileOptions, summaryOutput } from './lib/profile.js';

export const options = profileOptions();
const endpoint = env('TOKEN_ENDPOINT');
const form = env('TOKEN_FORM');

export default function () {
  const res = http.post(endpoint, form, {
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
  });
  check(res, {
    'status is 200': (r) => r.status === 200,
    'has an access token': (r) => typeof r.json('access_token') === 'string',
  });
}

/** @param {any} data */
export function handleSummary(data) {
  return summaryOutput('token-endpoint.js', data);
}
