/**
 * The emulator as a fixture for a test suite: started on a free port in a fresh temporary
 * directory (0700), with an API registration exposing app roles and partner registrations whose
 * certificates are made at run time (keys written 0600 in that directory) and registered through
 * Graph. `close()` stops it and removes the directory; a start that fails half-way undoes itself.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseClockOffset } from '@certflow/clock';
import { createSelfSignedCertificate, parseCertificate } from '@certflow/certs';
import type { TokenLifetime } from '../access-tokens';
import { startEmulator, type RunningEmulator } from '../emulator';
import type { EmulatorOptions } from '../emulator-options';
import { GraphClient } from '../graph-client';
import { provisionApiAndPartner } from '../provision';
import { msalNetworkClient, type MsalNetworkClient } from './msal-network-client';

export interface FixturePartnerOptions {
  /** The registration's display name and its certificate's common name. */
  name: string;
  /** Roles granted on the API (values of `roles`). */
  grants?: string[];
}

export interface EmulatorFixtureOptions {
  /** The API's App ID URI (default `api://certflow-orders`); clients ask for `<uri>/.default`. */
  apiIdentifierUri?: string;
  /** The API's app roles (default `Orders.Read`, `Orders.Write`). */
  roles?: string[];
  /** The partner (default `contoso-partner`, granted `Orders.Read`). */
  partner?: Partial<FixturePartnerOptions>;
  /** More partners, each with a certificate of its own (granted nothing unless `grants`). */
  partners?: FixturePartnerOptions[];
  /** Access-token lifetime in seconds, or `{ min, max }` (default the emulator's 3600–5400). */
  tokenLifetimeSeconds?: TokenLifetime;
  /** The emulator's clock offset from real time: milliseconds, or text such as `+2h`, `-90s`. */
  clockOffset?: number | string;
  /** Where its files go (the emulator's state in `state/`); default a fresh temporary directory. Only a directory it made is removed by `close()`. */
  directory?: string;
  /** Any other `startEmulator` option (`faults`, `now`, `clockSkewSeconds`, …). */
  emulator?: Omit<EmulatorOptions, 'stateDir' | 'tokenLifetimeSeconds' | 'clockOffset'>;
}

export interface FixturePartner {
  name: string;
  appId: string;
  objectId: string;
  servicePrincipalId: string;
  /** The registered certificate's `keyId` in the application's `keyCredentials`. */
  keyId: string;
  certificatePem: string;
  privateKeyPem: string;
  /** The certificate (PEM) and its private key (PKCS#8 PEM, mode 0600) in the fixture's directory. */
  certificatePath: string;
  privateKeyPath: string;
  /** SHA-1, upper-case hex, as Graph's `customKeyIdentifier` and the portal show it. */
  thumbprint: string;
  /** SHA-256, hex: MSAL's `clientCertificate.thumbprintSha256`. */
  thumbprintSha256: string;
}

export interface EmulatorFixture extends AsyncDisposable {
  emulator: RunningEmulator;
  url: string;
  tenantId: string;
  /** `{url}/{tenantId}`: MSAL's `authority`. */
  authority: string;
  caPem: string;
  caCertificatePath: string;
  /** Its directory (the emulator's state is in `stateDir`, below it). */
  directory: string;
  stateDir: string;
  /** A Graph client as the emulator's admin (Application.ReadWrite.All, AppRoleAssignment.ReadWrite.All). */
  graph: GraphClient;
  api: {
    appId: string;
    objectId: string;
    servicePrincipalId: string;
    identifierUri: string;
    /** `<identifierUri>/.default`. */
    scope: string;
    roleIds: Record<string, string>;
  };
  partner: FixturePartner;
  /** Every partner, `partner` first. */
  partners: FixturePartner[];
  /** For MSAL's `system.networkClient`: HTTPS trusting the emulator's CA. */
  networkClient: MsalNetworkClient;
  /** Stops the emulator, closes the clients and removes the directory; once, however often called. */
  close(): Promise<void>;
}

export const FIXTURE_API_URI = 'api://certflow-orders';
const DEFAULT_ROLES = ['Orders.Read', 'Orders.Write'];
const DEFAULT_PARTNER = { name: 'contoso-partner', grants: ['Orders.Read'] };

export async function startEmulatorFixture(options: EmulatorFixtureOptions = {}): Promise<EmulatorFixture> {
  const roles = options.roles ?? DEFAULT_ROLES;
  const partners = [{ ...DEFAULT_PARTNER, ...options.partner }, ...(options.partners ?? [])];
  const clockOffset = offsetMs(options.clockOffset);
  const fileNames = partners.map(({ name }) => name.replace(/[^A-Za-z0-9._-]+/g, '-'));
  if (new Set(fileNames).size !== partners.length)
    throw new TypeError(
      `startEmulatorFixture: partner names must differ: ${partners.map((p) => p.name).join(', ')}`,
    );
  for (const p of partners) {
    const unknown = (p.grants ?? []).filter((r) => !roles.includes(r));
    if (unknown.length > 0)
      throw new TypeError(
        `startEmulatorFixture: partner ${p.name} is granted roles the API lacks: ${unknown.join(', ')}`,
      );
  }

  const directory = options.directory ?? mkdtempSync(join(tmpdir(), 'certflow-emulator-'));
  if (options.directory !== undefined) mkdirSync(directory, { recursive: true, mode: 0o700 });
  const stateDir = join(directory, 'state');
  let emulator: RunningEmulator | undefined;
  let graph: GraphClient | undefined;
  let networkClient: MsalNetworkClient | undefined;
  const stop = async () => {
    networkClient?.close();
    graph?.close();
    try {
      await emulator?.close();
    } finally {
      if (options.directory === undefined) rmSync(directory, { recursive: true, force: true });
    }
  };
  try {
    emulator = await startEmulator({
      ...options.emulator,
      stateDir,
      ...(options.tokenLifetimeSeconds !== undefined && {
        tokenLifetimeSeconds: options.tokenLifetimeSeconds,
      }),
      ...(options.clockOffset !== undefined && { clockOffset }),
    });
    const caPem = readFileSync(emulator.caCertificatePath, 'utf8');
    networkClient = msalNetworkClient(caPem);
    graph = await GraphClient.connect(emulator);
    const [first, ...more] = partners;
    const provisioned = await provisionApiAndPartner(graph, {
      apiDisplayName: 'orders API',
      apiIdentifierUri: options.apiIdentifierUri ?? FIXTURE_API_URI,
      roles,
      partnerDisplayName: first!.name,
      grantRoles: first!.grants ?? [],
    });
    const registrations = [provisioned.partner];
    for (const p of more) {
      const app = await graph.createApplication({ displayName: p.name });
      const sp = await graph.createServicePrincipal(app.appId);
      for (const role of p.grants ?? [])
        await graph.assignAppRole({
          principalId: sp.id,
          resourceId: provisioned.api.servicePrincipalId,
          appRoleId: provisioned.api.roleIds[role]!,
        });
      registrations.push({ objectId: app.id, appId: app.appId, servicePrincipalId: sp.id });
    }
    const withCertificates: FixturePartner[] = [];
    for (const [i, registration] of registrations.entries()) {
      const { name } = partners[i]!;
      // Valid from the emulator's present, wherever its clock stands.
      // Valid from the earlier of the real time and the shifted clock: valid at both, so moving the
      // clock back to the real time keeps the partner signing in.
      const now = new Date(Date.now() + Math.min(0, clockOffset));
      const pair = createSelfSignedCertificate({ commonName: name, now });
      const certificatePath = join(directory, `${fileNames[i]}.crt.pem`);
      const privateKeyPath = join(directory, `${fileNames[i]}.key.pem`);
      writeFileSync(privateKeyPath, pair.privateKeyPem, { mode: 0o600, flag: 'wx' });
      writeFileSync(certificatePath, pair.certificatePem, { flag: 'wx' });
      const { thumbprints } = parseCertificate(pair.certificatePem);
      const { keyId } = await graph.addCertificate(registration.objectId, pair.certificatePem, name);
      withCertificates.push({
        name,
        ...registration,
        keyId,
        ...pair,
        certificatePath,
        privateKeyPath,
        thumbprint: thumbprints.sha1Hex,
        thumbprintSha256: thumbprints.sha256Hex,
      });
    }
    let closed: Promise<void> | undefined;
    const close = () => (closed ??= stop());
    return {
      emulator,
      url: emulator.url,
      tenantId: emulator.tenantId,
      authority: emulator.authority,
      caPem,
      caCertificatePath: emulator.caCertificatePath,
      directory,
      stateDir,
      graph,
      api: {
        appId: provisioned.api.appId,
        objectId: provisioned.api.objectId,
        servicePrincipalId: provisioned.api.servicePrincipalId,
        identifierUri: provisioned.api.identifierUri,
        scope: `${provisioned.api.identifierUri}/.default`,
        roleIds: provisioned.api.roleIds,
      },
      partner: withCertificates[0]!,
      partners: withCertificates,
      networkClient,
      close,
      [Symbol.asyncDispose]: close,
    };
  } catch (err) {
    await stop().catch(() => undefined); // the start's own error is the one to see
    throw err;
  }
}

function offsetMs(offset: number | string | undefined): number {
  if (offset === undefined) return 0;
  if (typeof offset === 'string') return parseClockOffset(offset);
  if (!Number.isSafeInteger(offset))
    throw new TypeError(
      `startEmulatorFixture: clockOffset must be whole milliseconds or text such as "+2h", got ${offset}`,
    );
  return offset;
}
