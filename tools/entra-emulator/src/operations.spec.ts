import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator } from './emulator';
import { EmulatorError } from './errors';
import { NO_FAULTS } from './faults';
import {
  API_URI,
  assertionForm,
  clientAssertion,
  decodeJwt,
  https,
  postForm,
  removeDir,
  startFixture,
  tempStateDir,
  type Fixture,
} from './emulator.test-helpers';

let f: Fixture;
let partnerSecret: string;
beforeAll(async () => {
  f = await startFixture();
  partnerSecret = (await f.graph.addPassword(f.provisioned.partner.objectId, 'metrics')).secretText!;
});
afterAll(async () => {
  await f?.close();
});

const partnerId = () => f.provisioned.partner.appId;
const certificateToken = async () =>
  postForm(
    f.emulator,
    assertionForm(partnerId(), await clientAssertion(f.emulator.tokenEndpoint, partnerId(), f.partnerCert)),
  );
const secretToken = (secret = partnerSecret) =>
  postForm(f.emulator, {
    grant_type: 'client_credentials',
    client_id: partnerId(),
    client_secret: secret,
    scope: `${API_URI}/.default`,
  });

/** Parses Prometheus text into `name{labels}` → value. */
async function scrape(): Promise<Map<string, number>> {
  const res = await https(f.emulator, `${f.emulator.url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
  const samples = new Map<string, number>();
  for (const line of res.text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    expect(m, line).not.toBeNull();
    samples.set(m![1]!, Number(m![2]));
  }
  return samples;
}
const delta = (before: Map<string, number>, after: Map<string, number>, key: string) =>
  (after.get(key) ?? 0) - (before.get(key) ?? 0);

describe('/metrics', () => {
  it('counts token requests by client, outcome and AADSTS code, tokens issued, and latency', async () => {
    const before = await scrape();
    expect((await certificateToken()).status).toBe(200);
    expect((await secretToken()).status).toBe(200);
    expect((await secretToken('wrong-secret')).status).toBe(401);
    const unknown = await postForm(f.emulator, {
      grant_type: 'client_credentials',
      client_id: '11111111-2222-3333-4444-555555555555',
      client_secret: 'x',
      scope: `${API_URI}/.default`,
    });
    expect(unknown.json().error_codes).toEqual([700016]);
    const after = await scrape();

    const requests = (client: string, outcome: string, code: string) =>
      delta(
        before,
        after,
        `entra_emulator_token_requests_total{client_id="${client}",outcome="${outcome}",error_code="${code}"}`,
      );
    expect(requests(partnerId(), 'success', '')).toBe(2);
    expect(requests(partnerId(), 'error', '7000215')).toBe(1);
    expect(requests('unknown', 'error', '700016')).toBe(1);
    expect(
      delta(
        before,
        after,
        `entra_emulator_tokens_issued_total{client_id="${partnerId()}",resource="${f.provisioned.api.appId}",credential="certificate",token_version="2"}`,
      ),
    ).toBe(1);
    expect(
      delta(
        before,
        after,
        `entra_emulator_tokens_issued_total{client_id="${partnerId()}",resource="${f.provisioned.api.appId}",credential="secret",token_version="2"}`,
      ),
    ).toBe(1);

    expect(
      delta(before, after, 'entra_emulator_token_request_duration_seconds_count{outcome="success"}'),
    ).toBe(2);
    expect(delta(before, after, 'entra_emulator_token_request_duration_seconds_count{outcome="error"}')).toBe(
      2,
    );
    const buckets = [...after.entries()].filter(([k]) =>
      /^entra_emulator_token_request_duration_seconds_bucket\{le="[^"]+",outcome="success"\}$/.test(k),
    );
    expect(buckets).toHaveLength(16); // 15 bounds and +Inf
    const values = buckets.map(([, v]) => v);
    expect(values).toEqual([...values].sort((a, b) => a - b));
    expect(
      after.get('entra_emulator_token_request_duration_seconds_bucket{le="+Inf",outcome="success"}'),
    ).toBe(after.get('entra_emulator_token_request_duration_seconds_count{outcome="success"}'));
    expect(after.get('entra_emulator_signing_key_rotations_total')).toBe(0);
  });

  it('only answers GET', async () => {
    expect((await https(f.emulator, `${f.emulator.url}/metrics`, { method: 'POST' })).status).toBe(405);
  });
});

describe('fault injection', () => {
  const reset = () => f.emulator.setFaults(NO_FAULTS);

  it('429 with Retry-After for the configured share; discovery and JWKS keep working', async () => {
    try {
      expect(f.emulator.setFaults({ throttleShare: 1, retryAfterSeconds: 7 })).toMatchObject({
        throttleShare: 1,
        retryAfterSeconds: 7,
      });
      const before = await scrape();
      const res = await certificateToken();
      expect(res.status).toBe(429);
      expect(res.headers['retry-after']).toBe('7');
      expect(res.json()).toMatchObject({ error: 'temporarily_unavailable', error_codes: [90055] });
      expect((await https(f.emulator, f.emulator.jwksUri)).status).toBe(200);
      expect((await https(f.emulator, f.emulator.openIdConfigurationUrl)).status).toBe(200);
      const after = await scrape();
      expect(
        delta(
          before,
          after,
          'entra_emulator_token_requests_total{client_id="unknown",outcome="fault",error_code="90055"}',
        ),
      ).toBe(1);
    } finally {
      reset();
    }
    expect((await certificateToken()).status).toBe(200);
  });

  it('5xx for the configured share and status', async () => {
    try {
      f.emulator.setFaults({ serverErrorShare: 1 });
      const res500 = await secretToken();
      expect(res500.status).toBe(500);
      expect(res500.json()).toMatchObject({ error: 'server_error', error_codes: [90100] });
      f.emulator.setFaults({ serverErrorStatus: 503, retryAfterSeconds: 3 });
      const res503 = await secretToken();
      expect(res503.status).toBe(503);
      expect(res503.headers['retry-after']).toBe('3');
      expect(res503.json()).toMatchObject({ error: 'temporarily_unavailable', error_codes: [90033] });
      f.emulator.setFaults({ serverErrorShare: 0 });
      expect((await secretToken()).status).toBe(200);
    } finally {
      reset();
    }
  });

  it('full outage: 503 on every token request, or the connection dropped unanswered', async () => {
    try {
      f.emulator.setFaults({ outage: '503' });
      const res = await secretToken();
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('5');
      f.emulator.setFaults({ outage: 'drop' });
      await expect(secretToken()).rejects.toThrow(/socket hang up|ECONNRESET/);
    } finally {
      reset();
    }
    expect((await secretToken()).status).toBe(200);
  });

  it('added latency shows in the latency histogram', async () => {
    const before = await scrape();
    try {
      f.emulator.setFaults({ latencyMs: 120 });
      expect((await secretToken()).status).toBe(200);
    } finally {
      reset();
    }
    const after = await scrape();
    expect(
      delta(
        before,
        after,
        'entra_emulator_token_request_duration_seconds_bucket{le="+Inf",outcome="success"}',
      ),
    ).toBe(1);
    // The request took at least the injected 120 ms, so it is not in the 50 ms bucket.
    const fast = 'entra_emulator_token_request_duration_seconds_bucket{le="0.05",outcome="success"}';
    expect(after.has(fast)).toBe(true);
    expect(delta(before, after, fast)).toBe(0);
  });

  it('PATCH/GET/PUT/DELETE /admin/faults with the admin token; invalid settings are 400; others are refused', async () => {
    const token = await f.graph.accessToken();
    const admin = (method: string, body?: unknown, bearer: string | null = token) =>
      https(f.emulator, `${f.emulator.url}/admin/faults`, {
        method,
        headers: {
          ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    try {
      expect((await admin('PATCH', { throttleShare: 1 }, null)).status).toBe(401);
      const patched = await admin('PATCH', { throttleShare: 1, retryAfterSeconds: 2 });
      expect(patched.status, patched.text).toBe(200);
      expect(patched.json()).toEqual({ ...NO_FAULTS, throttleShare: 1, retryAfterSeconds: 2 });
      expect((await certificateToken()).status).toBe(429);
      expect((await admin('GET')).json()).toMatchObject({ throttleShare: 1 });
      // PUT replaces everything not given with the defaults.
      expect((await admin('PUT', { serverErrorShare: 1 })).json()).toEqual({
        ...NO_FAULTS,
        serverErrorShare: 1,
      });
      expect((await certificateToken()).status).toBe(500);
      for (const bad of [{ throttleShare: 2 }, { outage: 'sometimes' }, { nonsense: 1 }, [1]]) {
        const res = await admin('PATCH', bad);
        expect(res.status, JSON.stringify(bad)).toBe(400);
        expect((res.json().error as { code: string }).code).toBe('Request_BadRequest');
      }
      expect((await admin('DELETE')).json()).toEqual(NO_FAULTS);
      expect((await certificateToken()).status).toBe(200);
    } finally {
      reset();
    }
  });

  it('GraphClient.setFaults drives the same route', async () => {
    try {
      expect(await f.graph.setFaults({ outage: '503' })).toMatchObject({ outage: '503' });
      expect((await secretToken()).status).toBe(503);
    } finally {
      reset();
    }
    expect(await f.graph.setFaults({})).toEqual(NO_FAULTS);
  });

  it('faults can be set at start; bad ones stop start-up', async () => {
    const dir = tempStateDir();
    try {
      const emulator = await startEmulator({ stateDir: dir, faults: { outage: '503' } });
      try {
        const res = await postForm(emulator, {
          grant_type: 'client_credentials',
          client_id: emulator.admin.clientId,
          client_secret: emulator.admin.clientSecret,
          scope: 'https://graph.microsoft.com/.default',
        });
        expect(res.status).toBe(503);
      } finally {
        await emulator.close();
      }
      await expect(startEmulator({ stateDir: dir, faults: { throttleShare: 3 } })).rejects.toBeInstanceOf(
        EmulatorError,
      );
    } finally {
      removeDir(dir);
    }
  });
});

describe('v1 endpoints', () => {
  const v1TokenUrl = () => `${f.emulator.authority}/oauth2/token`;

  it('POST /{tenant}/oauth2/token with resource issues a token (numbers as strings, like Entra v1)', async () => {
    const assertion = await clientAssertion(v1TokenUrl(), partnerId(), f.partnerCert, { alg: 'RS256' });
    const res = await postForm(
      f.emulator,
      {
        grant_type: 'client_credentials',
        client_id: partnerId(),
        resource: API_URI,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
      },
      { url: v1TokenUrl() },
    );
    expect(res.status, res.text).toBe(200);
    const body = res.json();
    expect(Object.keys(body).sort()).toEqual([
      'access_token',
      'expires_in',
      'expires_on',
      'ext_expires_in',
      'not_before',
      'resource',
      'token_type',
    ]);
    expect(body).toMatchObject({
      token_type: 'Bearer',
      resource: API_URI,
      expires_in: expect.stringMatching(/^\d+$/),
      expires_on: expect.stringMatching(/^\d+$/),
    });
    const { payload } = decodeJwt(String(body.access_token));
    // The version follows the resource (this API asks for v2 tokens).
    expect(payload).toMatchObject({
      aud: f.provisioned.api.appId,
      ver: '2.0',
      azpacr: '2',
      roles: ['Orders.Read'],
    });
    expect(String(payload.exp)).toBe(body.expires_on);
  });

  it('takes a secret and the resource by app id, and assertions addressed to the v2.0 endpoint', async () => {
    const bySecret = await postForm(
      f.emulator,
      {
        grant_type: 'client_credentials',
        client_id: partnerId(),
        client_secret: partnerSecret,
        resource: f.provisioned.api.appId,
      },
      { url: v1TokenUrl() },
    );
    expect(bySecret.status, bySecret.text).toBe(200);
    const assertion = await clientAssertion(f.emulator.tokenEndpoint, partnerId(), f.partnerCert);
    const byV2Aud = await postForm(
      f.emulator,
      { ...assertionForm(partnerId(), assertion), scope: '', resource: API_URI },
      { url: v1TokenUrl() },
    );
    expect(byV2Aud.status, byV2Aud.text).toBe(200);
  });

  it('refuses a missing or unknown resource', async () => {
    const missing = await postForm(
      f.emulator,
      {
        grant_type: 'client_credentials',
        client_id: partnerId(),
        client_secret: partnerSecret,
        scope: `${API_URI}/.default`,
      },
      { url: v1TokenUrl() },
    );
    expect(missing.status).toBe(400);
    expect(missing.json().error_codes).toEqual([900144]);
    expect(String(missing.json().error_description)).toContain("'resource'");
    const unknown = await postForm(
      f.emulator,
      {
        grant_type: 'client_credentials',
        client_id: partnerId(),
        client_secret: partnerSecret,
        resource: 'api://nobody',
      },
      { url: v1TokenUrl() },
    );
    expect(unknown.status).toBe(400);
    expect(unknown.json().error_codes).toEqual([500011]);
  });

  it('serves v1 discovery and keys', async () => {
    const doc = (await https(f.emulator, `${f.emulator.authority}/.well-known/openid-configuration`)).json();
    expect(doc).toMatchObject({
      issuer: `https://sts.windows.net/${f.emulator.tenantId}/`,
      token_endpoint: v1TokenUrl(),
      jwks_uri: `${f.emulator.authority}/discovery/keys`,
    });
    const keys = (await https(f.emulator, String(doc.jwks_uri))).json().keys as { kid: string }[];
    const v2keys = (await https(f.emulator, f.emulator.jwksUri)).json().keys as { kid: string }[];
    expect(keys.map((k) => k.kid)).toEqual(v2keys.map((k) => k.kid));
    const byDomain = await https(
      f.emulator,
      `${f.emulator.url}/${f.emulator.tenantDomain}/.well-known/openid-configuration`,
    );
    expect(byDomain.status).toBe(200);
  });
});
