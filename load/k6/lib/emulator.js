// @ts-check
// The emulator's side of the scripts: its count of issued tokens (GET /metrics) and its fault
// injection (PATCH /admin/faults, authenticated with an admin Graph token the runner passes).
import http from 'k6/http';
import { env } from './profile.js';

/**
 * Sum of `entra_emulator_tokens_issued_total` samples for the partner's client id and the API's
 * resource: access tokens for the API the emulator issued to the partner since it started.
 * @returns {number}
 */
export function tokensIssuedToPartner() {
  const url = `${env('EMULATOR_URL')}/metrics`;
  const res = http.get(url);
  if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status} ${res.error}`);
  const wanted = [`client_id="${env('PARTNER_CLIENT_ID')}"`, `resource="${env('API_CLIENT_ID')}"`];
  let total = 0;
  for (const line of String(res.body).split('\n')) {
    if (!line.startsWith('entra_emulator_tokens_issued_total{')) continue;
    const close = line.lastIndexOf('}');
    const labels = line.slice(line.indexOf('{') + 1, close).split(',');
    if (wanted.every((w) => labels.includes(w))) total += Number(line.slice(close + 1).trim());
  }
  return total;
}

/** Every fault off: the emulator's NO_FAULTS. */
export const NO_FAULTS = {
  latencyMs: 0,
  throttleShare: 0,
  retryAfterSeconds: 5,
  serverErrorShare: 0,
  serverErrorStatus: 500,
  outage: 'none',
};

/**
 * PATCH /admin/faults; returns the HTTP status (200 when the faults changed).
 * @param {Record<string, unknown>} faults
 * @returns {number}
 */
export function setFaults(faults) {
  const res = http.request('PATCH', `${env('EMULATOR_URL')}/admin/faults`, JSON.stringify(faults), {
    headers: {
      Authorization: `Bearer ${env('EMULATOR_ADMIN_TOKEN')}`,
      'Content-Type': 'application/json',
    },
  });
  return res.status;
}
