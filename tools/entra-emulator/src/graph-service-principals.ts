/**
 * `/servicePrincipals` of the Graph API, with both views of app role assignments:
 * `appRoleAssignedTo` (granted for the resource) and `appRoleAssignments` (granted to the client).
 */
import { ADMIN_GRAPH_PERMISSIONS } from './bootstrap';
import { assignmentSide, parseAssignmentBody, type AssignmentSide } from './assignment-input';
import { graphErrors } from './graph-errors';
import { entity, filterBy, list, selectOf, type GraphRequest, type Reply } from './graph-route';
import { appRoleAssignmentView, project, servicePrincipalView } from './graph-shapes';
import type { StoredServicePrincipal } from './state-store';

export async function servicePrincipals(r: GraphRequest): Promise<Reply> {
  const [, id, navigation, assignmentId, ...extra] = r.segments;
  if (extra.length > 0) throw graphErrors.unknownSegment(extra[0]!);
  const { directory } = r.ctx;
  const select = selectOf(r.query);
  const context = `${r.graphUrl}/$metadata#servicePrincipals`;
  if (id === undefined) {
    if (r.method === 'GET') {
      const filtered = filterBy(r.query, directory.servicePrincipals(), ['appId', 'displayName']);
      return list(
        context,
        filtered.map((sp) => project(servicePrincipalView(sp, directory), select)),
      );
    }
    if (r.method === 'POST') {
      const body = await r.body();
      if (typeof body !== 'object' || body === null)
        throw graphErrors.badRequest('The request body must be a JSON object.');
      const sp = directory.createServicePrincipal((body as Record<string, unknown>).appId);
      return entity(context, 201, servicePrincipalView(sp, directory));
    }
    throw graphErrors.methodNotAllowed();
  }
  const sp = directory.servicePrincipal(id);
  if (!sp) throw graphErrors.notFound(id);
  if (navigation === undefined) {
    if (r.method !== 'GET') throw graphErrors.methodNotAllowed();
    return entity(context, 200, project(servicePrincipalView(sp, directory), select));
  }
  const side = assignmentSide(navigation);
  if (side === undefined) throw graphErrors.unknownSegment(navigation);
  return assignments(r, sp, navigation, side, assignmentId);
}

/**
 * GET lists, POST grants; with an assignment id, GET reads and DELETE revokes it. Only
 * assignments on the URL's side are visible: an id from the other view is 404.
 */
async function assignments(
  r: GraphRequest,
  sp: StoredServicePrincipal,
  navigation: string,
  side: AssignmentSide,
  assignmentId: string | undefined,
): Promise<Reply> {
  const { directory } = r.ctx;
  const context = `${r.graphUrl}/$metadata#servicePrincipals('${sp.id}')/${navigation}`;
  const select = selectOf(r.query);
  if (assignmentId === undefined) {
    if (r.method === 'GET') {
      const all = side === 'principalId' ? directory.assignmentsOf(sp.id) : directory.assignmentsTo(sp.id);
      const found = filterBy(r.query, all, ['principalId', 'resourceId', 'appRoleId']);
      return list(
        context,
        found.map((a) => project(appRoleAssignmentView(a, directory), select)),
      );
    }
    if (r.method === 'POST') {
      const input = parseAssignmentBody(await r.body(), sp.id, side);
      refuseAdminChange(r, input.principalId);
      const assignment = directory.assignAppRole(input);
      return entity(context, 201, appRoleAssignmentView(assignment, directory));
    }
    throw graphErrors.methodNotAllowed();
  }
  if (r.method !== 'GET' && r.method !== 'DELETE') throw graphErrors.methodNotAllowed();
  const assignment = directory.assignment(sp.id, side, assignmentId);
  if (!assignment) throw graphErrors.notFound(assignmentId);
  if (r.method === 'GET')
    return entity(context, 200, project(appRoleAssignmentView(assignment, directory), select));
  refuseAdminChange(r, assignment.principalId);
  directory.removeAppRoleAssignment(sp.id, side, assignmentId);
  return { status: 204 };
}

/**
 * The roles held by the emulator's own admin application are as protected as the application
 * (graph-api.ts): its Graph permissions cannot be revoked, which would lock every Graph caller
 * using emulator.json out until the next start restores them, and it is granted nothing else.
 */
function refuseAdminChange(r: GraphRequest, principalId: string): void {
  const { directory } = r.ctx;
  const admin = directory.servicePrincipalByAppId(directory.state.adminAppId);
  if (principalId !== admin?.id) return;
  throw graphErrors.badRequest(
    `'${admin.displayName}' is the emulator's own admin application: the emulator refuses every change to the roles it holds. Its Microsoft Graph permissions (${ADMIN_GRAPH_PERMISSIONS.join(', ')}) are what every caller using the admin credentials of emulator.json depends on; grant roles to another application instead.`,
  );
}
