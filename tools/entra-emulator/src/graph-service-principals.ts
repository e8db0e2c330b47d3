/**
 * `/servicePrincipals` of the Graph API, with both views of app role assignments:
 * `appRoleAssignedTo` (granted for the resource) and `appRoleAssignments` (granted to the client).
 */
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
      const assignment = directory.assignAppRole(parseAssignmentBody(await r.body(), sp.id, side));
      return entity(context, 201, appRoleAssignmentView(assignment, directory));
    }
    throw graphErrors.methodNotAllowed();
  }
  if (r.method === 'GET') {
    const assignment = directory.assignment(sp.id, side, assignmentId);
    if (!assignment) throw graphErrors.notFound(assignmentId);
    return entity(context, 200, project(appRoleAssignmentView(assignment, directory), select));
  }
  if (r.method === 'DELETE') {
    directory.removeAppRoleAssignment(sp.id, side, assignmentId);
    return { status: 204 };
  }
  throw graphErrors.methodNotAllowed();
}
