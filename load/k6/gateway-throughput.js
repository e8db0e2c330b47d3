// k6: authenticated requests straight at the gateway with a token acquired beforehand.
// Run by load/dist/main.js when k6 is installed (it sets GATEWAY_URL, ACCESS_TOKEN, PROFILE and
// SSL_CERT_FILE, the development CA, so that TLS is verified).
import http from 'k6/http';
import { check } from 'k6';

const smoke = (__ENV.PROFILE || 'smoke') === 'smoke';

export const options = {
  vus: smoke ? 8 : 32,
  duration: smoke ? '3s' : '30s',
  thresholds: {
    http_req_failed: ['rate==0'],
    http_req_duration: [smoke ? 'p(99)<1000' : 'p(99)<500'],
    checks: ['rate==1'],
  },
};

export default function () {
  const res = http.get(`${__ENV.GATEWAY_URL}/orders`, {
    headers: { Authorization: `Bearer ${__ENV.ACCESS_TOKEN}` },
  });
  check(res, { 'status is 200': (r) => r.status === 200 });
}
