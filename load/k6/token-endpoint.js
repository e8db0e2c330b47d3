// k6: client-credentials token requests with a client assertion prepared ahead (signed with the
// partner's certificate by load/dist/main.js, reused as MSAL reuses it for up to 10 minutes).
// Env: TOKEN_ENDPOINT, TOKEN_FORM (the url-encoded body), PROFILE, SSL_CERT_FILE (development CA).
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
  const res = http.post(__ENV.TOKEN_ENDPOINT, __ENV.TOKEN_FORM, {
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
  });
  check(res, {
    'status is 200': (r) => r.status === 200,
    'has an access token': (r) => typeof r.json('access_token') === 'string',
  });
}
