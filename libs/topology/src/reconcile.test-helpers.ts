/** A real emulator for the reconcile tests, and what they use to look at its directory and tokens. */
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { createSelfSignedCertificate, parseCertificate, type CertificateAndKey } from '@certflow/certs';
import {
  certificateClientAssertion,
  GraphClient,
  startEmulator,
  type GraphApplication,
  type RunningEmulator,
} from '@certflow/entra-emulator';
import { tempDir } from '@certflow/testing';
import { GraphRest } from './graph-rest';
import { parseTopology } from './load-topology';
import type { Topology } from './types';

/** The orders API of the default topology, as a topology file writes it (the loader fills in the rest). */
export const ordersApi = {
  name: 'orders',
  displayName: 'certflow orders API',
  identifierUri: 'api://certflow-orders',
  appRoles: [{ value: 'Orders.Read' }, { value: 'Orders.Write' }],
  policy: 'policy.xml',
};

/** A partner of the file holding `roles` on the orders API. */
export const ordersPartner = (name: string, roles: string[]) => ({
  name,
  displayName: `${name}-partner`,
  roles: roles.length > 0 ? { orders: roles } : {},
});

export interface TestDirectory {
  emulator: RunningEmulator;
  admin: GraphClient;
  ca: string;
  /** GraphRest with the emulator's admin token (Application.ReadWrite.All, AppRoleAssignment.ReadWrite.All). */
  graph: GraphRest;
  /** A topology from file-shaped JSON, validated and defaulted as the loader does. */
  topology(data: unknown): Topology;
  /** The applications, as the admin reads them (to prove a plan wrote nothing). */
  applications(): Promise<GraphApplication[]>;
  close(): Promise<void>;
}

export async function startTestDirectory(): Promise<TestDirectory> {
  const dir = tempDir('topology-reconcile-');
  writeFileSync(join(dir.path, 'policy.xml'), '<policies />');
  const emulator = await startEmulator({ stateDir: join(dir.path, 'state') });
  const admin = await GraphClient.connect(emulator);
  const ca = readFileSync(emulator.caCertificatePath, 'utf8');
  const graph = new GraphRest({ baseUrl: emulator.graphUrl, token: () => admin.accessToken(), ca });
  return {
    emulator,
    admin,
    ca,
    graph,
    topology: (data) =>
      parseTopology(JSON.stringify(data), join(dir.path, 'certflow.topology.json')).topology,
    applications: async () => (await admin.listApplications()).sort((a, b) => a.id.localeCompare(b.id)),
    close: async () => {
      graph.close();
      admin.close();
      await emulator.close();
      dir.remove();
    },
  };
}

/** A partner's certificate made now, and its DER `.cer`. */
export function partnerCertificate(commonName: string): CertificateAndKey & { cer: Buffer } {
  const pair = createSelfSignedCertificate({ commonName, days: 30 });
  return { ...pair, cer: parseCertificate(pair.certificatePem).der };
}

function post(
  url: string,
  ca: string,
  form: Record<string, string>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', ca, headers: { 'content-type': 'application/x-www-form-urlencoded' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }),
        );
      },
    );
    req.on('error', reject);
    req.end(new URLSearchParams({ grant_type: 'client_credentials', ...form }).toString());
  });
}

/** The `roles` of an access token the partner gets with its certificate for `scope`. */
export async function tokenRoles(
  t: TestDirectory,
  clientId: string,
  certificate: CertificateAndKey,
  scope: string,
): Promise<string[]> {
  const assertion = await certificateClientAssertion(t.emulator.tokenEndpoint, clientId, certificate);
  const { status, body } = await post(t.emulator.tokenEndpoint, t.ca, {
    client_id: clientId,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion,
    scope,
  });
  if (status !== 200)
    throw new Error(`token request failed: HTTP ${status} ${String(body.error_description)}`);
  const claims = JSON.parse(
    Buffer.from(String(body.access_token).split('.')[1]!, 'base64url').toString(),
  ) as {
    roles?: string[];
  };
  return [...(claims.roles ?? [])].sort();
}

/** A Graph token by client secret for an application of the emulator. */
export async function graphTokenWithSecret(
  t: TestDirectory,
  clientId: string,
  secret: string,
): Promise<string> {
  const { status, body } = await post(t.emulator.tokenEndpoint, t.ca, {
    client_id: clientId,
    client_secret: secret,
    scope: 'https://graph.microsoft.com/.default',
  });
  if (status !== 200)
    throw new Error(`token request failed: HTTP ${status} ${String(body.error_description)}`);
  return String(body.access_token);
}
