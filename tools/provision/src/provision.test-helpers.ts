/**
 * What the end-to-end tests need around the built CLI: a real emulator with identities that
 * sign in the way a user's would (an app registration with a certificate, through
 * @azure/identity's EnvironmentCredential), the directory as the emulator stores it, and the CLI
 * run as a child process with a clean environment.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createSelfSignedCertificate, pemToDer, type CertificateAndKey } from '@certflow/certs';
import { ClientCertificateCredential } from '@azure/identity';
import { GRAPH_APP_ID, statePath, type GraphClient, type RunningEmulator } from '@certflow/entra-emulator';

const PROJECT = resolve(__dirname, '..');
const WORKSPACE = resolve(PROJECT, '../..');
const MAIN = join(PROJECT, 'dist', 'main.js');

/** Builds the CLI as `npm run provision` does; incremental, so nearly free when up to date. */
export function ensureBuilt(): void {
  execFileSync(
    process.execPath,
    [join(WORKSPACE, 'node_modules/typescript/bin/tsc'), '-b', join(PROJECT, 'tsconfig.build.json')],
    { cwd: WORKSPACE, stdio: 'pipe' },
  );
}

/** The command-line options that point provision at an emulator, as a user would: its Graph, sign-in host and CA. */
export function emulatorOptions(
  emulator: RunningEmulator,
  topology: string,
  tenant = emulator.tenantId,
): string[] {
  return [
    '--topology',
    topology,
    '--tenant',
    tenant,
    '--graph-url',
    emulator.graphUrl,
    '--authority-host',
    emulator.url,
    '--ca-file',
    emulator.caCertificatePath,
  ];
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The built CLI in a child process. Nothing inherited may make it pass (NODE_EXTRA_CA_CERTS, AZURE_*). */
export function runCli(args: string[], env: Record<string, string>, cwd: string): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      cwd,
      env: { PATH: process.env.PATH ?? '', HOME: cwd, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

/**
 * An app registration holding the given Microsoft Graph application permissions, signing in
 * with a certificate: the environment EnvironmentCredential reads.
 */
export async function graphIdentity(
  emulator: RunningEmulator,
  admin: GraphClient,
  dir: string,
  name: string,
  permissions: string[],
): Promise<{ appId: string; env: Record<string, string> }> {
  const app = await admin.createApplication({ displayName: name });
  const sp = await admin.createServicePrincipal(app.appId);
  const certificate = createSelfSignedCertificate({ commonName: name });
  await admin.addCertificate(app.id, pemToDer(certificate.certificatePem), name);
  const graph = await admin.findServicePrincipalByAppId(GRAPH_APP_ID);
  if (!graph) throw new Error('the emulator has no Microsoft Graph service principal');
  for (const permission of permissions) {
    const role = graph.appRoles.find((r) => r.value === permission);
    if (!role) throw new Error(`the emulator's Microsoft Graph has no app role ${permission}`);
    await admin.assignAppRole({ principalId: sp.id, resourceId: graph.id, appRoleId: role.id });
  }
  const pemFile = join(dir, `${name}.pem`);
  writeFileSync(pemFile, certificate.privateKeyPem + certificate.certificatePem, { mode: 0o600 });
  return {
    appId: app.appId,
    env: {
      AZURE_TENANT_ID: emulator.tenantId,
      AZURE_CLIENT_ID: app.appId,
      AZURE_CLIENT_CERTIFICATE_PATH: pemFile,
    },
  };
}

/** A partner's key pair and the .cer it would send (DER), written to `<dir>/<name>.cer`. */
export function partnerCertificate(dir: string, name: string): CertificateAndKey & { cerFile: string } {
  const certificate = createSelfSignedCertificate({ commonName: `${name}-partner` });
  const cerFile = join(dir, `${name}.cer`);
  writeFileSync(cerFile, pemToDer(certificate.certificatePem));
  return { ...certificate, cerFile };
}

/** Writes a topology file (and an empty policy file it can point at) into `dir`. */
export function writeTopology(dir: string, name: string, topology: object): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'policy.xml'), '<policies><inbound><base /></inbound></policies>\n');
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(topology, null, 2));
  return file;
}

export interface StoredDirectory {
  applications: {
    id: string;
    appId: string;
    displayName: string;
    identifierUris: string[];
    appRoles: { id: string; value: string; isEnabled: boolean }[];
    keyCredentials: { customKeyIdentifier: string | null }[];
    api: { requestedAccessTokenVersion: number | null };
    tags: string[];
  }[];
  servicePrincipals: { id: string; appId: string }[];
  appRoleAssignments: { principalId: string; resourceId: string; appRoleId: string }[];
}

/** The directory as the emulator saved it: what changed is visible here, whoever changed it. */
export function storedDirectory(stateDir: string): StoredDirectory {
  const state = JSON.parse(readFileSync(statePath(stateDir), 'utf8')) as StoredDirectory;
  return {
    applications: state.applications,
    servicePrincipals: state.servicePrincipals,
    appRoleAssignments: state.appRoleAssignments,
  };
}

/** The application tagged `certflow-topology:<kind>:<name>`, if any. */
export function marked(directory: StoredDirectory, kind: 'api' | 'partner', name: string) {
  return directory.applications.find((a) => a.tags.includes(`certflow-topology:${kind}:${name}`));
}

/** Role values granted to a partner's application on an API's application. */
export function grantedRoles(directory: StoredDirectory, partnerAppId: string, apiAppId: string): string[] {
  const sp = (appId: string) => directory.servicePrincipals.find((s) => s.appId === appId)?.id;
  const api = directory.applications.find((a) => a.appId === apiAppId);
  return directory.appRoleAssignments
    .filter((a) => a.principalId === sp(partnerAppId) && a.resourceId === sp(apiAppId))
    .map((a) => api?.appRoles.find((r) => r.id === a.appRoleId)?.value ?? `unknown role ${a.appRoleId}`)
    .sort();
}

/** The claims of a client-credentials token for `scope`, obtained with the partner's certificate through @azure/identity (MSAL). */
export async function partnerTokenClaims(
  emulator: RunningEmulator,
  appId: string,
  certificate: CertificateAndKey,
  scope: string,
): Promise<Record<string, unknown>> {
  const credential = new ClientCertificateCredential(
    emulator.tenantId,
    appId,
    { certificate: certificate.privateKeyPem + certificate.certificatePem },
    {
      authorityHost: emulator.url,
      disableInstanceDiscovery: true,
      tlsOptions: { ca: readFileSync(emulator.caCertificatePath, 'utf8') },
    },
  );
  const token = await credential.getToken(scope);
  return JSON.parse(Buffer.from(token.token.split('.')[1]!, 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;
}
