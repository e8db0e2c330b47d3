/** Directory objects rendered the way Microsoft Graph v1.0 returns them. */
import type { Directory } from './directory';
import type {
  StoredApplication,
  StoredAppRoleAssignment,
  StoredKeyCredential,
  StoredPasswordCredential,
  StoredServicePrincipal,
} from './state-store';

/** Microsoft's own tenant, owner of first-party service principals such as Microsoft Graph. */
const MICROSOFT_TENANT_ID = 'f8cdef31-a31e-4b4a-93e4-5f571e91255a';

export function keyCredentialView(cred: StoredKeyCredential, includeKey: boolean): Record<string, unknown> {
  return {
    customKeyIdentifier: cred.customKeyIdentifier,
    displayName: cred.displayName,
    endDateTime: cred.endDateTime,
    // Graph returns the certificate only for `$select=keyCredentials` on a single object.
    key: includeKey ? cred.key : null,
    keyId: cred.keyId,
    startDateTime: cred.startDateTime,
    type: cred.type,
    usage: cred.usage,
  };
}

export function passwordCredentialView(
  cred: StoredPasswordCredential,
  secretText: string | null = null,
): Record<string, unknown> {
  return {
    customKeyIdentifier: null,
    displayName: cred.displayName,
    endDateTime: cred.endDateTime,
    hint: cred.hint,
    keyId: cred.keyId,
    secretText,
    startDateTime: cred.startDateTime,
  };
}

export function applicationView(app: StoredApplication, includeKeys: boolean): Record<string, unknown> {
  return {
    id: app.id,
    deletedDateTime: null,
    appId: app.appId,
    createdDateTime: app.createdDateTime,
    description: app.description,
    displayName: app.displayName,
    identifierUris: app.identifierUris,
    signInAudience: app.signInAudience,
    tags: app.tags,
    api: {
      acceptMappedClaims: null,
      knownClientApplications: [],
      requestedAccessTokenVersion: app.api.requestedAccessTokenVersion,
      oauth2PermissionScopes: [],
      preAuthorizedApplications: [],
    },
    appRoles: app.appRoles.map((r) => ({ ...r, origin: 'Application' })),
    keyCredentials: app.keyCredentials.map((k) => keyCredentialView(k, includeKeys)),
    passwordCredentials: app.passwordCredentials.map((p) => passwordCredentialView(p)),
  };
}

export function servicePrincipalView(
  sp: StoredServicePrincipal,
  directory: Directory,
): Record<string, unknown> {
  return {
    id: sp.id,
    deletedDateTime: null,
    accountEnabled: true,
    appDisplayName: sp.displayName,
    appId: sp.appId,
    appOwnerOrganizationId: sp.builtIn ? MICROSOFT_TENANT_ID : directory.tenant.id,
    appRoleAssignmentRequired: false,
    createdDateTime: sp.createdDateTime,
    displayName: sp.displayName,
    servicePrincipalNames: directory.servicePrincipalNames(sp),
    servicePrincipalType: 'Application',
    tags: [],
    appRoles: directory.appRolesOf(sp).map((r) => ({ ...r, origin: 'Application' })),
    keyCredentials: [],
    passwordCredentials: [],
  };
}

export function appRoleAssignmentView(
  a: StoredAppRoleAssignment,
  directory: Directory,
): Record<string, unknown> {
  return {
    id: a.id,
    deletedDateTime: null,
    appRoleId: a.appRoleId,
    createdDateTime: a.createdDateTime,
    principalDisplayName: directory.servicePrincipal(a.principalId)?.displayName ?? null,
    principalId: a.principalId,
    principalType: 'ServicePrincipal',
    resourceDisplayName: directory.servicePrincipal(a.resourceId)?.displayName ?? null,
    resourceId: a.resourceId,
  };
}

/** Graph's `$select`: `id` plus the named properties. */
export function project(
  view: Record<string, unknown>,
  select: string[] | undefined,
): Record<string, unknown> {
  if (!select) return view;
  return Object.fromEntries(Object.entries(view).filter(([name]) => name === 'id' || select.includes(name)));
}
