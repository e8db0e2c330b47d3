/**
 * Validation of Graph `application` bodies (POST and PATCH). Unknown properties are refused
 * rather than ignored, so a request never silently does less than its author expected.
 */
import { graphErrors } from './graph-errors';
import { isGuid } from '@certflow/claims';
import { parseKeyCredentials } from './key-credentials';
import type { AppRole, StoredApplication, StoredKeyCredential } from './state-store';

export interface ApplicationChanges {
  displayName?: string;
  description?: string | null;
  signInAudience?: string;
  identifierUris?: string[];
  appRoles?: AppRole[];
  keyCredentials?: StoredKeyCredential[];
  /** keyIds of existing password credentials to keep (new ones come only from addPassword). */
  keepPasswordKeyIds?: string[];
  requestedAccessTokenVersion?: number | null;
  tags?: string[];
}

const SIGN_IN_AUDIENCES = new Set([
  'AzureADMyOrg',
  'AzureADMultipleOrgs',
  'AzureADandPersonalMicrosoftAccount',
  'PersonalMicrosoftAccount',
]);
const KNOWN = new Set([
  'displayName',
  'description',
  'signInAudience',
  'identifierUris',
  'appRoles',
  'keyCredentials',
  'passwordCredentials',
  'api',
  'tags',
  '@odata.type',
]);

export function parseApplicationBody(
  body: unknown,
  existing: StoredApplication | undefined,
): ApplicationChanges {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw graphErrors.badRequest('The request body must be a JSON object.');
  const input = body as Record<string, unknown>;
  for (const name of Object.keys(input)) {
    if (!KNOWN.has(name)) throw graphErrors.unsupportedProperty(name, 'application');
  }
  const changes: ApplicationChanges = {};
  if (input.displayName !== undefined || !existing) {
    if (
      typeof input.displayName !== 'string' ||
      input.displayName.trim() === '' ||
      input.displayName.length > 256
    ) {
      throw graphErrors.invalidProperty(
        'displayName',
        'A non-empty string of at most 256 characters is required.',
      );
    }
    changes.displayName = input.displayName;
  }
  if (input.description !== undefined) {
    if (input.description !== null && typeof input.description !== 'string')
      throw graphErrors.invalidProperty('description', 'Expected a string.');
    changes.description = input.description;
  }
  if (input.signInAudience !== undefined) {
    if (typeof input.signInAudience !== 'string' || !SIGN_IN_AUDIENCES.has(input.signInAudience)) {
      throw graphErrors.invalidProperty(
        'signInAudience',
        `Expected one of ${[...SIGN_IN_AUDIENCES].join(', ')}.`,
      );
    }
    changes.signInAudience = input.signInAudience;
  }
  if (input.identifierUris !== undefined) changes.identifierUris = parseIdentifierUris(input.identifierUris);
  if (input.appRoles !== undefined)
    changes.appRoles = parseAppRoles(input.appRoles, existing?.appRoles ?? []);
  if (input.keyCredentials !== undefined)
    changes.keyCredentials = parseKeyCredentials(input.keyCredentials, existing?.keyCredentials ?? []);
  if (input.passwordCredentials !== undefined)
    changes.keepPasswordKeyIds = parsePasswordCredentials(input.passwordCredentials, existing);
  if (input.api !== undefined) {
    const version = parseApi(input.api);
    if (version !== undefined) changes.requestedAccessTokenVersion = version;
  }
  if (input.tags !== undefined) {
    if (!Array.isArray(input.tags) || !input.tags.every((t) => typeof t === 'string'))
      throw graphErrors.invalidProperty('tags', 'Expected an array of strings.');
    changes.tags = input.tags as string[];
  }
  return changes;
}

function parseIdentifierUris(value: unknown): string[] {
  if (!Array.isArray(value))
    throw graphErrors.invalidProperty('identifierUris', 'Expected an array of strings.');
  const uris = value.map((uri) => {
    if (typeof uri !== 'string')
      throw graphErrors.invalidProperty('identifierUris', 'Expected an array of strings.');
    let parsed: URL;
    try {
      parsed = new URL(uri);
    } catch {
      throw graphErrors.invalidProperty('identifierUris', `'${uri}' is not an absolute URI.`);
    }
    if (!['api:', 'https:', 'http:', 'urn:'].includes(parsed.protocol)) {
      throw graphErrors.invalidProperty(
        'identifierUris',
        `'${uri}' must use the api, https, http or urn scheme.`,
      );
    }
    if (parsed.username !== '' || parsed.password !== '' || /^[a-z][a-z0-9+.-]*:\/\/[^/]*@/i.test(uri)) {
      throw graphErrors.invalidProperty(
        'identifierUris',
        `'${uri}' cannot contain user information (user@).`,
      );
    }
    // A scope is built as `<uri>/.default`; a URI that already ends in a scope would be ambiguous.
    if (uri.endsWith('/.default') || uri.includes('?') || uri.includes('#') || /\s/.test(uri)) {
      throw graphErrors.invalidProperty(
        'identifierUris',
        `'${uri}' cannot contain a query, fragment, whitespace or /.default.`,
      );
    }
    return uri;
  });
  if (new Set(uris.map((u) => u.toLowerCase())).size !== uris.length)
    throw graphErrors.invalidProperty('identifierUris', 'Duplicate values.');
  return uris;
}

function parseAppRoles(value: unknown, existing: AppRole[]): AppRole[] {
  if (!Array.isArray(value)) throw graphErrors.invalidProperty('appRoles', 'Expected an array.');
  const roles = value.map((item, index): AppRole => {
    const where = `appRoles[${index}]`;
    if (typeof item !== 'object' || item === null)
      throw graphErrors.invalidProperty('appRoles', `${where} must be an object.`);
    const r = item as Record<string, unknown>;
    if (!isGuid(r.id)) throw graphErrors.invalidProperty('appRoles', `${where}.id must be a GUID.`);
    if (typeof r.value !== 'string' || !/^[^\s.][^\s]*$/.test(r.value) || r.value.length > 249) {
      throw graphErrors.invalidProperty(
        'appRoles',
        `${where}.value must be a non-empty string without spaces, not starting with '.'.`,
      );
    }
    const memberTypes = r.allowedMemberTypes;
    if (
      !Array.isArray(memberTypes) ||
      memberTypes.length === 0 ||
      !memberTypes.every((t) => t === 'Application' || t === 'User')
    ) {
      throw graphErrors.invalidProperty(
        'appRoles',
        `${where}.allowedMemberTypes must list 'Application' and/or 'User'.`,
      );
    }
    if (r.isEnabled !== undefined && typeof r.isEnabled !== 'boolean')
      throw graphErrors.invalidProperty('appRoles', `${where}.isEnabled must be a boolean.`);
    return {
      id: r.id.toLowerCase(),
      value: r.value,
      displayName: typeof r.displayName === 'string' ? r.displayName : r.value,
      description: typeof r.description === 'string' ? r.description : r.value,
      allowedMemberTypes: memberTypes as string[],
      isEnabled: r.isEnabled ?? true,
    };
  });
  if (new Set(roles.map((r) => r.id)).size !== roles.length)
    throw graphErrors.invalidProperty('appRoles', 'Duplicate role ids.');
  if (new Set(roles.map((r) => r.value)).size !== roles.length)
    throw graphErrors.invalidProperty('appRoles', 'Duplicate role values.');
  // As in Entra: an enabled role must be disabled before it can be removed or its value changed.
  for (const old of existing.filter((r) => r.isEnabled)) {
    const updated = roles.find((r) => r.id === old.id);
    if (!updated) throw graphErrors.enabledEntitlement(old, 'deleted');
    if (updated.value !== old.value) throw graphErrors.enabledEntitlement(old, 'updated');
  }
  return roles;
}

function parsePasswordCredentials(value: unknown, existing: StoredApplication | undefined): string[] {
  if (!Array.isArray(value)) throw graphErrors.invalidProperty('passwordCredentials', 'Expected an array.');
  return value.map((item) => {
    const keyId =
      typeof item === 'object' && item !== null ? (item as Record<string, unknown>).keyId : undefined;
    if (!existing?.passwordCredentials.some((p) => p.keyId === keyId)) {
      throw graphErrors.invalidProperty(
        'passwordCredentials',
        'New secrets are created with POST /applications/{id}/addPassword; list only existing keyIds here.',
      );
    }
    return keyId as string;
  });
}

function parseApi(value: unknown): number | null | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw graphErrors.invalidProperty('api', 'Expected an object.');
  const api = value as Record<string, unknown>;
  for (const name of Object.keys(api)) {
    if (name !== 'requestedAccessTokenVersion')
      throw graphErrors.unsupportedProperty(`api.${name}`, 'apiApplication');
  }
  if (!('requestedAccessTokenVersion' in api)) return undefined;
  const version = api.requestedAccessTokenVersion;
  if (version !== null && version !== 1 && version !== 2)
    throw graphErrors.invalidProperty('api.requestedAccessTokenVersion', 'Expected 1, 2 or null.');
  return version;
}
