/**
 * `.certflow/stack.json`: the machine-readable description of a running stack, so that
 * scripts, load suites and people's own tools find it without parsing logs.
 * It exists while the stack runs and is removed when it stops.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '@certflow/certs';

export interface StackFile {
  /** Format version of this file. */
  version: 1;
  startedAt: string;
  pid: number;
  stateDir: string;
  /** PEM of the development CA that signs every local TLS certificate. */
  caCertificatePath: string;
  tenantId: string;
  emulator: {
    url: string;
    authority: string;
    issuer: string;
    openIdConfigurationUrl: string;
    tokenEndpoint: string;
    jwksUri: string;
    graphUrl: string;
    metadataFile: string;
  };
  gateway: { url: string; healthUrl: string; policyFile: string };
  api: {
    url: string;
    appId: string;
    objectId: string;
    identifierUri: string;
    scope: string;
    roles: string[];
  };
  partner: {
    appId: string;
    objectId: string;
    servicePrincipalId: string;
    certificateDirectory: string;
    thumbprintSha256: string;
    roles: string[];
  };
}

export const stackFilePath = (stateDir: string): string => join(stateDir, 'stack.json');

export function writeStackFile(stateDir: string, stack: StackFile): void {
  writeFileAtomic(stackFilePath(stateDir), JSON.stringify(stack, null, 2) + '\n', 0o600);
}

export function readStackFile(stateDir: string): StackFile {
  const path = stackFilePath(stateDir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new Error(`${path} not found: is the stack running? Start it with npm start`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path} is damaged: ${(err as Error).message}`);
  }
  if (!parsed || typeof parsed !== 'object' || (parsed as { version?: unknown }).version !== 1) {
    throw new Error(`${path} is not a certflow stack file of version 1`);
  }
  return parsed as StackFile;
}

export function removeStackFile(stateDir: string): void {
  rmSync(stackFilePath(stateDir), { force: true });
}

export interface PartnerSettings {
  entraInstance: string;
  tenantId: string;
  clientId: string;
  scope: string;
  apiBaseUrl: string;
  certificateDirectory: string;
  caCertificatePath: string;
  /** For `cert rotate` and serve's POST /rotate: the partner application's object id and Graph. */
  rotation?: { applicationObjectId: string; graphUrl: string };
}

/** The partner worker's environment (its configuration contract) for a local stack. */
export function partnerEnvironment(s: PartnerSettings): Record<string, string> {
  return {
    ENTRA_INSTANCE: s.entraInstance,
    PARTNER_TENANT_ID: s.tenantId,
    PARTNER_CLIENT_ID: s.clientId,
    PARTNER_SCOPE: s.scope,
    PARTNER_API_BASE_URL: s.apiBaseUrl,
    PARTNER_CERT_DIR: s.certificateDirectory,
    PARTNER_CA_FILE: s.caCertificatePath,
    ...(s.rotation
      ? { PARTNER_APP_OBJECT_ID: s.rotation.applicationObjectId, PARTNER_GRAPH_URL: s.rotation.graphUrl }
      : {}),
  };
}

/** The partner worker's environment for the running stack described by `file`, rotation included. */
export function stackPartnerEnvironment(file: StackFile): Record<string, string> {
  return partnerEnvironment({
    entraInstance: file.emulator.url,
    tenantId: file.tenantId,
    clientId: file.partner.appId,
    scope: file.api.scope,
    apiBaseUrl: file.gateway.url,
    certificateDirectory: file.partner.certificateDirectory,
    caCertificatePath: file.caCertificatePath,
    rotation: { applicationObjectId: file.partner.objectId, graphUrl: file.emulator.graphUrl },
  });
}
