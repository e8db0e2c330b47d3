import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { startEmulator } from './emulator';
import { GRAPH_APP_ID, GRAPH_ROLE_IDS } from './directory';
import { ARM_APP_ID, FIRST_PARTY_RESOURCES, KEY_VAULT_APP_ID, STORAGE_APP_ID } from './first-party';
import { GraphClient, GraphRequestError } from './graph-client';
import { statePath, type EmulatorState } from './state-store';
import {
  assertionForm,
  clientAssertion,
  decodeJwt,
  postForm,
  removeDir,
  startFixture,
  tempStateDir,
  type Fixture,
} from './emulator.test-helpers';

const MICROSOFT_TENANT = 'f8cdef31-a31e-4b4a-93e4-5f571e91255a';

describe("Microsoft's first-party resources", () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await startFixture();
  });
  afterAll(() => f.close());

  /** The partner's client-credentials request (certificate) at the v2.0 or the v1 endpoint. */
  async function tokenFor(scopeOrResource: string, v1 = false) {
    const endpoint = v1
      ? f.emulator.tokenEndpoint.replace('/v2.0/token', '/token')
      : f.emulator.tokenEndpoint;
    const assertion = await clientAssertion(endpoint, f.provisioned.partner.appId, f.partnerCert);
    const form = assertionForm(f.provisioned.partner.appId, assertion, scopeOrResource);
    if (v1) {
      delete (form as Partial<typeof form>).scope;
      form.resource = scopeOrResource;
    }
    return postForm(f.emulator, form, { url: endpoint });
  }

  it.each([
    ['https://vault.azure.net/.default', 'https://vault.azure.net', KEY_VAULT_APP_ID],
    ['https://vault.azure.net//.default', 'https://vault.azure.net/', KEY_VAULT_APP_ID],
    ['https://management.azure.com/.default', 'https://management.azure.com', ARM_APP_ID],
    ['https://management.azure.com//.default', 'https://management.azure.com/', ARM_APP_ID],
    ['https://management.core.windows.net//.default', 'https://management.core.windows.net/', ARM_APP_ID],
    ['https://storage.azure.com/.default', 'https://storage.azure.com', STORAGE_APP_ID],
    [`${KEY_VAULT_APP_ID}/.default`, KEY_VAULT_APP_ID, KEY_VAULT_APP_ID],
  ])(
    'v2.0 endpoint, scope %s: a v1 token with aud %s, no roles, without registering anything',
    async (scope, aud) => {
      const res = await tokenFor(scope);
      expect(res.status, res.text).toBe(200);
      const { header, payload } = decodeJwt(res.json().access_token as string);
      expect(payload).toMatchObject({
        aud,
        iss: `https://sts.windows.net/${f.emulator.tenantId}/`,
        appid: f.provisioned.partner.appId,
        appidacr: '2',
        tid: f.emulator.tenantId,
        ver: '1.0',
      });
      expect(payload).not.toHaveProperty('roles');
      expect(payload).not.toHaveProperty('azp');
      expect(header.x5t).toBe(header.kid);
    },
  );

  it('v1 endpoint, resource=https://vault.azure.net: the same token, the resource echoed', async () => {
    const res = await tokenFor('https://vault.azure.net', true);
    expect(res.status, res.text).toBe(200);
    expect(res.json().resource).toBe('https://vault.azure.net');
    const { payload } = decodeJwt(res.json().access_token as string);
    expect(payload).toMatchObject({ aud: 'https://vault.azure.net', ver: '1.0' });
    expect(payload).not.toHaveProperty('roles');
  });

  it('an unknown Microsoft-looking resource is still AADSTS500011', async () => {
    const res = await tokenFor('https://servicebus.azure.net/.default');
    expect(res.status).toBe(400);
    expect(res.json().error_codes).toEqual([500011]);
  });

  it('lists each as a service principal owned by Microsoft, with its names and no app roles', async () => {
    for (const resource of FIRST_PARTY_RESOURCES) {
      const sp = await f.graph.findServicePrincipalByAppId(resource.appId);
      expect(sp, resource.displayName).toMatchObject({
        appId: resource.appId,
        displayName: resource.displayName,
        appOwnerOrganizationId: MICROSOFT_TENANT,
      });
      expect(sp!.servicePrincipalNames).toEqual([...resource.identifiers, resource.appId]);
      if (resource.appId !== GRAPH_APP_ID) expect(sp!.appRoles).toEqual([]);
    }
  });

  it("reserves their identifiers: an application cannot claim Key Vault's", async () => {
    const failure = await f.graph
      .createApplication({ displayName: 'squatter', identifierUris: ['https://vault.azure.net'] })
      .catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(GraphRequestError);
    expect((failure as GraphRequestError).status).toBe(400);
  });

  const refused = async (identifierUris: string[], objectId?: string) => {
    const failure = await (
      objectId
        ? f.graph.updateApplication(objectId, { identifierUris })
        : f.graph.createApplication({ displayName: 'squatter', identifierUris })
    ).catch((err: unknown) => err);
    expect(failure, identifierUris.join()).toBeInstanceOf(GraphRequestError);
    expect((failure as GraphRequestError).status).toBe(400);
    return (failure as GraphRequestError).message;
  };

  it.each([
    'https://graph.microsoft.com:443',
    'HTTPS://Graph.Microsoft.com:443/',
    'https://vault.azure.net:443',
    'https://management.azure.com:443/',
    'https://storage.azure.com',
    'https://graph.microsoft.com.',
    'https://graph.microsoft.com:0443',
    'http://graph.microsoft.com',
    'http://VAULT.azure.net.:80/',
  ])(
    'refuses %s: the same identifier as a first-party resource, after scheme, case, trailing dot, default port and trailing slash',
    async (uri) => {
      expect(await refused([uri])).toContain('same value for property identifierUris');
    },
  );

  it.each(['https://u@graph.microsoft.com', 'https://@graph.microsoft.com', 'api://user:pw@certflow-api'])(
    'refuses %s: no user information in an identifier URI',
    async (uri) => {
      expect(await refused([uri])).toContain('cannot contain user information');
    },
  );

  it("refuses api://<GUID> unless it is the application's own appId: not Key Vault's, not another application's", async () => {
    expect(await refused([`api://${KEY_VAULT_APP_ID}`])).toContain(
      "may only name the application's own appId",
    );
    expect(await refused([`API://${GRAPH_APP_ID.toUpperCase()}/`])).toContain('own appId');
    const app = await f.graph.createApplication({ displayName: 'own api uri' });
    try {
      expect(await refused([`api://${f.provisioned.partner.appId}`], app.id)).toContain(`(${app.appId})`);
      await f.graph.updateApplication(app.id, { identifierUris: [`api://${app.appId}`] });
      expect((await f.graph.getApplication(app.id)).identifierUris).toEqual([`api://${app.appId}`]);
      // Other forms are free, and one on another port is another identifier.
      await f.graph.updateApplication(app.id, {
        identifierUris: [
          `api://${app.appId}`,
          `api://orders/${app.appId}`,
          'https://graph.microsoft.com:8443',
        ],
      });
    } finally {
      await f.graph.deleteApplication(app.id);
    }
  });
});

describe('upgrading a state saved before the first-party resources', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach(removeDir));

  it('adds each missing service principal and the admin its AuditLog.Read.All, once', async () => {
    const dir = tempStateDir();
    dirs.push(dir);
    await (await startEmulator({ stateDir: dir })).close();
    const current = JSON.parse(readFileSync(statePath(dir), 'utf8')) as EmulatorState;
    const auditRole = GRAPH_ROLE_IDS['AuditLog.Read.All'];
    // What an earlier version saved: Microsoft Graph only, without AuditLog.Read.All.
    const old: EmulatorState = {
      ...current,
      servicePrincipals: current.servicePrincipals
        .filter((s) => !s.builtIn || s.appId === GRAPH_APP_ID)
        .map((s) =>
          s.builtIn
            ? {
                ...s,
                builtIn: { ...s.builtIn, appRoles: s.builtIn.appRoles.filter((r) => r.id !== auditRole) },
              }
            : s,
        ),
      appRoleAssignments: current.appRoleAssignments.filter((a) => a.appRoleId !== auditRole),
    };
    writeFileSync(statePath(dir), JSON.stringify(old));

    const upgraded = await startEmulator({ stateDir: dir });
    const saved = JSON.parse(readFileSync(statePath(dir), 'utf8')) as EmulatorState;
    for (const appId of [KEY_VAULT_APP_ID, ARM_APP_ID, STORAGE_APP_ID])
      expect(saved.servicePrincipals.filter((s) => s.appId === appId && s.builtIn)).toHaveLength(1);
    expect(saved.appRoleAssignments.filter((a) => a.appRoleId === auditRole)).toHaveLength(1);
    // What was there is kept as it was (same ids): only additions.
    for (const sp of old.servicePrincipals)
      expect(saved.servicePrincipals).toContainEqual(
        sp.builtIn ? { ...sp, builtIn: { ...sp.builtIn, appRoles: expect.any(Array) } } : sp,
      );

    const graph = await GraphClient.connect(upgraded);
    const roles = decodeJwt(await graph.accessToken()).payload.roles;
    graph.close();
    expect(roles).toContain('AuditLog.Read.All');
    const vault = await postForm(upgraded, {
      grant_type: 'client_credentials',
      client_id: upgraded.admin.clientId,
      client_secret: upgraded.admin.clientSecret,
      scope: 'https://vault.azure.net/.default',
    });
    expect(decodeJwt(vault.json().access_token as string).payload.aud).toBe('https://vault.azure.net');
    await upgraded.close();

    // Loading the upgraded state again changes nothing.
    const before = readFileSync(statePath(dir), 'utf8');
    await (await startEmulator({ stateDir: dir })).close();
    expect(readFileSync(statePath(dir), 'utf8')).toBe(before);
  });
});
