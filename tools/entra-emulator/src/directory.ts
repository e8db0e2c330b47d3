/**
 * The tenant's directory: applications, service principals and app role assignments, with
 * the rules Entra applies to them. Every change is made on a copy, saved atomically, and
 * only then becomes visible, so a failed request (or a failed write) changes nothing.
 */
import type { ApplicationChanges } from './application-input';
import type { AssignmentInput, AssignmentSide } from './assignment-input';
import { generateClientSecret, hashClientSecret } from './client-secrets';
import { graphErrors, GraphError } from './graph-errors';
import { isGuid } from '@certflow/claims';
import { newGuid, opaqueId } from './ids';
import {
  saveState,
  type AppRole,
  type EmulatorState,
  type StoredApplication,
  type StoredAppRoleAssignment,
  type StoredPasswordCredential,
  type StoredServicePrincipal,
  type StoredKeyCredential,
  type StoredSigningKey,
} from './state-store';

export const GRAPH_APP_ID = '00000003-0000-0000-c000-000000000000';
export const GRAPH_RESOURCE = 'https://graph.microsoft.com';
/** Microsoft Graph's real app role ids, so assignments look the same as in a real tenant. */
export const GRAPH_ROLE_IDS = {
  'Application.ReadWrite.All': '1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9',
  'Application.Read.All': '9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30',
  'AppRoleAssignment.ReadWrite.All': '06b708a9-e830-4db3-a914-8e69da51d44f',
  'AuditLog.Read.All': 'b0afded3-3588-46d8-8b3d-9842eff778da',
} as const;
export type GraphRoleValue = keyof typeof GRAPH_ROLE_IDS;
export const ADMIN_DISPLAY_NAME = 'certflow emulator admin';

export interface ResolvedResource {
  servicePrincipal: StoredServicePrincipal;
  appId: string;
  /** The identifier exactly as the client wrote it in the scope (v1 tokens use it as `aud`). */
  requestedIdentifier: string;
  tokenVersion: 1 | 2;
}

export interface NewPassword {
  credential: StoredPasswordCredential;
  secretText: string;
}

export class Directory {
  constructor(
    private readonly stateDir: string,
    private current: EmulatorState,
    private readonly clock: () => Date,
  ) {}

  get state(): Readonly<EmulatorState> {
    return this.current;
  }

  get tenant(): EmulatorState['tenant'] {
    return this.current.tenant;
  }

  application(id: string): StoredApplication | undefined {
    return this.current.applications.find((a) => a.id === id.toLowerCase());
  }

  applicationByAppId(appId: string): StoredApplication | undefined {
    return this.current.applications.find((a) => a.appId === appId.toLowerCase());
  }

  applications(): readonly StoredApplication[] {
    return this.current.applications;
  }

  servicePrincipal(id: string): StoredServicePrincipal | undefined {
    return this.current.servicePrincipals.find((s) => s.id === id.toLowerCase());
  }

  servicePrincipalByAppId(appId: string): StoredServicePrincipal | undefined {
    return this.current.servicePrincipals.find((s) => s.appId === appId.toLowerCase());
  }

  servicePrincipals(): readonly StoredServicePrincipal[] {
    return this.current.servicePrincipals;
  }

  servicePrincipalNames(sp: StoredServicePrincipal): string[] {
    if (sp.builtIn) return sp.builtIn.servicePrincipalNames;
    const app = this.applicationByAppId(sp.appId);
    return [sp.appId, ...(app?.identifierUris ?? [])];
  }

  appRolesOf(sp: StoredServicePrincipal): AppRole[] {
    return sp.builtIn?.appRoles ?? this.applicationByAppId(sp.appId)?.appRoles ?? [];
  }

  /** The resource's view (`appRoleAssignedTo`): every assignment of one of its roles. */
  assignmentsTo(resourceId: string): StoredAppRoleAssignment[] {
    return this.current.appRoleAssignments.filter((a) => a.resourceId === resourceId);
  }

  /** The client's view (`appRoleAssignments`): every role the principal was assigned. */
  assignmentsOf(principalId: string): StoredAppRoleAssignment[] {
    return this.current.appRoleAssignments.filter((a) => a.principalId === principalId);
  }

  createApplication(changes: ApplicationChanges): StoredApplication {
    return this.mutate((draft) => {
      this.assertIdentifierUrisFree(draft, changes.identifierUris ?? [], undefined);
      const app: StoredApplication = {
        id: newGuid(),
        appId: newGuid(),
        displayName: changes.displayName ?? '',
        description: changes.description ?? null,
        signInAudience: changes.signInAudience ?? 'AzureADMyOrg',
        createdDateTime: this.now(),
        identifierUris: changes.identifierUris ?? [],
        appRoles: changes.appRoles ?? [],
        keyCredentials: changes.keyCredentials ?? [],
        passwordCredentials: [],
        api: { requestedAccessTokenVersion: changes.requestedAccessTokenVersion ?? null },
        tags: changes.tags ?? [],
      };
      draft.applications.push(app);
      return app;
    });
  }

  updateApplication(id: string, changes: ApplicationChanges): void {
    this.mutate((draft) => {
      const app = draft.applications.find((a) => a.id === id.toLowerCase());
      if (!app) throw graphErrors.notFound(id);
      if (changes.identifierUris) this.assertIdentifierUrisFree(draft, changes.identifierUris, app.id);
      if (changes.displayName !== undefined) app.displayName = changes.displayName;
      if (changes.description !== undefined) app.description = changes.description;
      if (changes.signInAudience !== undefined) app.signInAudience = changes.signInAudience;
      if (changes.identifierUris) app.identifierUris = changes.identifierUris;
      if (changes.appRoles) app.appRoles = changes.appRoles;
      if (changes.keyCredentials) app.keyCredentials = changes.keyCredentials;
      if (changes.keepPasswordKeyIds)
        app.passwordCredentials = app.passwordCredentials.filter((p) =>
          changes.keepPasswordKeyIds!.includes(p.keyId),
        );
      if (changes.requestedAccessTokenVersion !== undefined)
        app.api.requestedAccessTokenVersion = changes.requestedAccessTokenVersion;
      if (changes.tags) app.tags = changes.tags;
      const sp = draft.servicePrincipals.find((s) => s.appId === app.appId);
      if (sp) sp.displayName = app.displayName;
    });
  }

  /** Graph's addPassword: the only way a secret comes into being; its text is returned once. */
  addPassword(id: string, input: { displayName?: string | null; endDateTime?: string }): NewPassword {
    return this.mutate((draft) => {
      const app = draft.applications.find((a) => a.id === id.toLowerCase());
      if (!app) throw graphErrors.notFound(id);
      const secretText = generateClientSecret();
      const now = this.clock();
      const end = input.endDateTime
        ? new Date(input.endDateTime)
        : new Date(now.getTime() + 2 * 365 * 86_400_000);
      if (Number.isNaN(end.getTime())) throw graphErrors.badRequest("Invalid value for 'endDateTime'.");
      const credential: StoredPasswordCredential = {
        keyId: newGuid(),
        displayName: input.displayName ?? null,
        hint: secretText.slice(0, 3),
        startDateTime: now.toISOString(),
        endDateTime: end.toISOString(),
        ...hashClientSecret(secretText),
      };
      app.passwordCredentials.push(credential);
      return { credential, secretText };
    });
  }

  /** Graph's removePassword: the secret stops working at once. */
  removePassword(id: string, keyId: string): void {
    this.removeCredential(id, 'passwordCredentials', keyId);
  }

  /** Removes one credential by keyId; an unknown application or keyId changes nothing. */
  private removeCredential(id: string, list: 'keyCredentials' | 'passwordCredentials', keyId: string): void {
    this.mutate((draft) => {
      const app = draft.applications.find((a) => a.id === id.toLowerCase());
      if (!app) throw graphErrors.notFound(id);
      const credentials: { keyId: string }[] = app[list];
      const index = credentials.findIndex((c) => c.keyId === keyId.toLowerCase());
      if (index < 0)
        throw graphErrors.badRequest(
          `No ${list === 'keyCredentials' ? 'key' : 'password'} credential with keyId '${keyId.slice(0, 60)}' exists on the application.`,
        );
      credentials.splice(index, 1);
    });
  }

  /**
   * Gives the admin application a new secret valid from `validity.startDateTime` to
   * `validity.endDateTime` (bootstrap.ts adminSecretValidity), replacing the old ones (whose text is lost).
   */
  replaceAdminSecret(validity: { startDateTime: string; endDateTime: string }): string {
    return this.mutate((draft) => {
      const app = draft.applications.find((a) => a.appId === draft.adminAppId);
      if (!app) throw new Error('admin application missing');
      const secretText = generateClientSecret();
      app.passwordCredentials = [
        {
          keyId: newGuid(),
          displayName: 'emulator.json',
          hint: secretText.slice(0, 3),
          ...validity,
          ...hashClientSecret(secretText),
        },
      ];
      return secretText;
    });
  }

  createServicePrincipal(appId: unknown): StoredServicePrincipal {
    if (!isGuid(appId)) throw graphErrors.badRequest("Property 'appId' is required and must be a GUID.");
    return this.mutate((draft) => {
      const app = draft.applications.find((a) => a.appId === appId.toLowerCase());
      if (!app)
        throw graphErrors.badRequest(
          `The appId '${appId}' of the service principal does not reference a valid application object.`,
        );
      if (draft.servicePrincipals.some((s) => s.appId === app.appId)) {
        throw new GraphError(
          409,
          'Request_MultipleObjectsWithSameKeyValue',
          `The service principal cannot be created, updated, or restored because the service principal name ${app.appId} is already in use.`,
        );
      }
      const sp: StoredServicePrincipal = {
        id: newGuid(),
        appId: app.appId,
        displayName: app.displayName,
        createdDateTime: this.now(),
      };
      draft.servicePrincipals.push(sp);
      return sp;
    });
  }

  /** Assigns an enabled app role of the resource to the principal, once. */
  assignAppRole(input: AssignmentInput): StoredAppRoleAssignment {
    const resource = this.servicePrincipal(input.resourceId);
    if (!resource) throw graphErrors.badRequest(`The resource '${input.resourceId}' does not exist.`);
    const principal = this.servicePrincipal(input.principalId);
    if (!principal) throw graphErrors.badRequest(`The principal '${input.principalId}' does not exist.`);
    const role = this.appRolesOf(resource).find((r) => r.id === input.appRoleId);
    if (!role || !role.isEnabled || !role.allowedMemberTypes.includes('Application')) {
      throw graphErrors.badRequest(
        `Permission being assigned was not found on application '${resource.appId}'.`,
      );
    }
    return this.mutate((draft) => {
      if (
        draft.appRoleAssignments.some(
          (a) => a.principalId === principal.id && a.resourceId === resource.id && a.appRoleId === role.id,
        )
      ) {
        throw graphErrors.badRequest('Permission being assigned already exists on the object.');
      }
      const assignment: StoredAppRoleAssignment = {
        id: opaqueId(32),
        appRoleId: role.id,
        principalId: principal.id,
        resourceId: resource.id,
        createdDateTime: this.now(),
      };
      draft.appRoleAssignments.push(assignment);
      return assignment;
    });
  }

  /**
   * One assignment seen from the service principal `spId`, as the principal holding it
   * (`appRoleAssignments`) or as the resource defining its role (`appRoleAssignedTo`).
   */
  assignment(spId: string, side: AssignmentSide, assignmentId: string): StoredAppRoleAssignment | undefined {
    return this.current.appRoleAssignments.find(
      (a) => a.id === assignmentId && a[side] === spId.toLowerCase(),
    );
  }

  /** Revokes an assignment; tokens issued from now on no longer carry its role. */
  removeAppRoleAssignment(spId: string, side: AssignmentSide, assignmentId: string): void {
    if (!this.assignment(spId, side, assignmentId)) throw graphErrors.notFound(assignmentId);
    this.mutate((draft) => {
      draft.appRoleAssignments = draft.appRoleAssignments.filter((a) => a.id !== assignmentId);
    });
  }

  /**
   * Graph's DELETE /applications/{id}: the application, its service principal and every
   * assignment held by or made to that principal (the Graph API refuses it for the admin application).
   */
  deleteApplication(id: string): void {
    this.mutate((draft) => {
      const app = draft.applications.find((a) => a.id === id.toLowerCase());
      if (!app) throw graphErrors.notFound(id);
      draft.applications = draft.applications.filter((a) => a !== app);
      const sp = draft.servicePrincipals.find((s) => s.appId === app.appId);
      if (!sp) return;
      draft.servicePrincipals = draft.servicePrincipals.filter((s) => s !== sp);
      draft.appRoleAssignments = draft.appRoleAssignments.filter(
        (a) => a.principalId !== sp.id && a.resourceId !== sp.id,
      );
    });
  }

  /** Graph's addKey: one more certificate on the application (the proof was checked by the caller). */
  addKeyCredential(id: string, credential: StoredKeyCredential): StoredKeyCredential {
    return this.mutate((draft) => {
      const app = draft.applications.find((a) => a.id === id.toLowerCase());
      if (!app) throw graphErrors.notFound(id);
      if (app.keyCredentials.some((k) => k.key === credential.key))
        throw graphErrors.invalidProperty(
          'keyCredential',
          'This certificate is already registered on the application.',
        );
      if (app.keyCredentials.some((k) => k.keyId === credential.keyId))
        throw graphErrors.invalidProperty('keyCredential', `keyId ${credential.keyId} is already in use.`);
      app.keyCredentials.push(credential);
      return credential;
    });
  }

  /** Graph's removeKey: the certificate stops authenticating at once. */
  removeKeyCredential(id: string, keyId: string): void {
    this.removeCredential(id, 'keyCredentials', keyId);
  }

  /** Replaces the token-signing keys (rotation), saved with the rest of the state. */
  replaceSigningKeys(keys: StoredSigningKey[]): void {
    this.mutate((draft) => {
      draft.signingKeys = keys;
    });
  }

  /** The service principal a `<identifier>/.default` scope refers to (App ID URI or appId). */
  resolveResource(identifier: string): ResolvedResource | undefined {
    const wanted = normalize(identifier);
    for (const sp of this.current.servicePrincipals) {
      if (!this.servicePrincipalNames(sp).some((name) => normalize(name) === wanted)) continue;
      const version = sp.builtIn ? null : this.applicationByAppId(sp.appId)?.api.requestedAccessTokenVersion;
      return {
        servicePrincipal: sp,
        appId: sp.appId,
        requestedIdentifier: identifier,
        tokenVersion: version === 2 ? 2 : 1,
      };
    }
    return undefined;
  }

  /** Values of the enabled app roles assigned to `principalId` on the resource. */
  rolesOf(principalId: string, resource: StoredServicePrincipal): string[] {
    const roles = this.appRolesOf(resource);
    const values = this.current.appRoleAssignments
      .filter((a) => a.principalId === principalId && a.resourceId === resource.id)
      .map((a) => roles.find((r) => r.id === a.appRoleId && r.isEnabled)?.value)
      .filter((v): v is string => v !== undefined);
    return [...new Set(values)];
  }

  /**
   * Refuses an identifier URI another application or a first-party resource already answers to
   * (compared as `sameIdentifier` does: case, scheme http or https, default port, a host's trailing dot
   * and trailing slash ignored), and an
   * `api://<GUID>` other than `api://<the application's own appId>`: Entra reserves that form for
   * the application itself, so no application can pose as another one, or as Key Vault.
   */
  private assertIdentifierUrisFree(draft: EmulatorState, uris: string[], ownId: string | undefined): void {
    const ownAppId = draft.applications.find((a) => a.id === ownId)?.appId;
    for (const uri of uris) {
      const guid = /^api:\/\/([^/]+)\/*$/i.exec(uri)?.[1];
      if (isGuid(guid) && guid.toLowerCase() !== ownAppId)
        throw graphErrors.invalidProperty(
          'identifierUris',
          `'${uri.slice(0, 100)}': api://<appId> may only name the application's own appId${ownAppId ? ` (${ownAppId})` : ', which is known once it is created'}.`,
        );
      const taken =
        draft.applications.some(
          (a) => a.id !== ownId && a.identifierUris.some((u) => sameIdentifier(u, uri)),
        ) ||
        draft.servicePrincipals.some((s) =>
          s.builtIn?.servicePrincipalNames.some((n) => sameIdentifier(n, uri)),
        );
      if (taken) throw graphErrors.duplicateValue('identifierUris');
    }
  }

  private mutate<T>(change: (draft: EmulatorState) => T): T {
    const draft = structuredClone(this.current);
    const result = change(draft);
    saveState(this.stateDir, draft);
    this.current = draft;
    return result;
  }

  private now(): string {
    return this.clock().toISOString();
  }
}

function normalize(identifier: string): string {
  return identifier.toLowerCase().replace(/\/+$/, '');
}

/**
 * Whether two identifier URIs name the same thing. http and https URIs are compared as WHATWG URL
 * normalises them, and beyond that: either scheme, a host's trailing dot, port 80 or 443 (however
 * written: :0443) and trailing slashes are ignored; so `http://graph.microsoft.com.:0443/` is Graph.
 */
function sameIdentifier(a: string, b: string): boolean {
  return canonicalIdentifier(a) === canonicalIdentifier(b);
}

function canonicalIdentifier(uri: string): string {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return normalize(uri);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return normalize(uri);
  const port = url.port === '' || url.port === '80' || url.port === '443' ? '' : `:${url.port}`;
  return normalize(`web://${url.hostname.replace(/\.$/, '')}${port}${url.pathname}`);
}
