/**
 * Deleting applications, and the app role lifecycle Graph enforces (disable, then remove):
 * real HTTPS against a started emulator, tokens checked after every change.
 */
import { describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { GraphAppRole } from './graph-client';
import { statePath } from './state-store';
import { ADMIN_GRAPH_PERMISSIONS } from './bootstrap';
import { GRAPH_APP_ID, GRAPH_ROLE_IDS } from './directory';
import { decodeJwt, https, postForm } from './emulator.test-helpers';
import {
  expectGraphError,
  assignedTo,
  assignmentsOf,
  useGraphFixture,
  newClient,
  rolesInToken,
  tokenFor,
} from './graph.test-helpers';

const { f, graph } = useGraphFixture();
const state = () => readFileSync(statePath(f.stateDir), 'utf8');
const api = () => f.provisioned.api;
const roleId = (value: string) => api().roleIds[value]!;

/** A Graph token just issued to the admin for its client secret (from emulator.json). */
async function newAdminToken(): Promise<string> {
  const token = await postForm(f.emulator, {
    grant_type: 'client_credentials',
    client_id: f.emulator.admin.clientId,
    client_secret: f.emulator.admin.clientSecret,
    scope: 'https://graph.microsoft.com/.default',
  });
  expect(token.status, token.text).toBe(200);
  return String(token.json().access_token);
}

describe('DELETE /applications/{id}', () => {
  it('removes the application, its service principal and every assignment it holds or grants', async () => {
    const partner = await newClient(f, 'leaving-partner');
    await f.graph.assignAppRole({
      principalId: partner.spId,
      resourceId: api().servicePrincipalId,
      appRoleId: roleId('Orders.Read'),
    });
    const leaving = await f.graph.createApplication({
      displayName: 'leaving API',
      identifierUris: ['api://leaving'],
      appRoles: [
        {
          id: randomUUID(),
          value: 'Leaving.Read',
          displayName: 'r',
          description: 'r',
          allowedMemberTypes: ['Application'],
          isEnabled: true,
        },
      ],
      api: { requestedAccessTokenVersion: 2 },
    });
    const leavingSp = await f.graph.createServicePrincipal(leaving.appId);
    const stayer = await newClient(f, 'stays');
    await f.graph.assignAppRole({
      principalId: stayer.spId,
      resourceId: leavingSp.id,
      appRoleId: leaving.appRoles[0]!.id,
    });
    expect((await f.graph.listAppRoleAssignments(stayer.spId)).map((a) => a.resourceId)).toEqual([
      leavingSp.id,
    ]);
    expect((await tokenFor(f, partner)).status).toBe(200);

    const deleted = await graph('DELETE', `/applications/${partner.objectId}`);
    expect(deleted.status, deleted.text).toBe(204);
    expectGraphError(
      await graph('GET', `/applications/${partner.objectId}`),
      404,
      'Request_ResourceNotFound',
    );
    expect(await f.graph.findServicePrincipalByAppId(partner.appId)).toBeUndefined();
    expectGraphError(await graph('GET', assignmentsOf(partner.spId)), 404, 'Request_ResourceNotFound');
    const stillGranted = await f.graph.listAppRoleAssignedTo(api().servicePrincipalId);
    expect(stillGranted.some((a) => a.principalId === partner.spId)).toBe(false);
    const refused = await tokenFor(f, partner);
    expect(refused.status, refused.text).toBe(400);
    expect(refused.json().error_codes).toEqual([700016]);

    // By its appId, as Graph allows; the grants of its roles go with it.
    expect((await graph('DELETE', `/applications(appId='${leaving.appId}')`)).status).toBe(204);
    expect(await f.graph.listAppRoleAssignments(stayer.spId)).toEqual([]);
    expect((await tokenFor(f, stayer, 'api://leaving/.default')).status).toBe(400);
    expectGraphError(await graph('DELETE', `/applications/${leaving.id}`), 404, 'Request_ResourceNotFound');
  });

  it("refuses every change to the emulator's own admin application, changes nothing, and its secret still works", async () => {
    const before = state();
    const admin = (await f.graph.listApplications()).find((a) => a.appId === f.emulator.admin.clientId)!;
    const [secret] = admin.passwordCredentials;
    const id = `/applications/${admin.id}`;
    const changes: [string, string, unknown?][] = [
      ['PATCH', id, { passwordCredentials: [] }],
      ['PATCH', id, { keyCredentials: [] }],
      ['PATCH', id, { tags: ['certflow-topology', 'certflow-topology:partner:contoso'] }],
      ['PATCH', id, { appRoles: [] }],
      ['PATCH', id, { identifierUris: ['api://taken-over'] }],
      ['PATCH', id, { displayName: 'renamed' }],
      ['PATCH', `/applications(appId='${admin.appId}')`, { passwordCredentials: [] }],
      ['POST', `${id}/addPassword`, { passwordCredential: { displayName: 'mine now' } }],
      ['POST', `${id}/removePassword`, { keyId: secret!.keyId }],
      ['POST', `${id}/addKey`, { keyCredential: {}, passwordCredential: null, proof: 'x' }],
      ['POST', `${id}/removeKey`, { keyId: randomUUID(), proof: 'x' }],
      ['DELETE', id],
      ['DELETE', `/applications(appId='${admin.appId}')`],
    ];
    for (const [method, path, body] of changes) {
      const { message } = expectGraphError(await graph(method, path, body), 400, 'Request_BadRequest');
      expect(message, `${method} ${path}`).toContain("is the emulator's own admin application");
      expect(message).toContain('emulator.json');
    }
    expect(state()).toBe(before);
    expect((await graph('GET', id, undefined, await newAdminToken())).status).toBe(200);
  });

  it("refuses revoking the admin's Graph permissions and granting it anything, in both views; its token keeps them", async () => {
    const before = state();
    const adminSp = (await f.graph.findServicePrincipalByAppId(f.emulator.admin.clientId))!;
    const graphSp = (await f.graph.findServicePrincipalByAppId(GRAPH_APP_ID))!;
    const held = await f.graph.listAppRoleAssignments(adminSp.id);
    expect(held.map((a) => a.appRoleId).sort()).toEqual(
      ADMIN_GRAPH_PERMISSIONS.map((p) => GRAPH_ROLE_IDS[p]).sort(),
    );
    const grant = (resourceId: string, appRoleId: string) => ({
      principalId: adminSp.id,
      resourceId,
      appRoleId,
    });
    const changes: [string, string, unknown?][] = [
      ...held.flatMap((a): [string, string][] => [
        ['DELETE', `${assignmentsOf(adminSp.id)}/${a.id}`],
        ['DELETE', `${assignedTo(graphSp.id)}/${a.id}`],
      ]),
      ['POST', assignmentsOf(adminSp.id), grant(graphSp.id, GRAPH_ROLE_IDS['Application.Read.All'])],
      ['POST', assignedTo(graphSp.id), grant(graphSp.id, GRAPH_ROLE_IDS['Application.Read.All'])],
      ['POST', assignedTo(api().servicePrincipalId), grant(api().servicePrincipalId, roleId('Orders.Read'))],
    ];
    for (const [method, path, body] of changes) {
      const { message } = expectGraphError(await graph(method, path, body), 400, 'Request_BadRequest');
      expect(message, `${method} ${path}`).toContain(
        "is the emulator's own admin application: the emulator refuses every change to the roles it holds",
      );
    }
    expect(state()).toBe(before);
    expect(decodeJwt(await newAdminToken()).payload.roles).toEqual(
      expect.arrayContaining([...ADMIN_GRAPH_PERMISSIONS]),
    );
  });

  it('tells the portal which application is the admin, so that it offers no change to it', async () => {
    const res = await https(f.emulator, `${f.emulator.url}/portal/config.json`);
    expect(res.status, res.text).toBe(200);
    expect(res.json()).toMatchObject({ adminAppId: f.emulator.admin.clientId });
    expect(JSON.stringify(res.json())).not.toContain(f.emulator.admin.clientSecret);
  });
});

describe('app roles: disabled before removed, as Graph requires', () => {
  it('CannotDeleteOrUpdateEnabledEntitlement; a disabled or removed role is never in a token', async () => {
    const roles = [
      {
        id: randomUUID(),
        value: 'Kept',
        displayName: 'k',
        description: 'k',
        allowedMemberTypes: ['Application'],
        isEnabled: true,
      },
      {
        id: randomUUID(),
        value: 'Doomed',
        displayName: 'd',
        description: 'd',
        allowedMemberTypes: ['Application'],
        isEnabled: true,
      },
    ];
    const app = await f.graph.createApplication({
      displayName: 'role lifecycle',
      identifierUris: ['api://role-lifecycle'],
      appRoles: roles,
    });
    const sp = await f.graph.createServicePrincipal(app.appId);
    const client = await newClient(f, 'role-holder');
    for (const role of roles)
      await f.graph.assignAppRole({ principalId: client.spId, resourceId: sp.id, appRoleId: role.id });
    const scope = 'api://role-lifecycle/.default';
    const currentRoles = () => rolesInToken(f, client, scope);
    expect(await currentRoles()).toEqual(['Kept', 'Doomed']);

    const patchRoles = (appRoles: GraphAppRole[] | typeof roles) =>
      graph('PATCH', `/applications/${app.id}`, { appRoles });
    const before = state();
    expect(
      expectGraphError(await patchRoles([roles[0]!]), 400, 'CannotDeleteOrUpdateEnabledEntitlement').message,
    ).toContain('cannot be deleted unless it is disabled first');
    expect(
      expectGraphError(
        await patchRoles([roles[0]!, { ...roles[1]!, value: 'Renamed' }]),
        400,
        'CannotDeleteOrUpdateEnabledEntitlement',
      ).message,
    ).toContain('cannot be updated unless it is disabled first');
    // Disabling and renaming in one request is still a change of an enabled role.
    expectGraphError(
      await patchRoles([roles[0]!, { ...roles[1]!, value: 'Renamed', isEnabled: false }]),
      400,
      'CannotDeleteOrUpdateEnabledEntitlement',
    );
    expect(state()).toBe(before);

    // Description changes in place are fine; disabling takes the role out of tokens at once.
    expect(
      (
        await patchRoles([
          { ...roles[0]!, description: 'still kept' },
          { ...roles[1]!, isEnabled: false },
        ])
      ).status,
    ).toBe(204);
    expect(await currentRoles()).toEqual(['Kept']);
    expectGraphError(
      await graph('POST', assignedTo(sp.id), {
        principalId: f.provisioned.partner.servicePrincipalId,
        resourceId: sp.id,
        appRoleId: roles[1]!.id,
      }),
      400,
      'Request_BadRequest',
    );
    const removed = await patchRoles([roles[0]!]);
    expect(removed.status, removed.text).toBe(204);
    // As in Graph the assignment of a removed role stays (dangling) until it is revoked; it grants nothing.
    const dangling = (await f.graph.listAppRoleAssignments(client.spId)).find(
      (a) => a.appRoleId === roles[1]!.id,
    );
    expect(dangling).toBeDefined();
    expect(await currentRoles()).toEqual(['Kept']);
    await f.graph.removeAppRoleAssignment(dangling!);
    expect((await f.graph.listAppRoleAssignedTo(sp.id)).map((a) => a.appRoleId)).toEqual([roles[0]!.id]);
  });
});
