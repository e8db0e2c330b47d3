/**
 * Microsoft's own resources, which every Entra tenant knows without registering them: a
 * client-credentials request for `https://vault.azure.net/.default` is answered as Entra
 * answers it. Each becomes a built-in service principal (bootstrap.ts) with its real app id and
 * the identifiers its scope may name. None of them exposes an app role a client-credentials
 * client could be granted here, so their tokens carry no `roles`. Their tokens are v1 (issuer
 * `https://sts.windows.net/{tenant}/`, `appid`), with `aud` the identifier exactly as requested:
 * `https://vault.azure.net/.default` gives `https://vault.azure.net`, and
 * `https://management.azure.com//.default` gives `https://management.azure.com/`.
 * The sources of every value are listed in the README ("Microsoft's first-party resources").
 */
import { GRAPH_APP_ID, GRAPH_RESOURCE } from './directory';

export interface FirstPartyResource {
  appId: string;
  displayName: string;
  /** The App ID URIs a scope or v1 `resource` may name (the app id is accepted as well). */
  identifiers: readonly string[];
}

export const KEY_VAULT_APP_ID = 'cfa8b339-82a2-471a-a3c9-0fc0be7a4093';
export const KEY_VAULT_RESOURCE = 'https://vault.azure.net';
export const ARM_APP_ID = '797f4846-ba00-4fd7-ba43-dac1f8f63013';
export const ARM_RESOURCE = 'https://management.azure.com/';
export const STORAGE_APP_ID = 'e406a681-f3d4-42a8-90b6-c2b029497af1';
export const STORAGE_RESOURCE = 'https://storage.azure.com/';

/** Microsoft Graph first: its app roles are modelled too (bootstrap.ts). */
export const FIRST_PARTY_RESOURCES: readonly FirstPartyResource[] = [
  {
    appId: GRAPH_APP_ID,
    displayName: 'Microsoft Graph',
    identifiers: [GRAPH_RESOURCE, `${GRAPH_RESOURCE}/`],
  },
  { appId: KEY_VAULT_APP_ID, displayName: 'Azure Key Vault', identifiers: [KEY_VAULT_RESOURCE] },
  {
    appId: ARM_APP_ID,
    displayName: 'Windows Azure Service Management API',
    identifiers: [ARM_RESOURCE, 'https://management.core.windows.net/'],
  },
  { appId: STORAGE_APP_ID, displayName: 'Azure Storage', identifiers: [STORAGE_RESOURCE] },
];

/** The names a built-in service principal answers to (matching ignores a trailing slash: directory.ts). */
export function firstPartyNames(resource: FirstPartyResource): string[] {
  return [...resource.identifiers, resource.appId];
}
