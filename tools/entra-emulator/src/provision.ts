/**
 * Step 1 of the flow in one call: an API app registration exposing app roles (v2 tokens),
 * a partner app registration, service principals for both, and the partner granted roles.
 */
import { randomUUID } from 'node:crypto';
import type { GraphClient } from './graph-client';

export interface ProvisionOptions {
  apiDisplayName: string;
  /** App ID URI, e.g. `api://certflow-orders`; clients ask for `<uri>/.default`. */
  apiIdentifierUri: string;
  roles: string[];
  partnerDisplayName: string;
  /** Roles (values from `roles`) granted to the partner's service principal. */
  grantRoles: string[];
}

export interface ProvisionedApiAndPartner {
  api: {
    objectId: string;
    appId: string;
    identifierUri: string;
    servicePrincipalId: string;
    roleIds: Record<string, string>;
  };
  partner: { objectId: string; appId: string; servicePrincipalId: string };
}

export async function provisionApiAndPartner(
  graph: GraphClient,
  options: ProvisionOptions,
): Promise<ProvisionedApiAndPartner> {
  const unknown = options.grantRoles.filter((r) => !options.roles.includes(r));
  if (unknown.length > 0)
    throw new TypeError(`grantRoles names roles the API does not define: ${unknown.join(', ')}`);

  const roleIds = Object.fromEntries(options.roles.map((value) => [value, randomUUID()]));
  const api = await graph.createApplication({
    displayName: options.apiDisplayName,
    identifierUris: [options.apiIdentifierUri],
    appRoles: options.roles.map((value) => ({
      id: roleIds[value]!,
      value,
      displayName: value,
      description: `Applications holding ${value}`,
      allowedMemberTypes: ['Application'],
      isEnabled: true,
    })),
    // v2 tokens: `aud` is the API's appId and the issuer ends in /v2.0.
    api: { requestedAccessTokenVersion: 2 },
  });
  const apiSp = await graph.createServicePrincipal(api.appId);

  const partner = await graph.createApplication({ displayName: options.partnerDisplayName });
  const partnerSp = await graph.createServicePrincipal(partner.appId);
  for (const role of options.grantRoles) {
    await graph.assignAppRole({ principalId: partnerSp.id, resourceId: apiSp.id, appRoleId: roleIds[role]! });
  }
  return {
    api: {
      objectId: api.id,
      appId: api.appId,
      identifierUri: options.apiIdentifierUri,
      servicePrincipalId: apiSp.id,
      roleIds,
    },
    partner: { objectId: partner.id, appId: partner.appId, servicePrincipalId: partnerSp.id },
  };
}
