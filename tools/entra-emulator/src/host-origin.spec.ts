/**
 * DNS rebinding and cross-site requests against the emulator over real TLS: a foreign Host gets
 * 421 (connection closed), a cross-site Origin 403, and nothing is done — no token issued, no
 * application created, no fault changed, no page or key served.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCliArgs, UsageError } from './cli';
import { startEmulator } from './emulator';
import {
  assertionForm,
  clientAssertion,
  https,
  startFixture,
  type HttpResult,
  tempStateDir,
  removeDir,
  type Fixture,
} from './emulator.test-helpers';

/**
 * A request whose Host may differ from the name TLS checks: a rebinding page's browser checks the
 * certificate against the attacker's name (and fails), but a client that ignores that must still
 * be refused by the emulator itself. (`https` checks the certificate for localhost.)
 */
const send = (url: string, options: Parameters<typeof https>[2] = {}): Promise<HttpResult> =>
  https(f.emulator, url, options);

let f: Fixture;
let port: string;
beforeAll(async () => {
  f = await startFixture({ allowedHosts: ['login.emulator.test'] });
  port = new URL(f.emulator.url).port;
});
afterAll(async () => {
  await f?.close();
});

const tokensIssued = async () =>
  (await send(`${f.emulator.url}/metrics`)).text
    .split('\n')
    .filter((l) => l.startsWith('entra_emulator_tokens_issued_total{'))
    .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);

const tokenRequest = async (headers: Record<string, string>) =>
  send(f.emulator.tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(
      assertionForm(
        f.provisioned.partner.appId,
        await clientAssertion(f.emulator.tokenEndpoint, f.provisioned.partner.appId, f.partnerCert),
      ),
    ).toString(),
  });

describe('Host and Origin', () => {
  it('a token request under a rebound name or from another site: 421 / 403, no token issued', async () => {
    const before = await tokensIssued();
    const rebound = await tokenRequest({ host: `attacker.example:${port}` });
    expect(rebound.status).toBe(421);
    expect(rebound.headers.connection).toBe('close');
    expect(rebound.json()).toMatchObject({
      error: 'invalid_request',
      error_description: expect.stringContaining('attacker.example'),
    });
    expect(rebound.text).not.toContain('access_token');
    const crossSite = await tokenRequest({ origin: 'https://attacker.example' });
    expect(crossSite.status).toBe(403);
    expect(crossSite.json()).toMatchObject({ error: 'access_denied' });
    expect((await tokenRequest({ 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    expect(await tokensIssued()).toBe(before);

    // The same request under its own names is served.
    expect((await tokenRequest({})).status).toBe(200);
    expect((await tokenRequest({ host: `login.emulator.test:${port}` })).status).toBe(200);
    expect(await tokensIssued()).toBe(before + 2);
  });

  it('Graph and admin requests: refused in Graph error shape, the directory and faults unchanged', async () => {
    const token = await f.graph.accessToken();
    const applications = (await f.graph.listApplications()).length;
    const faults = f.emulator.setFaults({});
    const graph = (headers: Record<string, string>) =>
      send(`${f.emulator.graphUrl}/applications`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ displayName: 'planted by a web page' }),
      });
    const admin = (headers: Record<string, string>) =>
      send(`${f.emulator.url}/admin/faults`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ outage: '503' }),
      });
    for (const call of [graph, admin]) {
      const rebound = await call({
        host: `attacker.example:${port}`,
        origin: `https://attacker.example:${port}`,
      });
      expect(rebound.status).toBe(421);
      expect(rebound.json()).toMatchObject({ error: { code: 'Request_BadRequest' } });
      const crossSite = await call({ origin: 'https://attacker.example' });
      expect(crossSite.status).toBe(403);
      expect(crossSite.json()).toMatchObject({ error: { code: 'Authorization_RequestDenied' } });
      expect((await call({ origin: 'null' })).status).toBe(403);
    }
    expect((await f.graph.listApplications()).length).toBe(applications);
    expect(f.emulator.setFaults({})).toEqual(faults);

    // The portal's own same-origin requests (Origin https://localhost:PORT) keep working.
    const own = await graph({ origin: `https://localhost:${port}`, 'sec-fetch-site': 'same-origin' });
    expect(own.status).toBe(201);
    expect((await f.graph.listApplications()).length).toBe(applications + 1);
  });

  it('the portal, discovery and keys are not served under a foreign name', async () => {
    for (const path of ['/portal/', `/${f.emulator.tenantId}/discovery/v2.0/keys`, '/metrics']) {
      const rebound = await send(`${f.emulator.url}${path}`, {
        headers: { host: `attacker.example:${port}` },
      });
      expect(rebound.status).toBe(421);
      expect(rebound.text).not.toMatch(/<html|"keys"|entra_emulator_/);
      expect((await https(f.emulator, `${f.emulator.url}${path}`)).status).toBe(200);
    }
  });

  it('a configured name must be a host name: refused at start and on the command line', async () => {
    const dir = tempStateDir();
    try {
      await expect(startEmulator({ stateDir: dir, allowedHosts: ['*.example'] })).rejects.toMatchObject({
        code: 'ERR_INVALID_OPTIONS',
        message: expect.stringContaining('allowedHosts'),
      });
    } finally {
      removeDir(dir);
    }
    expect(parseCliArgs(['--allowed-host', 'A.test', '--allowed-host=b.test']).allowedHosts).toEqual([
      'a.test',
      'b.test',
    ]);
    expect(() => parseCliArgs(['--allowed-host', 'a.test:443'])).toThrow(UsageError);
    expect(() => parseCliArgs(['--allowed-host', 'a.test.'])).toThrow(/--allowed-host: allowed host/);
  });
});
