/**
 * App role assignments in both of Graph's views and the permission that guards them: real
 * HTTPS against a started emulator, real certificates, tokens checked after every change.
 */
import { describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { statePath } from './state-store';
import {
  expectGraphError,
  assignedTo,
  assignmentsOf,
  useGraphFixture,
  graphTokenWith,
  newClient,
  rolesInToken,
} from './graph.test-helpers';

const { f, graph } = useGraphFixture();
const state = () => readFileSync(statePath(f.stateDir), 'utf8');
const api = () => f.provisioned.api;
const roleId = (value: string) => api().roleIds[value]!;

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

    const client = await newClient(f, 'client-view');
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
    expect(await rolesInToken(f, client)).toEqual(['Orders.Write']);

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
    expect(await rolesInToken(f, client)).toBeUndefined();
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

  it('$filter by resourceId, principalId or appRoleId (any case), $select; other filters are refused', async () => {
    const partner = f.provisioned.partner.servicePrincipalId;
    const query = (q: string) => graph('GET', `${assignmentsOf(partner)}?${q}`);
    const byResource = encodeURIComponent(`resourceId eq '${api().servicePrincipalId.toUpperCase()}'`);
    expect((await query(`$filter=${byResource}`)).json().value).toHaveLength(1);
    const none = encodeURIComponent(`appRoleId eq '${roleId('Orders.Write')}'`);
    expect((await query(`$filter=${none}`)).json().value).toEqual([]);
    const selected = (await query('$select=appRoleId')).json().value as Record<string, unknown>[];
    expect(selected.map((a) => Object.keys(a).sort())).toEqual([['appRoleId', 'id']]);
    const unsupported = encodeURIComponent("principalDisplayName eq 'contoso-partner'");
    expectGraphError(await query(`$filter=${unsupported}`), 400, 'Request_UnsupportedQuery');
  });

  it('refuses a body that does not name the URL as its principal, or lacks an id, and changes nothing', async () => {
    const client = await newClient(f, 'bad-bodies');
    const other = await newClient(f, 'someone-else');
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
        expectGraphError(await graph('POST', assignmentsOf(client.spId), body), 400, 'Request_BadRequest')
          .message,
      ).toContain(message);
    expectGraphError(await graph('POST', assignmentsOf(randomUUID()), good), 404, 'Request_ResourceNotFound');
    // The resource's view holds its own side to the same rule.
    expect(
      expectGraphError(
        await graph('POST', assignedTo(api().servicePrincipalId), { ...good, resourceId: other.spId }),
        400,
        'Request_BadRequest',
      ).message,
    ).toContain("Property 'resourceId' must be the id of the service principal");
    expect(state()).toBe(before);
  });
});

describe("the resource's view: DELETE /servicePrincipals/{id}/appRoleAssignedTo/{id}", () => {
  it('revokes one grant; an unknown or foreign assignment id is 404 and changes nothing', async () => {
    const client = await newClient(f, 'resource-view');
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
    expect(await rolesInToken(f, client)).toEqual(['Orders.Read', 'Orders.Write']);

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
    expect(await rolesInToken(f, client)).toEqual(['Orders.Write']);
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
    const client = await newClient(f, 'guarded');
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
      await graphTokenWith(f, 'Application.ReadWrite.All'),
      await graphTokenWith(f, 'Application.Read.All'),
    ]) {
      expect((await graph('GET', paths.grantTo, undefined, readOnly)).status).toBe(200);
      expect((await graph('GET', paths.grantOf, undefined, readOnly)).status).toBe(200);
      await refusedWrites(readOnly);
    }

    // Alone it may revoke, but not read (listing needs Application.Read.All) nor grant (needs both).
    const assignOnly = await graphTokenWith(f, 'AppRoleAssignment.ReadWrite.All');
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

    const assigner = await graphTokenWith(f, 'AppRoleAssignment.ReadWrite.All', 'Application.Read.All');
    const granted = await graph('POST', paths.grantOf, body, assigner);
    expect(granted.status, granted.text).toBe(201);
    expect(await rolesInToken(f, client)).toEqual(['Orders.Read']);
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
