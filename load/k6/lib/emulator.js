// @ts-check
// The emulator's side of the scripts: its count of issued tokens (GET /metrics) and its fault
// injection (PATCH and DELETE /admin/faults, authenticated with an admin Graph token the runner passes).
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

/**
 * The emulator's fault injection, authenticated with the runner's admin Graph token.
 * @param {'PATCH' | 'DELETE'} method
 * @param {string | null} body
 * @returns {number} the HTTP status (200 when the faults changed)
 */
function faultsRequest(method, body) {
  const res = http.request(method, `${env('EMULATOR_URL')}/admin/faults`, body, {
    headers: {
      Authorization: `Bearer ${env('EMULATOR_ADMIN_TOKEN')}`,
      ...(body === null ? {} : { 'Content-Type': 'application/json' }),
    },
  });
  return res.status;
}

/**
 * PATCH /admin/faults: merges `faults` into the faults in force.
 * @param {Record<string, unknown>} faults
 */
export const setFaults = (faults) => faultsRequest('PATCH', JSON.stringify(faults));

/** DELETE /admin/faults: every fault off. */
export const clearFaults = () => faultsRequest('DELETE', null);
