/**
 * The sign-in log end to end over HTTPS: real token requests (certificates made here, secrets,
 * refusals), then read back through Graph beta `/auditLogs/signIns` with its filters, paging
 * and permission, and counted in /metrics. No secret, assertion or token may ever appear in it.
 */
import { describe, expect, it } from 'vitest';
import { createSelfSignedCertificate, parseCertificate } from '@certflow/certs';
import { NOT_A_THUMBPRINT } from './client-assertion-verifier';
import { GRAPH_APP_ID } from './directory';
import {
  API_URI,
  assertionForm,
  clientAssertion,
  decodeJwt,
  https,
  postForm,
  type HttpResult,
} from './emulator.test-helpers';
import { NO_FAULTS } from './faults';
import { expectGraphError, graphTokenWith, newClient, tokenFor, useGraphFixture } from './graph.test-helpers';

const { f, adminToken } = useGraphFixture();
const SP_FILTER = "signInEventTypes/any(t: t eq 'servicePrincipal')";

type SignIn = Record<string, unknown> & { status: { errorCode: number; failureReason: string | null } };

function signIns(
  query: string,
  options: { version?: string; token?: string | null } = {},
): Promise<HttpResult> {
  const token = options.token === undefined ? adminToken() : options.token;
  return https(f.emulator, `${f.emulator.url}/graph/${options.version ?? 'beta'}/auditLogs/signIns${query}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
}

async function listFor(appId: string, extra = ''): Promise<SignIn[]> {
  const filter = `${SP_FILTER} and appId eq '${appId}'${extra}`;
  const res = await signIns(`?$filter=${encodeURIComponent(filter)}`);
  expect(res.status, res.text).toBe(200);
  return (res.json() as { value: SignIn[] }).value;
}

describe('recording token requests', () => {
  it("a certificate sign-in: the client, its registered certificate's SHA-1 and key id, the resource, the socket's address", async () => {
    const client = await newClient(f, 'signin-cert');
    const correlationId = '6f1c0d8e-3d4b-4c7a-9a53-2b8c0c5e7d11';
    const assertion = await clientAssertion(f.emulator.tokenEndpoint, client.appId, client.cert);
    const res = await postForm(
      f.emulator,
      assertionForm(client.appId, assertion, 'https://graph.microsoft.com/.default'),
      {
        headers: { 'client-request-id': correlationId, 'x-forwarded-for': '203.0.113.9' },
      },
    );
    expect(res.status, res.text).toBe(200);
    const [entry, ...rest] = await listFor(client.appId);
    expect(rest).toEqual([]);
    const app = await f.graph.getApplication(client.objectId, { select: ['keyCredentials'] });
    const graphSp = await f.graph.findServicePrincipalByAppId(GRAPH_APP_ID);
    expect(entry).toMatchObject({
      appId: client.appId,
      appDisplayName: expect.stringMatching(/^signin-cert-/),
      servicePrincipalId: client.spId,
      resourceId: GRAPH_APP_ID,
      resourceServicePrincipalId: graphSp!.id,
      resourceDisplayName: 'Microsoft Graph',
      resourceTenantId: f.emulator.tenantId,
      ipAddress: '127.0.0.1',
      clientCredentialType: 'certificate',
      servicePrincipalCredentialThumbprint: parseCertificate(client.cert.certificatePem).thumbprints.sha1Hex,
      servicePrincipalCredentialKeyId: app.keyCredentials[0]!.keyId,
      signInEventTypes: ['servicePrincipal'],
      isInteractive: false,
      correlationId,
      originalRequestId: res.headers['x-ms-request-id'],
      status: { errorCode: 0, failureReason: null, additionalDetails: null },
    });
    expect(Math.abs(Date.parse(entry.createdDateTime as string) - Date.now())).toBeLessThan(60_000);
  });

  it('an unregistered certificate: 700027 with the thumbprint the header named, SHA-1 from x5t, else SHA-256', async () => {
    const client = await newClient(f, 'signin-stranger');
    const stranger = createSelfSignedCertificate({ commonName: 'stranger' });
    const thumbprints = parseCertificate(stranger.certificatePem).thumbprints;
    for (const alg of ['PS256', 'RS256'] as const) {
      const assertion = await clientAssertion(f.emulator.tokenEndpoint, client.appId, stranger, { alg });
      const res = await postForm(f.emulator, assertionForm(client.appId, assertion));
      expect(res.json().error_codes).toEqual([700027]);
    }
    const entries = await listFor(client.appId);
    expect(entries.map((e) => e.servicePrincipalCredentialThumbprint)).toEqual([
      thumbprints.sha1Hex, // RS256 + x5t, the newest
      thumbprints.sha256Hex, // PS256 + x5t#S256 only
    ]);
    for (const e of entries) {
      expect(e).toMatchObject({
        clientCredentialType: 'certificate',
        servicePrincipalCredentialKeyId: '',
        resourceId: f.provisioned.api.appId,
        resourceDisplayName: 'orders API',
        status: { errorCode: 700027 },
      });
      expect(e.status.failureReason).toContain('Client assertion contains an invalid signature');
    }
  });

  it('a hostile x5t (47 KB, or text that is not base64url) is never echoed: the entry stays a few KB', async () => {
    const client = await newClient(f, 'signin-hostile');
    const form = (x5t: string, scope: string) => {
      const header = Buffer.from(JSON.stringify({ alg: 'PS256', x5t })).toString('base64url');
      return assertionForm(client.appId, `${header}.e30.AAAA`, scope);
    };
    const bigX5t = Buffer.alloc(35_500, 0xab).toString('base64url'); // 47 KB, body under 64 KiB
    const html = '<img src=x onerror="alert(1)">';
    for (const [x5t, scope] of [
      [bigX5t, 'https://graph.microsoft.com/.default'],
      [html, `${html.repeat(400)}/.default`],
    ] as const) {
      const res = await postForm(f.emulator, form(x5t, scope));
      expect(res.status, res.text).toBeGreaterThanOrEqual(400);
      expect(res.text).not.toContain(bigX5t.slice(0, 200));
    }
    const entries = await listFor(client.appId);
    expect(entries).toHaveLength(2);
    for (const e of entries) {
      expect(Buffer.byteLength(JSON.stringify(e))).toBeLessThanOrEqual(4096);
      expect(e.servicePrincipalCredentialThumbprint).toBe(NOT_A_THUMBPRINT);
      expect(e.status.failureReason).not.toContain('<img');
    }
  });

  it("secrets: the matching secret's key id on success; a wrong secret is a clientSecret failure without one", async () => {
    const client = await newClient(f, 'signin-secret');
    const password = await f.graph.addPassword(client.objectId, 'comparison');
    const form = (secret: string) => ({
      grant_type: 'client_credentials',
      client_id: client.appId,
      client_secret: secret,
      scope: `${API_URI}/.default`,
    });
    expect((await postForm(f.emulator, form(password.secretText!))).status).toBe(200);
    expect((await postForm(f.emulator, form(`${password.secretText!}x`))).status).toBe(401);
    const [wrong, right] = await listFor(client.appId);
    expect(right).toMatchObject({
      clientCredentialType: 'clientSecret',
      servicePrincipalCredentialKeyId: password.keyId,
      servicePrincipalCredentialThumbprint: '',
      status: { errorCode: 0 },
    });
    expect(wrong).toMatchObject({
      clientCredentialType: 'clientSecret',
      servicePrincipalCredentialKeyId: '',
      status: { errorCode: 7000215 },
    });
  });

  it("is stamped with the emulator's clock, so a shifted clock shifts createdDateTime", async () => {
    const client = await newClient(f, 'signin-clock');
    f.setClockOffset(2 * 3600_000);
    try {
      await tokenFor(f, client); // refused or not, it is recorded at the shifted time
    } finally {
      f.setClockOffset(0);
    }
    const [entry] = await listFor(client.appId);
    const shiftedBy = Date.parse(entry!.createdDateTime as string) - Date.now();
    expect(shiftedBy).toBeGreaterThan(2 * 3600_000 - 60_000);
    expect(shiftedBy).toBeLessThan(2 * 3600_000 + 60_000);
  });

  it("not recorded: injected faults (never processed) and other tenants' requests", async () => {
    const client = await newClient(f, 'signin-fault');
    f.emulator.setFaults({ serverErrorShare: 1 });
    try {
      expect((await tokenFor(f, client)).status).toBe(500);
    } finally {
      f.emulator.setFaults(NO_FAULTS);
    }
    const assertion = await clientAssertion(f.emulator.tokenEndpoint, client.appId, client.cert);
    const other = await postForm(f.emulator, assertionForm(client.appId, assertion), {
      url: `${f.emulator.url}/contoso.example/oauth2/v2.0/token`,
    });
    expect(other.json().error_codes).toEqual([90002]);
    expect(await listFor(client.appId)).toEqual([]);
    expect((await tokenFor(f, client)).status).toBe(200);
    expect(await listFor(client.appId)).toHaveLength(1);
  });
});

describe('GET /graph/beta/auditLogs/signIns', () => {
  it('without a signInEventTypes clause lists interactive user sign-ins only (none), as Graph does; v1.0 has none', async () => {
    const client = await newClient(f, 'signin-default');
    expect((await tokenFor(f, client)).status).toBe(200);
    for (const [query, version] of [
      ['', 'beta'],
      [`?$filter=${encodeURIComponent(`appId eq '${client.appId}'`)}`, 'beta'],
      ['', 'v1.0'],
      [`?$filter=${encodeURIComponent(`appId eq '${client.appId}'`)}`, 'v1.0'],
    ] as const) {
      const res = await signIns(query, { version });
      expect(res.status, res.text).toBe(200);
      expect(res.json()).toEqual({
        '@odata.context': `${f.emulator.url}/graph/${version}/$metadata#auditLogs/signIns`,
        value: [],
      });
    }
    const v1 = await signIns(`?$filter=${encodeURIComponent(SP_FILTER)}`, { version: 'v1.0' });
    expect(expectGraphError(v1, 400, 'BadRequest').message).toContain("property named 'signInEventTypes'");
  });

  it('filters by result and time, pages with $top and @odata.nextLink, and gets one by id', async () => {
    const client = await newClient(f, 'signin-filters');
    const since = new Date(Date.now() - 1000).toISOString();
    const stranger = createSelfSignedCertificate({ commonName: 'stranger' });
    for (const cert of [client.cert, stranger, client.cert, stranger, stranger]) {
      const assertion = await clientAssertion(f.emulator.tokenEndpoint, client.appId, cert);
      await postForm(f.emulator, assertionForm(client.appId, assertion));
    }
    expect(await listFor(client.appId)).toHaveLength(5);
    expect(await listFor(client.appId, ' and status/errorCode eq 0')).toHaveLength(2);
    expect(await listFor(client.appId, ' and status/errorCode ne 0')).toHaveLength(3);
    expect(await listFor(client.appId, ' and status/errorCode eq 700027')).toHaveLength(3);
    expect(await listFor(client.appId, ` and createdDateTime ge ${since}`)).toHaveLength(5);
    expect(await listFor(client.appId, ' and createdDateTime lt 2020-01-01T00:00:00Z')).toHaveLength(0);
    expect(await listFor(client.appId.toUpperCase())).toHaveLength(5);

    const all = await listFor(client.appId);
    const times = all.map((e) => Date.parse(e.createdDateTime as string));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    const pages: string[][] = [];
    let next: string | undefined =
      `${f.emulator.url}/graph/beta/auditLogs/signIns?$top=2&$filter=${encodeURIComponent(`${SP_FILTER} and appId eq '${client.appId}'`)}`;
    while (next) {
      const res = await https(f.emulator, next, { headers: { authorization: `Bearer ${adminToken()}` } });
      expect(res.status, res.text).toBe(200);
      const body = res.json() as { value: SignIn[]; '@odata.nextLink'?: string };
      pages.push(body.value.map((e) => e.id as string));
      next = body['@odata.nextLink'];
    }
    expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
    expect(pages.flat()).toEqual(all.map((e) => e.id));

    const selected = await signIns(
      `?$select=appId,status&$filter=${encodeURIComponent(`${SP_FILTER} and appId eq '${client.appId}'`)}`,
    );
    expect((selected.json() as { value: SignIn[] }).value.map((e) => Object.keys(e).sort())).toEqual(
      Array(5).fill(['appId', 'id', 'status']),
    );

    const one = await signIns(`/${all[0]!.id}`);
    expect(one.status, one.text).toBe(200);
    expect(one.json()).toMatchObject({ id: all[0]!.id, appId: client.appId });
    expectGraphError(await signIns('/00000000-0000-0000-0000-000000000000'), 404, 'Request_ResourceNotFound');
  });

  it('refuses what it does not support with a 400 naming it, never ignoring it', async () => {
    const cases: [string, string][] = [
      [`?$filter=${encodeURIComponent(`${SP_FILTER} and userId eq 'x'`)}`, "userId eq 'x'"],
      [`?$filter=${encodeURIComponent(`${SP_FILTER} or status/errorCode eq 0`)}`, 'or status/errorCode'],
      ['?$top=0', 'page size'],
      ['?$top=1001', 'page size'],
      ['?$skiptoken=abc', '$skiptoken'],
      ['?$orderby=appId', '$orderby'],
      ['?$count=true', '$count'],
      ['?$search=x', '$search'],
    ];
    for (const [query, named] of cases) {
      const res = await signIns(query);
      expect(res.status, `${query}: ${res.text}`).toBe(400);
      expect((res.json() as { error: { message: string } }).error.message).toContain(named);
    }
    expectGraphError(
      await signIns(`?$filter=${encodeURIComponent("appId eq 'x' or appId eq 'y'")}`),
      400,
      'Request_UnsupportedQuery',
    );
  });

  it('needs AuditLog.Read.All: 401 without a token, 403 with Application permissions only, 200 with it alone', async () => {
    expectGraphError(await signIns('', { token: null }), 401, 'InvalidAuthenticationToken');
    const foreign = await https(f.emulator, `${f.emulator.url}/graph/beta/auditLogs/signIns`, {
      headers: { authorization: `Bearer ${adminToken()}`, origin: 'https://attacker.example' },
    });
    expect(foreign.status).toBe(403);
    expect(foreign.json()).toMatchObject({ error: { code: 'Authorization_RequestDenied' } });
    const appsOnly = await graphTokenWith(f, 'Application.ReadWrite.All', 'Application.Read.All');
    expectGraphError(await signIns('', { token: appsOnly }), 403, 'Authorization_RequestDenied');
    expectGraphError(
      await signIns('', { token: appsOnly, version: 'v1.0' }),
      403,
      'Authorization_RequestDenied',
    );
    const auditor = await graphTokenWith(f, 'AuditLog.Read.All');
    expect((await signIns(`?$filter=${encodeURIComponent(SP_FILTER)}`, { token: auditor })).status).toBe(200);
    // ...and it reads nothing else.
    expectGraphError(
      await https(f.emulator, `${f.emulator.graphUrl}/applications`, {
        headers: { authorization: `Bearer ${auditor}` },
      }),
      403,
      'Authorization_RequestDenied',
    );
    expectGraphError(
      await https(f.emulator, `${f.emulator.url}/graph/beta/applications`, {
        headers: { authorization: `Bearer ${adminToken()}` },
      }),
      400,
      'BadRequest',
    );
  });
});

it('never holds a token, an assertion, a secret or a key, and is counted in /metrics', async () => {
  const client = await newClient(f, 'signin-secrets');
  const password = await f.graph.addPassword(client.objectId, 'leak check');
  const stranger = createSelfSignedCertificate({ commonName: 'stranger' });
  const used: string[] = [password.secretText!, f.emulator.admin.clientSecret];
  for (const cert of [client.cert, stranger]) {
    const assertion = await clientAssertion(f.emulator.tokenEndpoint, client.appId, cert);
    used.push(assertion, assertion.split('.')[2]!);
    const res = await postForm(f.emulator, assertionForm(client.appId, assertion));
    if (res.status === 200) used.push(String(res.json().access_token));
  }
  for (const secret of [password.secretText!, 'not-the-secret']) {
    const res = await postForm(f.emulator, {
      grant_type: 'client_credentials',
      client_id: client.appId,
      client_secret: secret,
      scope: `${API_URI}/.default`,
    });
    used.push(secret);
    if (res.status === 200) used.push(String(res.json().access_token));
  }
  used.push(adminToken(), decodeJwt(adminToken()).payload.uti as string);
  for (const pem of [client.cert.privateKeyPem, stranger.privateKeyPem])
    used.push(pem.split('\n').slice(1, 3).join(''));

  expect(await listFor(client.appId)).toHaveLength(4);
  const res = await signIns(`?$filter=${encodeURIComponent(SP_FILTER)}`);
  const raw = [res.text, JSON.stringify([...f.emulator.signInLog.newestFirst()])].join('\n');
  for (const value of used) {
    expect(value.length).toBeGreaterThan(10);
    expect(raw.includes(value), `the log holds ${value.slice(0, 12)}…`).toBe(false);
  }

  const metrics = (await https(f.emulator, `${f.emulator.url}/metrics`)).text;
  const count = (result: string) =>
    Number(
      new RegExp(`^entra_emulator_sign_ins_total\\{result="${result}"\\} (\\d+)$`, 'm').exec(metrics)?.[1],
    );
  expect(count('success')).toBeGreaterThanOrEqual(2);
  expect(count('failure')).toBeGreaterThanOrEqual(2);
  expect(metrics).toMatch(
    new RegExp(`^entra_emulator_sign_in_log_entries ${f.emulator.signInLog.size}$`, 'm'),
  );
  expect(metrics).toMatch(/^entra_emulator_sign_in_log_dropped_total 0$/m);
});
