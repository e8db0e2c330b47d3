/**
 * What the emulator specs share: the emulator fixture (@certflow/entra-emulator/testing) in `dir`
 * with an API granting the partner Orders.Read and the partner holding no certificate, and (given
 * a commonName) the partner's certificate made in `dir`/partner and uploaded through Graph.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GraphClient, RunningEmulator } from '@certflow/entra-emulator';
import { startEmulatorFixture } from '@certflow/entra-emulator/testing';
import { CertificateStore, type PartnerCredential } from './certificate-store';

export interface ProvisionedEmulator {
  /** Its `close()` closes the whole fixture; `dir` stays, for the caller to remove. */
  emulator: RunningEmulator;
  /** The emulator's CA certificate, for HTTPS clients that call it. */
  caPem: string;
  /** An admin Graph client; the caller closes it. */
  graph: GraphClient;
  partner: { appId: string; objectId: string };
}

export async function startProvisionedEmulator(
  dir: string,
  options: { name: string; apiIdentifierUri: string; tokenLifetimeSeconds?: number; now?: () => Date },
): Promise<ProvisionedEmulator>;
export async function startProvisionedEmulator(
  dir: string,
  options: {
    name: string;
    apiIdentifierUri: string;
    tokenLifetimeSeconds?: number;
    now?: () => Date;
    commonName: string;
  },
): Promise<ProvisionedEmulator & { credential: PartnerCredential }>;
export async function startProvisionedEmulator(
  dir: string,
  options: {
    name: string;
    apiIdentifierUri: string;
    tokenLifetimeSeconds?: number;
    now?: () => Date;
    commonName?: string;
  },
): Promise<ProvisionedEmulator & { credential?: PartnerCredential }> {
  const fixture = await startEmulatorFixture({
    directory: dir, // the state in `dir`/state, where a spec restarts the emulator
    apiIdentifierUri: options.apiIdentifierUri,
    roles: ['Orders.Read'],
    partner: { name: `${options.name} partner`, grants: ['Orders.Read'] },
    tokenLifetimeSeconds: options.tokenLifetimeSeconds,
    // The emulator's unshifted time: a spec shares its own clock with it.
    emulator: options.now ? { now: options.now } : {},
  });
  const { caPem, graph } = fixture;
  const emulator = { ...fixture.emulator, close: fixture.close };
  const partner = { appId: fixture.partner.appId, objectId: fixture.partner.objectId };
  // These specs bring the partner's certificates themselves (and count them).
  await graph.removeCertificates(partner.objectId, [fixture.partner.keyId]);
  if (options.commonName === undefined) return { emulator, caPem, graph, partner };
  const credential = new CertificateStore(join(dir, 'partner')).create({ commonName: options.commonName });
  await graph.addCertificate(partner.objectId, readFileSync(credential.cerPath), options.name);
  return { emulator, caPem, graph, partner, credential };
}
