/**
 * A new tenant, as the emulator creates it on its first start: the tenant, its signing keys,
 * the service principals of Microsoft's first-party resources (first-party.ts: Microsoft Graph
 * with its app roles, Key Vault, Resource Manager, Storage), and an admin application allowed
 * to manage applications and their role assignments through the Graph API
 * (ADMIN_GRAPH_PERMISSIONS). `upgradeState` brings a tenant saved by an earlier version up to
 * the same point.
 */
import { MAX_CLOCK_OFFSET_MS } from '@certflow/clock';
import { generateClientSecret, hashClientSecret } from './client-secrets';
import { ADMIN_DISPLAY_NAME, GRAPH_APP_ID, GRAPH_ROLE_IDS, type GraphRoleValue } from './directory';
import { FIRST_PARTY_RESOURCES, firstPartyNames, type FirstPartyResource } from './first-party';
import { newGuid, opaqueId } from './ids';
import { createSigningKey } from './signing-keys';
import { STATE_VERSION, type AppRole, type EmulatorState, type StoredServicePrincipal } from './state-store';

export const TENANT_DOMAIN = 'certflow.onmicrosoft.com';

/** Microsoft Graph's application permissions this emulator models, with their real ids. */
const GRAPH_APP_ROLES: Record<GraphRoleValue, string> = {
  'Application.ReadWrite.All': 'Read and write all applications',
  'Application.Read.All': 'Read all applications',
  'AppRoleAssignment.ReadWrite.All': 'Manage app permission grants and app role assignments',
  'AuditLog.Read.All': 'Read all audit log data',
};

/**
 * What the admin application may do: manage applications, grant and revoke their roles, and
 * read the sign-in logs.
 */
export const ADMIN_GRAPH_PERMISSIONS: readonly GraphRoleValue[] = [
  'Application.ReadWrite.All',
  'AppRoleAssignment.ReadWrite.All',
  'AuditLog.Read.All',
];

const graphRoles = (): AppRole[] =>
  Object.entries(GRAPH_APP_ROLES).map(([value, description]) => ({
    id: GRAPH_ROLE_IDS[value as GraphRoleValue],
    value,
    displayName: description,
    description,
    allowedMemberTypes: ['Application'],
    isEnabled: true,
  }));

/** A first-party resource's service principal; only Microsoft Graph's app roles are modelled. */
const builtInServicePrincipal = (resource: FirstPartyResource, at: string): StoredServicePrincipal => ({
  id: newGuid(),
  appId: resource.appId,
  displayName: resource.displayName,
  createdDateTime: at,
  builtIn: {
    servicePrincipalNames: firstPartyNames(resource),
    appRoles: resource.appId === GRAPH_APP_ID ? graphRoles() : [],
  },
});

/**
 * When the admin application's secret is valid: from the earliest time the clock can show (the
 * real time less the largest offset, MAX_CLOCK_OFFSET_MS) to ten years after the latest, so no
 * move of the clock within its range locks the admin out of Graph and the admin API.
 */
export function adminSecretValidity(realNow: Date): { startDateTime: string; endDateTime: string } {
  const real = realNow.getTime();
  return {
    startDateTime: new Date(real - MAX_CLOCK_OFFSET_MS).toISOString(),
    endDateTime: new Date(real + MAX_CLOCK_OFFSET_MS + 10 * 365 * 86_400_000).toISOString(),
  };
}

/**
 * Whether an admin secret is still valid at every time the clock can show for at least a year
 * of real time; one dated by an earlier version from its creation time is not, and is replaced.
 */
export function adminSecretCoversClock(
  credential: { startDateTime: string; endDateTime: string },
  realNow: Date,
): boolean {
  const real = realNow.getTime();
  return (
    Date.parse(credential.startDateTime) <= real - MAX_CLOCK_OFFSET_MS &&
    Date.parse(credential.endDateTime) >= real + MAX_CLOCK_OFFSET_MS + 365 * 86_400_000
  );
}

/** A new tenant at `now` (the emulator's clock); the admin secret's validity is reckoned from `realNow`. */
export function createInitialState(now: Date, realNow: Date): { state: EmulatorState; adminSecret: string } {
  const at = now.toISOString();
  const adminSecret = generateClientSecret();
  const admin = {
    id: newGuid(),
    appId: newGuid(),
    displayName: ADMIN_DISPLAY_NAME,
    description: 'Created by the emulator; its secret is in emulator.json.',
    signInAudience: 'AzureADMyOrg',
    createdDateTime: at,
    identifierUris: [],
    appRoles: [],
    keyCredentials: [],
    passwordCredentials: [
      {
        keyId: newGuid(),
        displayName: 'emulator.json',
        hint: adminSecret.slice(0, 3),
        ...adminSecretValidity(realNow),
        ...hashClientSecret(adminSecret),
      },
    ],
    api: { requestedAccessTokenVersion: null },
    tags: [],
  };
  const adminSp = { id: newGuid(), appId: admin.appId, displayName: admin.displayName, createdDateTime: at };
  const state: EmulatorState = {
    version: STATE_VERSION,
    tenant: { id: newGuid(), domain: TENANT_DOMAIN, displayName: 'certflow' },
    signingKeys: [
      { ...createSigningKey(now), use: 'active' },
      { ...createSigningKey(now), use: 'next' },
    ],
    adminAppId: admin.appId,
    applications: [admin],
    servicePrincipals: [...FIRST_PARTY_RESOURCES.map((r) => builtInServicePrincipal(r, at)), adminSp],
    appRoleAssignments: [],
  };
  grantAdminPermissions(state, at);
  return { state, adminSecret };
}

/**
 * A tenant saved by an earlier version, brought up to date: every first-party resource it lacks
 * gets its service principal, Microsoft Graph's service principal every app role modelled here,
 * and the admin application every permission in ADMIN_GRAPH_PERMISSIONS. Answers the upgraded
 * copy, or `undefined` when nothing was missing, so loading the same state again changes nothing.
 */
export function upgradeState(state: EmulatorState, now: Date): EmulatorState | undefined {
  const draft = structuredClone(state);
  const at = now.toISOString();
  const added = addFirstPartyResources(draft, at);
  return grantAdminPermissions(draft, at) || added ? draft : undefined;
}

/** Adds the service principal of each first-party resource the tenant lacks; true when one was added. */
function addFirstPartyResources(state: EmulatorState, at: string): boolean {
  const missing = FIRST_PARTY_RESOURCES.filter(
    (r) => !state.servicePrincipals.some((s) => s.appId === r.appId && s.builtIn),
  );
  state.servicePrincipals.push(...missing.map((r) => builtInServicePrincipal(r, at)));
  return missing.length > 0;
}

/** Adds what is missing, never a second copy of anything; true when something was added. */
function grantAdminPermissions(state: EmulatorState, at: string): boolean {
  const graph = state.servicePrincipals.find((s) => s.appId === GRAPH_APP_ID && s.builtIn);
  const admin = state.servicePrincipals.find((s) => s.appId === state.adminAppId);
  if (!graph?.builtIn || !admin) return false;
  let changed = false;
  for (const role of graphRoles()) {
    if (graph.builtIn.appRoles.some((r) => r.id === role.id)) continue;
    graph.builtIn.appRoles.push(role);
    changed = true;
  }
  for (const permission of ADMIN_GRAPH_PERMISSIONS) {
    const appRoleId = GRAPH_ROLE_IDS[permission];
    const held = state.appRoleAssignments.some(
      (a) => a.principalId === admin.id && a.resourceId === graph.id && a.appRoleId === appRoleId,
    );
    if (held) continue;
    state.appRoleAssignments.push({
      id: opaqueId(32),
      appRoleId,
      principalId: admin.id,
      resourceId: graph.id,
      createdDateTime: at,
    });
    changed = true;
  }
  return changed;
}
