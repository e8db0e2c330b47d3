/** Microsoft Graph-shaped errors: `{"error":{"code":"…","message":"…","innerError":{…}}}`. */
export class GraphError extends Error {
  override readonly name = 'GraphError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const graphErrors = {
  badRequest: (message: string) => new GraphError(400, 'Request_BadRequest', message),
  invalidProperty: (property: string, detail: string) =>
    new GraphError(
      400,
      'Request_BadRequest',
      `Invalid value specified for property '${property}' of resource 'Application'. ${detail}`,
    ),
  unsupportedProperty: (property: string, type: string) =>
    new GraphError(
      400,
      'Request_BadRequest',
      `Property '${property}' is not supported on type 'microsoft.graph.${type}' by this emulator.`,
    ),
  duplicateValue: (property: string) =>
    new GraphError(
      400,
      'Request_MultipleObjectsWithSameKeyValue',
      `Another object with the same value for property ${property} already exists.`,
    ),
  notFound: (id: string) =>
    new GraphError(
      404,
      'Request_ResourceNotFound',
      `Resource '${id}' does not exist or one of its queried reference-property objects are not present.`,
    ),
  unknownSegment: (segment: string) =>
    new GraphError(400, 'BadRequest', `Resource not found for the segment '${segment}'.`),
  methodNotAllowed: () =>
    new GraphError(405, 'Request_BadRequest', 'Specified HTTP method is not allowed for the request uri.'),
  unreadableJson: () =>
    new GraphError(
      400,
      'BadRequest',
      'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.',
    ),
  payloadTooLarge: (limit: number) =>
    new GraphError(413, 'Request_EntityTooLarge', `The request body exceeds ${limit} bytes.`),
  unsupportedFilter: (filter: string) =>
    new GraphError(
      400,
      'Request_UnsupportedQuery',
      `Unsupported or invalid query filter clause specified: ${filter}`,
    ),
  /** Graph's answer to removing an enabled app role, or changing its value. */
  enabledEntitlement: (role: { id: string; value: string }, change: 'deleted' | 'updated') =>
    new GraphError(
      400,
      'CannotDeleteOrUpdateEnabledEntitlement',
      `Property 'appRoles' value ${role.id} ('${role.value.slice(0, 120)}') cannot be ${change} unless it is disabled first: PATCH it with isEnabled false, then ${change === 'deleted' ? 'remove it' : 'change it'} in a second request.`,
    ),
  noToken: () => new GraphError(401, 'InvalidAuthenticationToken', 'Access token is empty.'),
  badToken: (why: string) =>
    new GraphError(401, 'InvalidAuthenticationToken', `Access token validation failure. ${why}`),
  forbidden: () =>
    new GraphError(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.'),
} as const;
