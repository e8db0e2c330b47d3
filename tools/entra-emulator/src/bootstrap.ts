/**
 * A new tenant, as the emulator creates it on its first start: the tenant, one signing key,
 * Microsoft Graph's service principal, and an admin application allowed to manage
 * applications through the Graph API (Application.ReadWrite.All).
 */
import { generateClientSecret, hashClientSecret } from './client-secrets';
import { ADMIN_DISPLAY_NAME, GRAPH_APP_ID, GRAPH_RESOURCE, GRAPH_ROLE_IDS } from './directory';
import { newGuid, opaqueId } from './ids';
import { createSigningKey } from './signing-keys';
import { STATE_VERSION, type AppRole, type EmulatorState } from './state-store';

export const TENANT_DOMAIN = 'certflow.onmicrosoft.com';

const graphRole = (value: keyof typeof GRAPH_ROLE_IDS, description: string): AppRole => ({
  id: GRAPH_ROLE_IDS[value],
  value,
  displayName: description,
  description,
  allowedMemberTypes: ['Application'],
  isEnabled: true,
});

export function createInitialState(now: Date): { state: EmulatorState; adminSecret: string } {
  const at = now.toISOString();
  const graph = {
    id: newGuid(),
    appId: GRAPH_APP_ID,
    displayName: 'Microsoft Graph',
    createdDateTime: at,
    builtIn: {
      servicePrincipalNames: [GRAPH_RESOURCE, `${GRAPH_RESOURCE}/`, GRAPH_APP_ID],
      appRoles: [
        graphRole('Application.ReadWrite.All', 'Read and write all applications'),
        graphRole('Application.Read.All', 'Read all applications'),
      ],
    },
  };
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
        startDateTime: at,
        endDateTime: new Date(now.getTime() + 10 * 365 * 86_400_000).toISOString(),
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
    servicePrincipals: [graph, adminSp],
    appRoleAssignments: [
      {
        id: opaqueId(32),
        appRoleId: GRAPH_ROLE_IDS['Application.ReadWrite.All'],
        principalId: adminSp.id,
        resourceId: graph.id,
        createdDateTime: at,
      },
    ],
  };
  return { state, adminSecret };
}
