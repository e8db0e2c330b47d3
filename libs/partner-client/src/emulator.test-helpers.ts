/**
 * What the emulator specs share: the real Entra ID emulator in `dir`/state, an API granting the
 * partner Orders.Read, and (given a commonName) the partner's certificate made in `dir`/partner
 * and uploaded through Graph.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  GraphClient,
  provisionApiAndPartner,
  startEmulator,
  type RunningEmulator,
} from '@certflow/entra-emulator';
import { CertificateStore, type PartnerCredential } from './certificate-store';

export interface ProvisionedEmulator {
  emulator: RunningEmulator;
  /** The emulator's CA certificate, for HTTPS clients that call it. */
  caPem: string;
  /** An admin Graph client; the caller closes it. */
  graph: GraphClient;
  partner: { appId: string; objectId: string };
}

export async function startProvisionedEmulator(
  dir: string,
  options: { name: string; apiIdentifierUri: string; tokenLifetimeSeconds?: number },
): Promise<ProvisionedEmulator>;
export async function startProvisionedEmulator(
  dir: string,
  options: { name: string; apiIdentifierUri: string; tokenLifetimeSeconds?: number; commonName: string },
): Promise<ProvisionedEmulator & { credential: PartnerCredential }>;
export async function startProvisionedEmulator(
  dir: string,
  options: { name: string; apiIdentifierUri: string; tokenLifetimeSeconds?: number; commonName?: string },
): Promise<ProvisionedEmulator & { credential?: PartnerCredential }> {
  const emulator = await startEmulator({
    stateDir: join(dir, 'state'),
    tokenLifetimeSeconds: options.tokenLifetimeSeconds,
  });
  const caPem = readFileSync(emulator.caCertificatePath, 'utf8');
  const graph = await GraphClient.connect(emulator);
  const { partner } = await provisionApiAndPartner(graph, {
    apiDisplayName: `${options.name} API`,
    apiIdentifierUri: options.apiIdentifierUri,
    roles: ['Orders.Read'],
    partnerDisplayName: `${options.name} partner`,
    grantRoles: ['Orders.Read'],
  });
  if (options.commonName === undefined) return { emulator, caPem, graph, partner };
  const credential = new CertificateStore(join(dir, 'partner')).create({ commonName: options.commonName });
  await graph.addCertificate(partner.objectId, readFileSync(credential.cerPath), options.name);
  return { emulator, caPem, graph, partner, credential };
}
