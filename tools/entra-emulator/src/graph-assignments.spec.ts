/**
 * App role assignments in both of Graph's views, the permission that guards them, application
 * deletion and the app role lifecycle: real HTTPS against a started emulator, real certificates.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSelfSignedCertificate, type CertificateAndKey } from '@certflow/certs';
import { GRAPH_APP_ID, GRAPH_ROLE_IDS, type GraphRoleValue } from './directory';
import type { GraphAppRole } from './graph-client';
import { statePath } from './state-store';
import {
  assertionForm,
  clientAssertion,
  decodeJwt,
  https,
  postForm,
  startFixture,
  type Fixture,
} from './emulator.test-helpers';

let f: Fixture;
let adminToken: string;
beforeAll(async () => {
  f = await startFixture();
  adminToken = await f.graph.accessToken();
});
afterAll(async () => {
  await f?.close();
});

const graph = (method: string, path: string, body?: unknown, token = adminToken) =>
  https(f.emulator, `${f.emulator.graphUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

function expectGraphError(res: Awaited<ReturnType<typeof graph>>, status: number, code: string): string {
  expect(res.status, res.text).toBe(status);
  const { error } = res.json() as { error: { code: string; message: string } };
  expect(error.code).toBe(code);
  return error.message;
}

const state = () => readFileSync(statePath(f.stateDir), 'utf8');
const api = () => f.provisioned.api;
const roleId = (value: string) => api().roleIds[value]!;

interface Client {
  appId: string;
  objectId: string;
  spId: string;
  cert: CertificateAndKey;
}

/** A new application with a service principal and a registered certificate. */
async function newClient(name: string): Promise<Client> {
  const app = await f.graph.createApplication({ displayName: `${name}-${randomUUID().slice(0, 8)}` });
  const sp = await f.graph.createServicePrincipal(app.appId);
  const cert = createSelfSignedCertificate({ commonName: name });
  await f.graph.addCertificate(app.id, cert.certificatePem);
  return { appId: app.appId, objectId: app.id, spId: sp.id, cert };
}

/** A client's token response for `scope` (the orders API unless told). */
async function tokenFor(client: Client, scope?: string) {
  const assertion = await clientAssertion(f.emulator.tokenEndpoint, client.appId, client.cert);
  return postForm(f.emulator, assertionForm(client.appId, assertion, scope));
}

async function apiRoles(client: Client): Promise<unknown> {
  const res = await tokenFor(client);
  expect(res.status, res.text).toBe(200);
  return decodeJwt(String(res.json().access_token)).payload.roles;
}

/** A Graph token for a new client holding exactly these Microsoft Graph permissions. */
async function graphTokenWith(...permissions: GraphRoleValue[]): Promise<string> {
  const client = await newClient('graph-caller');
  const graphSp = await f.graph.findServicePrincipalByAppId(GRAPH_APP_ID);
  for (const permission of permissions)
    await f.graph.assignAppRole({
      principalId: client.spId,
      resourceId: graphSp!.id,
      appRoleId: GRAPH_ROLE_IDS[permission],
    });
  const res = await tokenFor(client, 'https://graph.microsoft.com/.default');
  expect(res.status, res.text).toBe(200);
  const token = String(res.json().access_token);
  expect(decodeJwt(token).payload.roles ?? []).toEqual(permissions);
  return token;
}

const assignedTo = (resourceId: string) => `/servicePrincipals/${resourceId}/appRoleAssignedTo`;
const assignmentsOf = (principalId: string) => `/servicePrincipals/${principalId}/appRoleAssignments`;

describe("the client's view: /servicePrincipals/{id}/appRoleAssignments", () => {
  it('lists, grants and revokes the roles a client holds; the token follows', async () => {
    const partner = f.provisioned.partner;
    const listed = await graph('GET', assignmentsOf(partner.servicePrincipalId));
    expect(listed.status, listed.text).toBe(200);
    expect(listed.json()).toEqual({
      '@odata.context': `${f.emulator.graphUrl}/$metadata#servicePrincipals('${partner.servicePrincipalId}')/appRoleAssignments`,
      value: [
        {
          id: expect.any(String),
          deletedDateTime: null,
          appRoleId: roleId('Orders.Read'),
          createdDateTime: expect.any(String),
          principalDisplayName: 'contoso-partner',
          principalId: partner.servicePrincipalId,
          principalType: 'ServicePrincipal',
          resourceDisplayName: 'orders API',
          resourceId: api().servicePrincipalId,
        },
      ],
    });

    const client = await newClient('client-view');
    const body = {
      principalId: client.spId,
      resourceId: api().servicePrincipalId,
      appRoleId: roleId('Orders.Write'),
    };
    const created = await graph('POST', assignmentsOf(client.spId), body);
    expect(created.status, created.text).toBe(201);
    const assignment = created.json();
    expect(assignment).toMatchObject({
      ...body,
      '@odata.context': `${f.emulator.graphUrl}/$metadata#servicePrincipals('${client.spId}')/appRoleAssignments/$entity`,
    });
    const id = String(assignment.id);
    expect((await graph('GET', `${assignmentsOf(client.spId)}/${id}`)).json().appRoleId).toBe(
      roleId('Orders.Write'),
    );
    // The same assignment, seen from the resource.
    const ofResource = (await graph('GET', assignedTo(api().servicePrincipalId))).json().value as {
      id: string;
    }[];
    expect(ofResource.map((a) => a.id)).toContain(id);
    expect(await apiRoles(client)).toEqual(['Orders.Write']);

    // Not visible from the wrong side: the API is not the principal of this assignment.
    expectGraphError(
      await graph('DELETE', `${assignmentsOf(api().servicePrincipalId)}/${id}`),
      404,
      'Request_ResourceNotFound',
    );
    const revoked = await graph('DELETE', `${assignmentsOf(client.spId)}/${id}`);
    expect(revoked.status, revoked.text).toBe(204);
    expect(revoked.text).toBe('');
    expect((await graph('GET', assignmentsOf(client.spId))).json().value).toEqual([]);
    expect(decodeJwt(String((await tokenFor(client)).json().access_token)).payload.roles).toBeUndefined();
    expectGraphError(
      await graph('DELETE', `${assignmentsOf(client.spId)}/${id}`),
      404,
      'Request_ResourceNotFound',
    );
    expectGraphError(
      await graph('GET', `${assignmentsOf(client.spId)}/${id}`),
      404,
      'Request_ResourceNotFound',
    );
  });

  it('refuses a body that does not name the URL as its principal, or lacks an id, and changes nothing', async () => {
    const client = await newClient('bad-bodies');
    const other = await newClient('someone-else');
    const good = {
      principalId: client.spId,
      resourceId: api().servicePrincipalId,
      appRoleId: roleId('Orders.Read'),
    };
    const before = state();
    const bad: [Record<string, unknown>, string][] = [
      [
        { ...good, principalId: other.spId },
        "Property 'principalId' must be the id of the service principal",
      ],
      [{ resourceId: good.resourceId, appRoleId: good.appRoleId }, "'principalId' is required"],
      [{ principalId: good.principalId, appRoleId: good.appRoleId }, "'resourceId' is required"],
      [{ ...good, appRoleId: 'Orders.Read' }, "'appRoleId' is required and must be a GUID"],
      [{ ...good, resourceId: randomUUID() }, 'does not exist'],
      [{ ...good, principalType: 'User' }, "Property 'principalType'"],
    ];
    for (const [body, message] of bad)
      expect(
        expectGraphError(await graph('POST', assignmentsOf(client.spId), body), 400, 'Request_BadRequest'),
      ).toContain(message);
    expectGraphError(await graph('POST', assignmentsOf(randomUUID()), good), 404, 'Request_ResourceNotFound');
    // The resource's view holds its own side to the same rule.
    expect(
      expectGraphError(
        await graph('POST', assignedTo(api().servicePrincipalId), { ...good, resourceId: other.spId }),
        400,
        'Request_BadRequest',
      ),
    ).toContain("Property 'resourceId' must be the id of the service principal");
    expect(state()).toBe(before);
  });
});

describe("the resource's view: DELETE /servicePrincipals/{id}/appRoleAssignedTo/{id}", () => {
  it('revokes one grant; an unknown or foreign assignment id is 404 and changes nothing', async () => {
    const client = await newClient('resource-view');
    const read = await f.graph.assignAppRole({
      principalId: client.spId,
      resourceId: api().servicePrincipalId,
      appRoleId: roleId('Orders.Read'),
    });
    await f.graph.assignAppRole({
      principalId: client.spId,
      resourceId: api().servicePrincipalId,
      appRoleId: roleId('Orders.Write'),
    });
    expect(await apiRoles(client)).toEqual(['Orders.Read', 'Orders.Write']);

    const before = state();
    expectGraphError(
      await graph('DELETE', `${assignedTo(api().servicePrincipalId)}/${'A'.repeat(43)}`),
      404,
      'Request_ResourceNotFound',
    );
    // The client is the principal, not the resource, of this assignment.
    expectGraphError(
      await graph('DELETE', `${assignedTo(client.spId)}/${read.id}`),
      404,
      'Request_ResourceNotFound',
    );
    expectGraphError(
      await graph('PUT', `${assignedTo(api().servicePrincipalId)}/${read.id}`, {}),
      405,
      'Request_BadRequest',
    );
    expect(state()).toBe(before);

    await f.graph.removeAppRoleAssignment(read);
    expect(await apiRoles(client)).toEqual(['Orders.Write']);
    expect((await f.graph.listAppRoleAssignments(client.spId)).map((a) => a.appRoleId)).toEqual([
      roleId('Orders.Write'),
    ]);
    expect((await f.graph.listAppRoleAssignedTo(api().servicePrincipalId)).map((a) => a.id)).not.toContain(
      read.id,
    );
  });
});

describe('AppRoleAssignment.ReadWrite.All', () => {
  it('is needed to grant and revoke; Application.ReadWrite.All alone reads but is refused with 403', async () => {
    const client = await newClient('guarded');
    const body = {
      principalId: client.spId,
      resourceId: api().servicePrincipalId,
      appRoleId: roleId('Orders.Read'),
    };
    const existing = await f.graph.assignAppRole({ ...body, appRoleId: roleId('Orders.Write') });
    const paths = {
      grantTo: assignedTo(api().servicePrincipalId),
      grantOf: assignmentsOf(client.spId),
      revokeTo: `${assignedTo(api().servicePrincipalId)}/${existing.id}`,
      revokeOf: `${assignmentsOf(client.spId)}/${existing.id}`,
    };
    const refusedWrites = async (token: string) => {
      const before = state();
      for (const [method, path] of [
        ['POST', paths.grantTo],
        ['POST', paths.grantOf],
        ['DELETE', paths.revokeTo],
        ['DELETE', paths.revokeOf],
      ] as const)
        expectGraphError(
          await graph(method, path, method === 'POST' ? body : undefined, token),
          403,
          'Authorization_RequestDenied',
        );
      expect(state()).toBe(before);
    };

    for (const readOnly of [
      await graphTokenWith('Application.ReadWrite.All'),
      await graphTokenWith('Application.Read.All'),
    ]) {
      expect((await graph('GET', paths.grantTo, undefined, readOnly)).status).toBe(200);
      expect((await graph('GET', paths.grantOf, undefined, readOnly)).status).toBe(200);
      await refusedWrites(readOnly);
    }

    // Alone it may revoke, but not read (listing needs Application.Read.All) nor grant (needs both).
    const assignOnly = await graphTokenWith('AppRoleAssignment.ReadWrite.All');
    expectGraphError(
      await graph('GET', paths.grantOf, undefined, assignOnly),
      403,
      'Authorization_RequestDenied',
    );
    expectGraphError(
      await graph('POST', paths.grantOf, body, assignOnly),
      403,
      'Authorization_RequestDenied',
    );
    expect((await graph('DELETE', paths.revokeOf, undefined, assignOnly)).status).toBe(204);

    const assigner = await graphTokenWith('AppRoleAssignment.ReadWrite.All', 'Application.Read.All');
    const granted = await graph('POST', paths.grantOf, body, assigner);
    expect(granted.status, granted.text).toBe(201);
    expect(await apiRoles(client)).toEqual(['Orders.Read']);
    // …and it changes no application.
    expectGraphError(
      await graph('PATCH', `/applications/${client.objectId}`, { displayName: 'renamed' }, assigner),
      403,
      'Authorization_RequestDenied',
    );
    expectGraphError(
      await graph('DELETE', `/applications/${client.objectId}`, undefined, assigner),
      403,
      'Authorization_RequestDenied',
    );
  });
});

describe('DELETE /applications/{id}', () => {
  it('removes the application, its service principal and every assignment it holds or grants', async () => {
    const partner = await newClient('leaving-partner');
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
    const stayer = await newClient('stays');
    await f.graph.assignAppRole({
      principalId: stayer.spId,
      resourceId: leavingSp.id,
      appRoleId: leaving.appRoles[0]!.id,
    });
    expect((await f.graph.listAppRoleAssignments(stayer.spId)).map((a) => a.resourceId)).toEqual([
      leavingSp.id,
    ]);
    expect((await tokenFor(partner)).status).toBe(200);

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
    const refused = await tokenFor(partner);
    expect(refused.status, refused.text).toBe(400);
    expect(refused.json().error_codes).toEqual([700016]);

    // By its appId, as Graph allows; the grants of its roles go with it.
    expect((await graph('DELETE', `/applications(appId='${leaving.appId}')`)).status).toBe(204);
    expect(await f.graph.listAppRoleAssignments(stayer.spId)).toEqual([]);
    expect((await tokenFor(stayer, 'api://leaving/.default')).status).toBe(400);
    expectGraphError(await graph('DELETE', `/applications/${leaving.id}`), 404, 'Request_ResourceNotFound');
  });

  it("refuses to delete the emulator's own admin application, and changes nothing", async () => {
    const before = state();
    const admin = (await f.graph.listApplications()).find((a) => a.appId === f.emulator.admin.clientId)!;
    const message = expectGraphError(
      await graph('DELETE', `/applications/${admin.id}`),
      400,
      'Request_BadRequest',
    );
    expect(message).toContain("the emulator's admin application and cannot be deleted");
    expect(state()).toBe(before);
    expect((await graph('GET', '/applications')).status).toBe(200);
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
    const client = await newClient('role-holder');
    for (const role of roles)
      await f.graph.assignAppRole({ principalId: client.spId, resourceId: sp.id, appRoleId: role.id });
    const scope = 'api://role-lifecycle/.default';
    const rolesInToken = async () =>
      decodeJwt(String((await tokenFor(client, scope)).json().access_token)).payload.roles;
    expect(await rolesInToken()).toEqual(['Kept', 'Doomed']);

    const patchRoles = (appRoles: GraphAppRole[] | typeof roles) =>
      graph('PATCH', `/applications/${app.id}`, { appRoles });
    const before = state();
    expect(
      expectGraphError(await patchRoles([roles[0]!]), 400, 'CannotDeleteOrUpdateEnabledEntitlement'),
    ).toContain('cannot be deleted unless it is disabled first');
    expect(
      expectGraphError(
        await patchRoles([roles[0]!, { ...roles[1]!, value: 'Renamed' }]),
        400,
        'CannotDeleteOrUpdateEnabledEntitlement',
      ),
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
    expect(await rolesInToken()).toEqual(['Kept']);
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
    expect(await rolesInToken()).toEqual(['Kept']);
    await f.graph.removeAppRoleAssignment(dangling!);
    expect((await f.graph.listAppRoleAssignedTo(sp.id)).map((a) => a.appRoleId)).toEqual([roles[0]!.id]);
  });
});
