/**
 * The emulator's persistent state: tenant, signing keys and directory objects, in
 * `<stateDir>/emulator-state.json` (mode 0600, written atomically). Loading validates the
 * shape; a damaged file is an error naming the file and is never replaced.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '@certflow/certs';
import { EmulatorError } from './errors';
import { isGuid } from '@certflow/claims';

export const STATE_FILE = 'emulator-state.json';
export const STATE_VERSION = 1;

export interface AppRole {
  id: string;
  value: string;
  displayName: string;
  description: string;
  allowedMemberTypes: string[];
  isEnabled: boolean;
}

export interface StoredKeyCredential {
  keyId: string;
  type: 'AsymmetricX509Cert';
  usage: 'Verify';
  displayName: string | null;
  customKeyIdentifier: string;
  startDateTime: string;
  endDateTime: string;
  /** base64 DER of the public certificate. */
  key: string;
}

export interface StoredPasswordCredential {
  keyId: string;
  displayName: string | null;
  hint: string;
  startDateTime: string;
  endDateTime: string;
  /** Only a salted hash is kept; the plaintext is shown once when the secret is created. */
  secretSalt: string;
  secretHash: string;
}

export interface StoredApplication {
  id: string;
  appId: string;
  displayName: string;
  description: string | null;
  signInAudience: string;
  createdDateTime: string;
  identifierUris: string[];
  appRoles: AppRole[];
  keyCredentials: StoredKeyCredential[];
  passwordCredentials: StoredPasswordCredential[];
  api: { requestedAccessTokenVersion: number | null };
  tags: string[];
}

export interface StoredServicePrincipal {
  id: string;
  appId: string;
  displayName: string;
  createdDateTime: string;
  /**
   * Only for first-party resources that have no application object in this tenant
   * (Microsoft Graph). Other principals take names and roles from their application.
   */
  builtIn?: { servicePrincipalNames: string[]; appRoles: AppRole[] };
}

export interface StoredAppRoleAssignment {
  id: string;
  appRoleId: string;
  principalId: string;
  resourceId: string;
  createdDateTime: string;
}

export interface StoredSigningKey {
  kid: string;
  privateKeyPem: string;
  certificatePem: string;
  createdDateTime: string;
  /**
   * `active` signs tokens; `next` is published in JWKS but signs nothing until a rotation
   * promotes it; `retired` signed tokens before the last rotation and stays published until
   * `retireAfter`, when every token it signed has expired. Missing in older state files:
   * the first key is then the active one.
   */
  use?: 'active' | 'next' | 'retired';
  retireAfter?: string;
}

export interface EmulatorState {
  version: typeof STATE_VERSION;
  tenant: { id: string; domain: string; displayName: string };
  signingKeys: StoredSigningKey[];
  adminAppId: string;
  applications: StoredApplication[];
  servicePrincipals: StoredServicePrincipal[];
  appRoleAssignments: StoredAppRoleAssignment[];
}

export function statePath(stateDir: string): string {
  return join(stateDir, STATE_FILE);
}

/** The stored state, or `undefined` when the emulator has never run with this state directory. */
export function loadState(stateDir: string): EmulatorState | undefined {
  return readCheckedJson<EmulatorState>(statePath(stateDir), describeProblem);
}

export function saveState(stateDir: string, state: EmulatorState): void {
  writeFileAtomic(statePath(stateDir), `${JSON.stringify(state, null, 2)}\n`, 0o600);
}

/**
 * A JSON file of the state directory, or `undefined` when it does not exist. A file that is not
 * JSON, or that `describeProblem` finds fault with, is an error naming it; nothing is reset.
 */
export function readCheckedJson<T>(
  path: string,
  describeProblem: (parsed: unknown) => string | undefined,
): T | undefined {
  if (!existsSync(path)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw damaged(path, `not valid JSON (${(err as Error).message})`, err);
  }
  const problem = describeProblem(parsed);
  if (problem) throw damaged(path, problem);
  return parsed as T;
}

export function damaged(path: string, why: string, cause?: unknown): EmulatorError {
  return new EmulatorError(
    'ERR_STATE_DAMAGED',
    `${path} is damaged: ${why}. Nothing was changed; repair the file or remove it (and lose the tenant, keys and registrations).`,
    { cause },
  );
}

type Check = (value: unknown) => string | undefined;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const str: Check = (v) => (typeof v === 'string' ? undefined : 'must be a string');
const guid: Check = (v) => (isGuid(v) ? undefined : 'must be a GUID');
const strOrNull: Check = (v) =>
  v === null || typeof v === 'string' ? undefined : 'must be a string or null';
const bool: Check = (v) => (typeof v === 'boolean' ? undefined : 'must be a boolean');
const date: Check = (v) =>
  typeof v === 'string' && !Number.isNaN(Date.parse(v)) ? undefined : 'must be an ISO date';
const arrayOf =
  (item: Check): Check =>
  (v) => {
    if (!Array.isArray(v)) return 'must be an array';
    for (const [i, element] of v.entries()) {
      const p = item(element);
      if (p) return `[${i}] ${p}`;
    }
    return undefined;
  };
const optional =
  (check: Check): Check =>
  (v) =>
    v === undefined ? undefined : check(v);
const shape =
  (fields: Record<string, Check>): Check =>
  (v) => {
    if (!isObject(v)) return 'must be an object';
    for (const [name, check] of Object.entries(fields)) {
      const p = check(v[name]);
      if (p) return `.${name} ${p}`;
    }
    return undefined;
  };

const appRole = shape({
  id: guid,
  value: str,
  displayName: str,
  description: str,
  allowedMemberTypes: arrayOf(str),
  isEnabled: bool,
});

const stateShape = shape({
  version: (v) => (v === STATE_VERSION ? undefined : `must be ${STATE_VERSION}`),
  tenant: shape({ id: guid, domain: str, displayName: str }),
  signingKeys: (v) =>
    Array.isArray(v) && v.length === 0
      ? 'must hold at least one key'
      : arrayOf(
          shape({
            kid: str,
            privateKeyPem: str,
            certificatePem: str,
            createdDateTime: date,
            use: optional((u) =>
              u === 'active' || u === 'next' || u === 'retired'
                ? undefined
                : "must be 'active', 'next' or 'retired'",
            ),
            retireAfter: optional(date),
          }),
        )(v),
  adminAppId: guid,
  applications: arrayOf(
    shape({
      id: guid,
      appId: guid,
      displayName: str,
      description: strOrNull,
      signInAudience: str,
      createdDateTime: date,
      identifierUris: arrayOf(str),
      appRoles: arrayOf(appRole),
      keyCredentials: arrayOf(
        shape({
          keyId: guid,
          type: (v) => (v === 'AsymmetricX509Cert' ? undefined : 'must be AsymmetricX509Cert'),
          usage: (v) => (v === 'Verify' ? undefined : 'must be Verify'),
          displayName: strOrNull,
          customKeyIdentifier: str,
          startDateTime: date,
          endDateTime: date,
          key: str,
        }),
      ),
      passwordCredentials: arrayOf(
        shape({
          keyId: guid,
          displayName: strOrNull,
          hint: str,
          startDateTime: date,
          endDateTime: date,
          secretSalt: str,
          secretHash: str,
        }),
      ),
      api: shape({
        requestedAccessTokenVersion: (v) =>
          v === null || v === 1 || v === 2 ? undefined : 'must be 1, 2 or null',
      }),
      tags: arrayOf(str),
    }),
  ),
  servicePrincipals: arrayOf(
    shape({
      id: guid,
      appId: guid,
      displayName: str,
      createdDateTime: date,
      builtIn: optional(shape({ servicePrincipalNames: arrayOf(str), appRoles: arrayOf(appRole) })),
    }),
  ),
  appRoleAssignments: arrayOf(
    shape({ id: str, appRoleId: guid, principalId: guid, resourceId: guid, createdDateTime: date }),
  ),
});

function describeProblem(value: unknown): string | undefined {
  const problem = stateShape(value);
  if (problem) return `state${problem}`;
  const state = value as EmulatorState;
  if (!state.applications.some((a) => a.appId === state.adminAppId))
    return 'the admin application is missing';
  const uses = state.signingKeys.map((k) => k.use);
  if (uses.filter((u) => u === 'active').length > 1)
    return 'state.signingKeys holds more than one active key';
  if (uses.filter((u) => u === 'next').length > 1) return 'state.signingKeys holds more than one next key';
  if (new Set(state.signingKeys.map((k) => k.kid)).size !== state.signingKeys.length)
    return 'state.signingKeys holds the same kid twice';
  return undefined;
}
