/**
 * `<stateDir>/emulator.json`: how to reach and administer a running emulator. Rewritten on
 * every start (the port may change); mode 0600 because it holds the admin client secret.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '@certflow/certs';
import { EmulatorError } from './errors';
import { isGuid } from '@certflow/claims';
import { readCheckedJson } from './state-store';

export const INFO_FILE = 'emulator.json';

export interface EmulatorInfo {
  url: string;
  tenantId: string;
  tenantDomain: string;
  authority: string;
  issuer: string;
  openIdConfigurationUrl: string;
  tokenEndpoint: string;
  jwksUri: string;
  graphUrl: string;
  caCertificatePath: string;
  admin: { clientId: string; clientSecret: string };
}

export function emulatorInfoPath(stateDir: string): string {
  return join(stateDir, INFO_FILE);
}

export function describeEmulator(
  url: string,
  tenant: { id: string; domain: string },
  caCertificatePath: string,
  admin: EmulatorInfo['admin'],
): EmulatorInfo {
  const authority = `${url}/${tenant.id}`;
  return {
    url,
    tenantId: tenant.id,
    tenantDomain: tenant.domain,
    authority,
    issuer: `${authority}/v2.0`,
    openIdConfigurationUrl: `${authority}/v2.0/.well-known/openid-configuration`,
    tokenEndpoint: `${authority}/oauth2/v2.0/token`,
    jwksUri: `${authority}/discovery/v2.0/keys`,
    graphUrl: `${url}/graph/v1.0`,
    caCertificatePath,
    admin,
  };
}

export function writeEmulatorInfo(stateDir: string, info: EmulatorInfo): void {
  writeFileAtomic(emulatorInfoPath(stateDir), `${JSON.stringify(info, null, 2)}\n`, 0o600);
}

/** The emulator.json of `stateDir`, if there is one; throws if it exists but is damaged. */
export function readEmulatorInfoIfPresent(stateDir: string): EmulatorInfo | undefined {
  return readCheckedJson<EmulatorInfo>(emulatorInfoPath(stateDir), describeProblem);
}

/** Reads `<stateDir>/emulator.json`, written by a running (or earlier) emulator. */
export function readEmulatorInfo(stateDir: string): EmulatorInfo {
  const info = readEmulatorInfoIfPresent(stateDir);
  if (!info) {
    throw new EmulatorError(
      'ERR_INFO_MISSING',
      `${emulatorInfoPath(stateDir)} does not exist: start the emulator with this state directory first`,
    );
  }
  return info;
}

function describeProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'must be a JSON object';
  const v = value as Record<string, unknown>;
  for (const name of [
    'url',
    'authority',
    'issuer',
    'openIdConfigurationUrl',
    'tokenEndpoint',
    'jwksUri',
    'graphUrl',
  ] as const) {
    if (typeof v[name] !== 'string' || !String(v[name]).startsWith('https://'))
      return `${name} must be an https URL`;
  }
  if (!isGuid(v.tenantId)) return 'tenantId must be a GUID';
  if (typeof v.tenantDomain !== 'string') return 'tenantDomain must be a string';
  if (typeof v.caCertificatePath !== 'string') return 'caCertificatePath must be a string';
  const admin = v.admin as Record<string, unknown> | undefined;
  if (
    typeof admin !== 'object' ||
    admin === null ||
    !isGuid(admin.clientId) ||
    typeof admin.clientSecret !== 'string'
  ) {
    return 'admin must hold clientId (GUID) and clientSecret';
  }
  return undefined;
}
