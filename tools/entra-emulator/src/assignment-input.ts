/**
 * Validation of app role assignment bodies, for both of Graph's views of an assignment:
 * `POST /servicePrincipals/{resource}/appRoleAssignedTo` (the resource's) and
 * `POST /servicePrincipals/{principal}/appRoleAssignments` (the client's).
 */
import { isGuid } from '@certflow/claims';
import { graphErrors } from './graph-errors';

export interface AssignmentInput {
  principalId: string;
  resourceId: string;
  appRoleId: string;
}

/** The property naming the service principal in the URL: `principalId` or `resourceId`. */
export type AssignmentSide = 'principalId' | 'resourceId';

/** Which side a service principal's navigation property shows: `appRoleAssignments` or `appRoleAssignedTo`. */
export function assignmentSide(navigation: string | undefined): AssignmentSide | undefined {
  if (navigation === 'appRoleAssignments') return 'principalId';
  if (navigation === 'appRoleAssignedTo') return 'resourceId';
  return undefined;
}

const KNOWN = new Set(['principalId', 'resourceId', 'appRoleId', '@odata.type']);

/**
 * The assignment requested by `body` for the service principal `urlId`. As in Graph, all three
 * ids are required, and the one on `side` must name the service principal in the URL.
 */
export function parseAssignmentBody(body: unknown, urlId: string, side: AssignmentSide): AssignmentInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw graphErrors.badRequest('The request body must be a JSON object.');
  const input = body as Record<string, unknown>;
  for (const name of Object.keys(input)) {
    if (!KNOWN.has(name)) throw graphErrors.unsupportedProperty(name.slice(0, 60), 'appRoleAssignment');
  }
  const guid = (name: keyof AssignmentInput): string => {
    const value = input[name];
    if (!isGuid(value)) throw graphErrors.badRequest(`Property '${name}' is required and must be a GUID.`);
    return value.toLowerCase();
  };
  const assignment = {
    principalId: guid('principalId'),
    resourceId: guid('resourceId'),
    appRoleId: guid('appRoleId'),
  };
  if (assignment[side] !== urlId.toLowerCase())
    throw graphErrors.badRequest(
      `Property '${side}' must be the id of the service principal in the request URL (${urlId}).`,
    );
  return assignment;
}
