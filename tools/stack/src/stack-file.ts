/**
 * `.certflow/stack.json`: the machine-readable description of a running stack, so that
 * scripts, load suites and people's own tools find it without parsing logs.
 * It exists while the stack runs and is removed when it stops.
 *
 * Version 2 (topology): every API and every partner of the topology, by name. Version 1 had one
 * `api` and one `partner` object; readers of this module refuse it with a message that says so.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '@certflow/certs';
import { CLOCK_FILE_ENV } from '@certflow/clock';

export const STACK_FILE_VERSION = 2;

export interface StackApi {
  /** The API's name in the topology. */
  name: string;
  displayName: string;
  appId: string;
  objectId: string;
  servicePrincipalId: string;
  identifierUri: string;
  /** What partners request: `<identifierUri>/.default`. */
  scope: string;
  /** App role values the API defines. */
  roles: string[];
  /** The API itself (HTTP on 127.0.0.1, behind the gateway), or null: registered but not served locally. */
  url: string | null;
}

export interface StackPartner {
  /** The partner's name in the topology (`npm run partner -- --as NAME`). */
  name: string;
  displayName: string;
  appId: string;
  objectId: string;
  servicePrincipalId: string;
  /** Where the partner keeps its key pair: `<stateDir>/partners/<name>`. */
  certificateDirectory: string;
  thumbprintSha256: string;
  /** API name → app role values granted to the partner. */
  roles: Record<string, string[]>;
}

export interface StackFile {
  /** Format version of this file. */
  version: typeof STACK_FILE_VERSION;
  startedAt: string;
  pid: number;
  stateDir: string;
  /** The topology file the directory was reconciled with (absolute). */
  topologyFile: string;
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
  /** The gateway in front of the served API (the topology's first). */
  gateway: { url: string; healthUrl: string; policyFile: string };
  /** In topology order; the first is the one served locally. */
  apis: StackApi[];
  /** In topology order; the first is the default of `npm run partner`. */
  partners: StackPartner[];
  /**
   * The clock file every process of the stack follows (`<stateDir>/clock.json`), when the stack was
   * started with a clock offset; absent: every process uses the real time.
   */
  clockFile?: string;
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
  const version =
    parsed && typeof parsed === 'object' ? (parsed as { version?: unknown }).version : undefined;
  if (version !== STACK_FILE_VERSION) {
    throw new Error(
      `${path} is not a certflow stack file of version ${STACK_FILE_VERSION} (its version: ${JSON.stringify(version)}); ` +
        `restart the stack with this checkout's npm start`,
    );
  }
  return parsed as StackFile;
}

export function removeStackFile(stateDir: string): void {
  rmSync(stackFilePath(stateDir), { force: true });
}

/** The API served locally (the topology's first). */
export function servedApi(file: StackFile): StackApi & { url: string } {
  const api = file.apis.find((a): a is StackApi & { url: string } => a.url !== null);
  if (!api) throw new Error(`${stackFilePath(file.stateDir)} names no served API`);
  return api;
}

/** The partner called `name`, or the topology's first without a name; an unknown name lists the known ones. */
export function stackPartner(file: StackFile, name?: string): StackPartner {
  const partner = name === undefined ? file.partners[0] : file.partners.find((p) => p.name === name);
  if (!partner) {
    const names = file.partners.map((p) => p.name).join(', ') || '(none)';
    throw new Error(
      name === undefined
        ? `the stack has no partner (topology ${file.topologyFile})`
        : `no partner "${name}" in the stack; its partners: ${names}`,
    );
  }
  return partner;
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
  /** The stack's clock file, followed through CERTFLOW_CLOCK_FILE. */
  clockFile?: string;
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
    ...(s.clockFile ? { [CLOCK_FILE_ENV]: s.clockFile } : {}),
  };
}

/**
 * The partner worker's environment for partner `name` (default: the first) of the running stack
 * described by `file`, rotation included; it calls the served API through the gateway.
 */
export function stackPartnerEnvironment(file: StackFile, name?: string): Record<string, string> {
  const partner = stackPartner(file, name);
  return partnerEnvironment({
    entraInstance: file.emulator.url,
    tenantId: file.tenantId,
    clientId: partner.appId,
    scope: servedApi(file).scope,
    apiBaseUrl: file.gateway.url,
    certificateDirectory: partner.certificateDirectory,
    caCertificatePath: file.caCertificatePath,
    rotation: { applicationObjectId: partner.objectId, graphUrl: file.emulator.graphUrl },
    ...(file.clockFile ? { clockFile: file.clockFile } : {}),
  });
}
