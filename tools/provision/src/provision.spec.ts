/**
 * `npm run provision` end to end: the built CLI in a child process, signing in through
 * @azure/identity (EnvironmentCredential: an app registration with a certificate) against a
 * real emulator, whose Graph speaks the HTTP API Microsoft Graph does. What changed is read
 * from the emulator's saved directory, not from the CLI's own account of it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GraphClient,
  startEmulator,
  type GraphApplication,
  type RunningEmulator,
} from '@certflow/entra-emulator';
import {
  emulatorOptions,
  ensureBuilt,
  grantedRoles,
  graphIdentity,
  marked,
  partnerCertificate,
  partnerTokenClaims,
  runCli,
  storedDirectory,
  writeTopology,
  type CliResult,
} from './provision.test-helpers';

const ORDERS_URI = 'api://certflow-provision-orders';
const LEGACY_URI = 'api://certflow-provision-legacy';

const ordersApi = (roles: string[]) => ({
  name: 'orders',
  displayName: 'provision test orders API',
  identifierUri: ORDERS_URI,
  appRoles: roles.map((value) => ({ value, description: `${value} (test)` })),
  policy: 'policy.xml',
});
const contoso = (roles: string[]) => ({
  name: 'contoso',
  displayName: 'contoso-partner',
  roles: { orders: roles },
});
const fabrikam = {
  name: 'fabrikam',
  displayName: 'fabrikam-partner',
  certificate: { cerFile: 'fabrikam.cer' },
  roles: { orders: ['Orders.Read', 'Orders.Write'] },
};

describe('npm run provision against the emulator', () => {
  const work = mkdtempSync(join(tmpdir(), 'provision-'));
  const stateDir = join(work, 'state');
  let emulator: RunningEmulator;
  let admin: GraphClient;
  let provisioner: Record<string, string>;
  let provisionerAppId: string;
  let registrationsOnly: Record<string, string>;
  let fabrikamKeys: ReturnType<typeof partnerCertificate>;
  let unmarked: GraphApplication;
  let initial: string;
  let changed: string;

  /** The CLI against the emulator as a user would point it there. */
  const provision = (args: string[], topology: string, env = provisioner): Promise<CliResult> =>
    runCli([...args, ...emulatorOptions(emulator, topology)], env, work);
  const directory = () => storedDirectory(stateDir);

  beforeAll(async () => {
    ensureBuilt();
    emulator = await startEmulator({ stateDir, port: 0 });
    admin = await GraphClient.connect(emulator);
    ({ appId: provisionerAppId, env: provisioner } = await graphIdentity(
      emulator,
      admin,
      work,
      'provisioner',
      ['Application.ReadWrite.All', 'AppRoleAssignment.ReadWrite.All'],
    ));
    registrationsOnly = (
      await graphIdentity(emulator, admin, work, 'registrations-only', ['Application.ReadWrite.All'])
    ).env;
    // Made by hand, with a partner's display name: provision must leave it alone.
    unmarked = await admin.createApplication({ displayName: 'contoso-partner' });
    fabrikamKeys = partnerCertificate(work, 'fabrikam');
    initial = writeTopology(work, 'initial.json', {
      apis: [ordersApi(['Orders.Read', 'Orders.Write'])],
      partners: [contoso(['Orders.Read']), fabrikam],
    });
    changed = writeTopology(work, 'changed.json', {
      apis: [ordersApi(['Orders.Read', 'Orders.Write', 'Orders.Admin'])],
      partners: [contoso(['Orders.Read', 'Orders.Admin'])],
    });
  }, 120_000);

  afterAll(async () => {
    await emulator?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('refuses a bad command line with exit code 2, naming the option', async () => {
    const cases: [string[], RegExp][] = [
      [['--plan', '--apply', '--tenant', 'contoso.onmicrosoft.com'], /exactly one of --plan and --apply/],
      [['--plan'], /--tenant is required/],
      [['--plan', '--tenant', 'x'], /--tenant: "x" is neither a tenant GUID nor a domain name/],
      [['--plan', '--tenant', 'a.b', '--credential', 'magic'], /--credential: "magic" is not one of/],
      [
        ['--plan', '--tenant', 'a.b', '--graph-url', 'http://graph.example'],
        /--graph-url: .* must be an https:\/\/ URL/,
      ],
      [
        ['--plan', '--tenant', 'a.b', '--ca-file', join(work, 'missing.pem')],
        /--ca-file: cannot read .*missing\.pem: ENOENT/,
      ],
      [
        ['--plan', '--tenant', 'a.b', '--ca-file', join(work, 'provisioner.pem')],
        /--ca-file: .* holds a private key/,
      ],
      [['--plan', '--tenant', 'a.b', '--bogus'], /Unknown option '--bogus'/],
      [
        ['--plan', '--tenant', 'a.b', '--adopt', 'api:orders'],
        /--adopt: "api:orders" is not KIND:NAME=OBJECT_ID/,
      ],
      [
        [
          '--plan',
          '--tenant',
          emulator.tenantId,
          '--topology',
          initial,
          '--adopt',
          `api:billing=${unmarked.id}`,
        ],
        /--adopt api:billing: .*initial\.json has no api "billing"/,
      ],
    ];
    for (const [args, message] of cases) {
      const run = await runCli(args, {}, work);
      expect({ args, code: run.code, stdout: run.stdout }).toEqual({ args, code: 2, stdout: '' });
      expect(run.stderr).toMatch(message);
    }
    const help = await runCli(['--help'], {}, work);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: npm run provision -- \(--plan \| --apply\) --tenant TENANT/);
  });

  it('stops on a bad topology before contacting anything', async () => {
    const bad = writeTopology(work, 'bad.json', {
      apis: [ordersApi(['Orders.Read', 'Orders.Write'])],
      partners: [contoso(['Orders.Wrte'])],
    });
    const before = directory();
    // Even the sign-in host is unreachable: reaching it would fail with exit code 1.
    const run = await runCli(
      [
        '--apply',
        '--topology',
        bad,
        '--tenant',
        emulator.tenantId,
        '--authority-host',
        'https://127.0.0.1:9',
      ],
      provisioner,
      work,
    );
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('partners[0].roles.orders[0]: no role "Orders.Wrte" on api "orders"');
    expect(run.stderr).toContain('(did you mean "Orders.Write"?)');
    expect(run.stderr).toContain('Nothing was contacted.');
    expect(directory()).toEqual(before);
  });

  it('--plan lists what it would create and changes nothing', async () => {
    const before = directory();
    const run = await provision(['--plan'], initial);
    expect(run.stderr).toContain(
      `provision: planning initial.json in tenant ${emulator.tenantId} as application ${provisionerAppId} through ${emulator.graphUrl}\n`,
    );
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^ {2}\+ create api orders: /m);
    expect(run.stdout).toMatch(/^ {2}\+ create partner contoso: /m);
    expect(run.stdout).toMatch(/^ {2}\+ create partner fabrikam: /m);
    expect(run.stdout).toMatch(
      new RegExp(
        `^warning: partner contoso: an unmarked application "contoso-partner" \\(object id ${unmarked.id}\\) has the same display name; a new one is created beside it`,
        'm',
      ),
    );
    expect(run.stdout).toMatch(/api-app-id +\(assigned when applied\)/);
    expect(run.stdout).toMatch(
      /^Plan: \d+ changes to bring the directory to initial\.json \(nothing written\):$/m,
    );
    expect(run.stdout).toContain('To make these changes, run again with --apply.');
    expect(directory()).toEqual(before);
  });

  it('--apply creates marked registrations, roles, grants and the partner .cer; tokens carry the grants', async () => {
    const run = await provision(['--apply'], initial);
    expect(run.code, run.stderr).toBe(0);
    const after = directory();
    const api = marked(after, 'api', 'orders');
    const contosoApp = marked(after, 'partner', 'contoso');
    const fabrikamApp = marked(after, 'partner', 'fabrikam');
    expect(api).toMatchObject({
      identifierUris: [ORDERS_URI],
      api: { requestedAccessTokenVersion: 2 },
      tags: expect.arrayContaining(['certflow-topology']),
    });
    expect(api!.appRoles.map((r) => [r.value, r.isEnabled])).toEqual([
      ['Orders.Read', true],
      ['Orders.Write', true],
    ]);
    expect(grantedRoles(after, contosoApp!.appId, api!.appId)).toEqual(['Orders.Read']);
    expect(grantedRoles(after, fabrikamApp!.appId, api!.appId)).toEqual(['Orders.Read', 'Orders.Write']);
    expect(fabrikamApp!.keyCredentials.map((k) => k.customKeyIdentifier)).toEqual([
      expect.stringMatching(/^[0-9A-F]{40}$/),
    ]);
    expect(contosoApp!.keyCredentials).toEqual([]);
    // The hand-made registration with contoso's display name is exactly as it was.
    expect(after.applications.find((a) => a.id === unmarked.id)).toMatchObject({
      displayName: 'contoso-partner',
      tags: [],
    });

    expect(run.stdout).toMatch(new RegExp(`api-app-id +${api!.appId}`));
    expect(run.stdout).toMatch(new RegExp(`api-app-id-uri +${ORDERS_URI}`));
    expect(run.stdout).toMatch(new RegExp(`tenant-id +${emulator.tenantId}`));
    expect(run.stdout).toMatch(new RegExp(`entra-instance +${emulator.url}`));
    expect(run.stdout).toContain(
      `contoso: client id ${contosoApp!.appId}; no certificate.cerFile; upload the partner's .cer when it arrives`,
    );
    expect(run.stdout).toContain(
      `fabrikam: client id ${fabrikamApp!.appId}; certificate fabrikam.cer (SHA-1 ${fabrikamApp!.keyCredentials[0]!.customKeyIdentifier}`,
    );

    // The uploaded .cer is the one fabrikam signs in with, and its token carries what was granted.
    const claims = await partnerTokenClaims(
      emulator,
      fabrikamApp!.appId,
      fabrikamKeys,
      `${ORDERS_URI}/.default`,
    );
    expect({ aud: claims.aud, roles: (claims.roles as string[]).sort() }).toEqual({
      aud: api!.appId,
      roles: ['Orders.Read', 'Orders.Write'],
    });
  });

  it('a second --apply (and --plan) finds nothing to change', async () => {
    const before = directory();
    for (const mode of ['--apply', '--plan']) {
      const run = await provision([mode], initial);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toContain('No changes: the directory matches initial.json.');
      expect(run.stdout).not.toContain('run again with --apply');
    }
    expect(directory()).toEqual(before);
  });

  it('a changed topology: a role added and granted; a partner gone is only reported without --prune, removed with it', async () => {
    const fabrikamApp = marked(directory(), 'partner', 'fabrikam')!;
    const kept = await provision(['--apply'], changed);
    expect(kept.code, kept.stderr).toBe(0);
    expect(kept.stdout).toMatch(/^ {2}\+ create role Orders\.Admin of api orders: /m);
    expect(kept.stdout).toMatch(/^ {2}\+ grant partner contoso: Orders\.Admin on api orders$/m);
    expect(kept.stdout).toMatch(
      /^warning: partner fabrikam: .* is no longer in the topology; left in place \(prune removes it\)$/m,
    );
    expect(kept.stdout).not.toMatch(/delete/);
    let now = directory();
    const api = marked(now, 'api', 'orders')!;
    expect(api.appRoles.map((r) => r.value)).toEqual(['Orders.Read', 'Orders.Write', 'Orders.Admin']);
    expect(grantedRoles(now, marked(now, 'partner', 'contoso')!.appId, api.appId)).toEqual([
      'Orders.Admin',
      'Orders.Read',
    ]);
    expect(marked(now, 'partner', 'fabrikam')?.id).toBe(fabrikamApp.id);

    const before = directory();
    const plannedPrune = await provision(['--plan', '--prune'], changed);
    expect(plannedPrune.code, plannedPrune.stderr).toBe(0);
    expect(plannedPrune.stdout).toMatch(/^ {2}- delete partner fabrikam: /m);
    expect(directory()).toEqual(before);

    const pruned = await provision(['--apply', '--prune'], changed);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.stdout).toMatch(/^ {2}- delete partner fabrikam: /m);
    now = directory();
    expect(marked(now, 'partner', 'fabrikam')).toBeUndefined();
    expect(now.applications.some((a) => a.id === fabrikamApp.id)).toBe(false);
    expect(now.servicePrincipals.some((s) => s.appId === fabrikamApp.appId)).toBe(false);
    expect(now.applications.find((a) => a.id === unmarked.id)?.displayName).toBe('contoso-partner');
  });

  it('an unmarked registration holding an API identifier URI is left alone, until it is adopted', async () => {
    const legacy = await admin.createApplication({
      displayName: 'legacy API (by hand)',
      identifierUris: [LEGACY_URI],
    });
    const withLegacy = writeTopology(work, 'legacy.json', {
      apis: [
        ordersApi(['Orders.Read', 'Orders.Write', 'Orders.Admin']),
        {
          ...ordersApi(['Legacy.Read']),
          name: 'legacy',
          displayName: 'provision test legacy API',
          identifierUri: LEGACY_URI,
        },
      ],
      partners: [contoso(['Orders.Read', 'Orders.Admin'])],
    });
    const before = directory();
    const plan = await provision(['--plan'], withLegacy);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(
      /^warning: api legacy: not created: "legacy API \(by hand\)" .* already has the identifier URI api:\/\/certflow-provision-legacy; it is not marked/m,
    );
    const apply = await provision(['--apply'], withLegacy);
    expect(apply.code).toBe(1);
    expect(apply.stderr).toContain('The directory cannot be brought to the topology; nothing was changed:');
    expect(apply.stderr).toContain(
      `api legacy: not created: "legacy API (by hand)" (object id ${legacy.id})`,
    );
    expect(apply.stderr).not.toMatch(/stays? in the directory/);
    expect(apply.stdout).toBe('');
    expect(directory()).toEqual(before);

    // Taken over on request: marked and brought to the topology, its client id unchanged.
    const adopted = await provision(['--apply', '--adopt', `api:legacy=${legacy.id}`], withLegacy);
    expect(adopted.code, adopted.stderr).toBe(0);
    expect(adopted.stdout).toMatch(/^ {2}~ adopt api legacy: takes over "legacy API \(by hand\)"/m);
    expect(adopted.stdout).toMatch(new RegExp(`api-app-id +${legacy.appId}`));
    expect(marked(directory(), 'api', 'legacy')).toMatchObject({
      id: legacy.id,
      appId: legacy.appId,
      displayName: 'provision test legacy API',
      appRoles: [expect.objectContaining({ value: 'Legacy.Read', isEnabled: true })],
    });
    const again = await provision(['--apply'], withLegacy);
    expect(again.stdout).toContain('No changes: the directory matches legacy.json.');
  });

  it('a permission refused halfway: named, and the changes made before it printed as staying', async () => {
    const roles = ['Orders.Read', 'Orders.Write', 'Orders.Admin', 'Orders.Export'];
    const newGrant = writeTopology(work, 'new-grant.json', {
      apis: [ordersApi(roles)],
      partners: [contoso(['Orders.Read', 'Orders.Admin', 'Orders.Export'])],
    });
    const before = directory();
    // Creating the role needs Application.ReadWrite.All (held); granting it, AppRoleAssignment.ReadWrite.All.
    const run = await provision(['--apply'], newGrant, registrationsOnly);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /HTTP 403 .*needs the application permission AppRoleAssignment\.ReadWrite\.All/,
    );
    expect(run.stderr).toMatch(/\n1 change was made before it and stays in the directory; plan again/);
    expect(run.stdout).toMatch(
      /^Applied 1 change \(it stays in the directory\) before the failure:\n {2}\+ create role .*Orders\.Export.*\n$/,
    );
    expect(run.stdout).not.toMatch(/grant/);
    const now = directory();
    expect(marked(now, 'api', 'orders')!.appRoles.map((r) => r.value)).toEqual(roles);
    expect(now.appRoleAssignments).toEqual(before.appRoleAssignments);
  });

  it('a forged mark (any app owner can set tags) stops the run before anything is written', async () => {
    const genuine = marked(directory(), 'partner', 'contoso')!;
    const forged = await admin.createApplication({
      displayName: 'innocent-looking-app',
      tags: ['certflow-topology', 'certflow-topology:partner:contoso'],
    });
    const before = directory();
    const run = await provision(['--apply'], changed);
    expect({ code: run.code, stdout: run.stdout }).toEqual({ code: 1, stdout: '' });
    expect(run.stderr).toMatch(
      new RegExp(`partner contoso: two applications carry its mark, .*${genuine.id}.* and .*${forged.id}`),
    );
    expect(directory()).toEqual(before);
  });
});
