/**
 * `--tenant` is compared with the token's `tid` before any Graph call; a domain is first
 * resolved to the tenant GUID through the authority's OpenID configuration (real emulators,
 * which serve it by GUID or domain, over TLS with their own CA).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientCertificateCredential } from '@azure/identity';
import { createCertificateAuthority, issueCertificate } from '@certflow/certs';
import { GraphClient, startEmulator, type RunningEmulator } from '@certflow/entra-emulator';
import { signIn, SignInError } from './credential';
import { tenantGuid } from './tenant';
import {
  emulatorOptions,
  ensureBuilt,
  graphIdentity,
  runCli,
  storedDirectory,
  writeTopology,
} from './provision.test-helpers';

describe("--tenant and the token's tenant", () => {
  const work = mkdtempSync(join(tmpdir(), 'provision-tenant-'));
  let emulator: RunningEmulator;
  let elsewhere: RunningEmulator;
  let provisioner: Record<string, string>;
  let topology: string;

  const at = (e: RunningEmulator) => ({
    authorityHost: e.url,
    ca: readFileSync(e.caCertificatePath, 'utf8'),
  });
  const provision = (tenant: string) =>
    runCli(['--apply', ...emulatorOptions(emulator, topology, tenant)], provisioner, work);

  beforeAll(async () => {
    ensureBuilt();
    emulator = await startEmulator({ stateDir: join(work, 'state'), port: 0 });
    elsewhere = await startEmulator({ stateDir: join(work, 'elsewhere'), port: 0 });
    const admin = await GraphClient.connect(emulator);
    ({ env: provisioner } = await graphIdentity(emulator, admin, work, 'provisioner', [
      'Application.ReadWrite.All',
      'AppRoleAssignment.ReadWrite.All',
    ]));
    topology = writeTopology(work, 'topology.json', {
      apis: [
        {
          name: 'orders',
          displayName: 'tenant test orders API',
          identifierUri: 'api://certflow-provision-tenant',
          appRoles: [{ value: 'Orders.Read' }],
          policy: 'policy.xml',
        },
      ],
      partners: [],
    });
  }, 120_000);

  afterAll(async () => {
    await emulator?.close();
    await elsewhere?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('is resolved to the GUID its authority publishes; a GUID is taken as given', async () => {
    expect(emulator.tenantId).not.toBe(elsewhere.tenantId);
    expect(await tenantGuid({ tenant: emulator.tenantDomain.toUpperCase(), ...at(emulator) })).toBe(
      emulator.tenantId,
    );
    expect(await tenantGuid({ tenant: elsewhere.tenantDomain, ...at(elsewhere) })).toBe(elsewhere.tenantId);
    const guid = '00000000-0000-4000-8000-00000000000A';
    expect(await tenantGuid({ tenant: guid, authorityHost: 'https://127.0.0.1:9', ca: undefined })).toBe(
      guid.toLowerCase(),
    );
  });

  it('a token from another tenant than the domain resolves to is refused', async () => {
    const resolved = await tenantGuid({ tenant: elsewhere.tenantDomain, ...at(elsewhere) });
    const credential = new ClientCertificateCredential(
      provisioner.AZURE_TENANT_ID!,
      provisioner.AZURE_CLIENT_ID!,
      { certificatePath: provisioner.AZURE_CLIENT_CERTIFICATE_PATH! },
      { authorityHost: emulator.url, disableInstanceDiscovery: true, tlsOptions: at(emulator) },
    );
    const signingIn = signIn(credential, { tenantId: resolved, given: elsewhere.tenantDomain }, 'default');
    await expect(signingIn).rejects.toBeInstanceOf(SignInError);
    await expect(signingIn).rejects.toThrow(
      `--credential default signed in to tenant ${emulator.tenantId}, not ${elsewhere.tenantId} (${elsewhere.tenantDomain})`,
    );
    const matching = await signIn(
      credential,
      { tenantId: emulator.tenantId, given: emulator.tenantDomain },
      'default',
    );
    expect(matching.tenantId).toBe(emulator.tenantId);
  });

  it('provision --tenant <domain> signs in to the tenant it resolves to', async () => {
    const run = await provision(emulator.tenantDomain);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain(
      `provision: applying topology.json in tenant ${emulator.tenantId} as application`,
    );
  });

  it("a GUID other than the token's tenant stops provision before any Graph call", async () => {
    const before = storedDirectory(join(work, 'state'));
    const other = '00000000-0000-4000-8000-000000000001';
    const run = await provision(other);
    expect({ code: run.code, stdout: run.stdout }).toEqual({ code: 1, stdout: '' });
    expect(run.stderr).toContain(
      `signed in to tenant ${emulator.tenantId}, not ${other} (check AZURE_TENANT_ID`,
    );
    expect(storedDirectory(join(work, 'state'))).toEqual(before);
  });

  it('a domain the authority does not know stops provision before any Graph call', async () => {
    const before = storedDirectory(join(work, 'state'));
    const run = await provision('not-this-tenant.example.com');
    expect({ code: run.code, stdout: run.stdout }).toEqual({ code: 1, stdout: '' });
    expect(run.stderr).toContain(
      `provision: --tenant not-this-tenant.example.com: cannot find its tenant id at ${emulator.url}/not-this-tenant.example.com/v2.0/.well-known/openid-configuration: HTTP 400: AADSTS90002: Tenant 'not-this-tenant.example.com' not found.`,
    );
    expect(storedDirectory(join(work, 'state'))).toEqual(before);
  });
});

describe('an authority whose OpenID configuration cannot be trusted', () => {
  const answers: Record<string, string> = {
    'bad-issuer.example': JSON.stringify({ issuer: 'https://evil.example/not-a-guid/v2.0\u202e\u001b[2K' }),
    'http-issuer.example': JSON.stringify({
      issuer: 'http://a.example/00000000-0000-4000-8000-00000000000b/v2.0',
    }),
    'not-json.example': '<html>sign in</html>',
    'huge.example': JSON.stringify({ issuer: 'x'.repeat(200_000) }),
    'denied.example': JSON.stringify({
      error: 'invalid_tenant',
      error_description: 'AADSTS90002: Tenant \u001b[31mdenied\u202e not found.\r\nTrace ID: 1',
    }),
  };
  let server: Server;
  let options: { authorityHost: string; ca: string };

  beforeAll(async () => {
    const ca = createCertificateAuthority({ commonName: 'hostile authority CA' });
    const tls = issueCertificate(ca, { commonName: '127.0.0.1', ipAddresses: ['127.0.0.1'] });
    server = createServer({ key: tls.privateKeyPem, cert: tls.certificatePem }, (req, res) => {
      const domain = /^\/([^/]+)\//.exec(req.url ?? '')?.[1] ?? '';
      res
        .writeHead(domain === 'denied.example' ? 400 : 200, { 'content-type': 'application/json' })
        .end(answers[domain] ?? '{}');
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    options = {
      authorityHost: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
      ca: ca.certificatePem,
    };
  }, 60_000);

  afterAll(() => new Promise<void>((done) => server?.close(() => done())));

  it('is refused: an issuer without a tenant GUID, over http, no JSON, an oversized answer', async () => {
    const problem = (tenant: string) =>
      tenantGuid({ tenant, ...options }).then(
        () => 'accepted',
        (e: Error) => e.message,
      );
    expect(await problem('bad-issuer.example')).toMatch(
      /issuer "https:\/\/evil\.example\/not-a-guid\/v2\.0\\u202e\\u001b\[2K" is not <authority>\/<tenant GUID>\/v2\.0/,
    );
    expect(await problem('http-issuer.example')).toMatch(/is not <authority>\/<tenant GUID>\/v2\.0/);
    expect(await problem('not-json.example')).toMatch(
      /the answer has no issuer: not an OpenID configuration/,
    );
    expect(await problem('huge.example')).toMatch(/the answer is larger than 65536 bytes/);
    expect(await problem('denied.example')).toMatch(
      /: HTTP 400: AADSTS90002: Tenant \\u001b\[31mdenied\\u202e not found\.$/,
    );
    expect(await problem('huge.example')).toMatch(
      /^--tenant huge\.example: cannot find its tenant id at https:\/\/127\.0\.0\.1:/,
    );
  });
});
