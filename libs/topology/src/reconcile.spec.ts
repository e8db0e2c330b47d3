/**
 * reconcileTopology against the emulator's Graph API (real HTTPS, real tokens): plan, apply,
 * re-apply, changed roles and partners, prune, unmarked registrations, adoption, certificates and
 * a refused permission. The steps build on one directory, in order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GRAPH_APP_ID, GRAPH_ROLE_IDS } from '@certflow/entra-emulator';
import { rejectionOf } from '@certflow/testing';
import { GraphPermissionError, GraphRest } from './graph-rest';
import { formatChanges } from './plan-format';
import { reconcileTopology } from './reconcile';
import {
  ReconcileError,
  TOPOLOGY_TAG,
  type Change,
  type ReconcileOptions,
  type ReconcileResult,
} from './reconcile-types';
import {
  graphTokenWithSecret,
  partnerCertificate,
  startTestDirectory,
  tokenRoles,
  type TestDirectory,
} from './reconcile.test-helpers';
import type { Topology } from './types';

const SCOPE = 'api://certflow-orders/.default';
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const orders = (appRoles: object[]) => ({
  name: 'orders',
  displayName: 'certflow orders API',
  identifierUri: 'api://certflow-orders',
  appRoles,
  policy: 'policy.xml',
});
const READ = { value: 'Orders.Read', description: 'Read orders' };
const WRITE = { value: 'Orders.Write', description: 'Create orders' };
const partner = (name: string, roles: Record<string, string[]>) => ({
  name,
  displayName: `${name}-partner`,
  roles,
});

function summary(changes: Change[]): string[] {
  return changes.map((c) => `${c.kind} ${c.subject}: ${c.detail}`);
}

describe('reconcileTopology against the emulator', () => {
  let t: TestDirectory;
  const certs = { contoso: partnerCertificate('contoso'), fabrikam: partnerCertificate('fabrikam') };
  const cerOf: Record<string, Buffer | undefined> = {
    contoso: certs.contoso.cer,
    fabrikam: certs.fabrikam.cer,
  };
  let base: Topology;
  let applied: ReconcileResult;

  const reconcile = (topology: Topology, opts: Partial<ReconcileOptions> = {}) =>
    reconcileTopology({
      graph: t.graph,
      topology,
      apply: true,
      prune: false,
      certificate: (p) => cerOf[p.name],
      ...opts,
    });
  const appIdOf = (result: ReconcileResult, name: string) =>
    result.partners.find((p) => p.name === name)!.appId;

  beforeAll(async () => {
    t = await startTestDirectory();
    base = t.topology({
      apis: [orders([READ, WRITE])],
      partners: [
        partner('contoso', { orders: ['Orders.Read'] }),
        partner('fabrikam', { orders: ['Orders.Read', 'Orders.Write'] }),
      ],
    });
  }, 120_000);

  afterAll(async () => {
    await t?.close();
  });

  it('plans the creates on an empty directory and writes nothing', async () => {
    const before = await t.applications();
    const plan = await reconcile(base, { apply: false });
    expect(summary(plan.changes)).toEqual([
      'create api orders: "certflow orders API", "api://certflow-orders", v2 tokens, roles Orders.Read, Orders.Write',
      'create partner contoso: "contoso-partner"',
      expect.stringMatching(
        /^upload partner contoso: certificate "CN=contoso", SHA-1 [0-9A-F]{40}, valid until \d{4}-\d\d-\d\d$/,
      ),
      'grant partner contoso: Orders.Read on api orders',
      'create partner fabrikam: "fabrikam-partner"',
      expect.stringMatching(/^upload partner fabrikam: certificate "CN=fabrikam"/),
      'grant partner fabrikam: Orders.Read on api orders',
      'grant partner fabrikam: Orders.Write on api orders',
    ]);
    expect(plan.applied).toBe(false);
    expect(plan.apis).toEqual([
      {
        name: 'orders',
        objectId: '',
        appId: '',
        servicePrincipalId: '',
        identifierUri: 'api://certflow-orders',
        roleIds: { 'Orders.Read': '', 'Orders.Write': '' },
      },
    ]);
    expect(await t.applications()).toEqual(before);
  });

  it('applies: registrations marked, each partner holding exactly its roles, in its tokens too', async () => {
    applied = await reconcile(base);
    expect(applied.applied).toBe(true);
    expect(applied.changes.map((c) => `${c.kind} ${c.subject}`)).toEqual([
      'create api orders',
      'create partner contoso',
      'upload partner contoso',
      'grant partner contoso',
      'create partner fabrikam',
      'upload partner fabrikam',
      'grant partner fabrikam',
      'grant partner fabrikam',
    ]);
    const api = applied.apis[0]!;
    expect([api.objectId, api.appId, api.servicePrincipalId, ...Object.values(api.roleIds)]).toEqual(
      Array(5).fill(expect.stringMatching(GUID)),
    );
    const apps = await t.applications();
    expect(apps.find((a) => a.id === api.objectId)!.tags).toEqual([
      TOPOLOGY_TAG,
      `${TOPOLOGY_TAG}:api:orders`,
    ]);
    expect(apps.find((a) => a.id === applied.partners[1]!.objectId)!.tags).toEqual([
      TOPOLOGY_TAG,
      `${TOPOLOGY_TAG}:partner:fabrikam`,
    ]);
    expect(applied.partners.map((p) => p.certificateKeyId)).toEqual([
      expect.stringMatching(GUID),
      expect.stringMatching(GUID),
    ]);
    expect(await tokenRoles(t, appIdOf(applied, 'contoso'), certs.contoso, SCOPE)).toEqual(['Orders.Read']);
    expect(await tokenRoles(t, appIdOf(applied, 'fabrikam'), certs.fabrikam, SCOPE)).toEqual([
      'Orders.Read',
      'Orders.Write',
    ]);
  });

  it('a second apply finds nothing to change and returns the same objects', async () => {
    const again = await reconcile(base);
    expect(again.changes).toEqual([]);
    expect(again.warnings).toEqual([]);
    expect(again.apis).toEqual(applied.apis);
    expect(again.partners).toEqual(applied.partners);
    expect(formatChanges(again, 'certflow.topology.json')).toBe(
      'No changes: the directory matches certflow.topology.json.',
    );
  });

  it('uploads a new certificate once, beside the one registered', async () => {
    const next = partnerCertificate('contoso 2');
    cerOf.contoso = next.cer;
    const first = await reconcile(base);
    expect(summary(first.changes)).toEqual([
      expect.stringMatching(/^upload partner contoso: certificate "CN=contoso 2",/),
    ]);
    const keyId = first.partners[0]!.certificateKeyId;
    expect(keyId).not.toBe(applied.partners[0]!.certificateKeyId);
    const second = await reconcile(base);
    expect(second.changes).toEqual([]);
    expect(second.partners[0]!.certificateKeyId).toBe(keyId);
    expect(await tokenRoles(t, appIdOf(first, 'contoso'), next, SCOPE)).toEqual(['Orders.Read']);
    expect(await tokenRoles(t, appIdOf(first, 'contoso'), certs.contoso, SCOPE)).toEqual(['Orders.Read']);
    cerOf.contoso = certs.contoso.cer;
  });

  it('changes roles the way Graph requires: added, changed in place, removed after revoking and disabling', async () => {
    const changed = t.topology({
      apis: [orders([{ ...READ, description: 'Read all orders' }, { value: 'Orders.Delete' }])],
      partners: [
        partner('contoso', { orders: ['Orders.Read'] }),
        partner('fabrikam', { orders: ['Orders.Read', 'Orders.Delete'] }),
      ],
    });
    const plan = await reconcile(changed, { apply: false });
    const result = await reconcile(changed);
    expect(summary(result.changes)).toEqual([
      'update role Orders.Read of api orders: description "Read orders" → "Read all orders"',
      'create role Orders.Delete of api orders: "Orders.Delete": "Applications holding Orders.Delete"',
      'revoke partner fabrikam: Orders.Write on api orders (the role is removed)',
      'update role Orders.Write of api orders: disabled (Graph removes only disabled roles)',
      'delete role Orders.Write of api orders: disabled, then removed',
      'grant partner fabrikam: Orders.Delete on api orders',
    ]);
    expect(plan.changes).toEqual(result.changes);
    expect(result.apis[0]!.roleIds['Orders.Read']).toBe(applied.apis[0]!.roleIds['Orders.Read']);
    const app = (await t.applications()).find((a) => a.id === applied.apis[0]!.objectId)!;
    expect(app.appRoles.map((r) => [r.value, r.description, r.isEnabled])).toEqual([
      ['Orders.Read', 'Read all orders', true],
      ['Orders.Delete', 'Applications holding Orders.Delete', true],
    ]);
    expect(await tokenRoles(t, appIdOf(result, 'fabrikam'), certs.fabrikam, SCOPE)).toEqual([
      'Orders.Delete',
      'Orders.Read',
    ]);
    expect((await reconcile(changed)).changes).toEqual([]);
    base = changed;
  });

  it('adds a partner, changes one, and removes one only with prune', async () => {
    const fabrikam = applied.partners[1]!;
    const changed = t.topology({
      apis: [orders([{ ...READ, description: 'Read all orders' }, { value: 'Orders.Delete' }])],
      partners: [partner('contoso', {}), partner('northwind', { orders: ['Orders.Read'] })],
    });
    const kept = await reconcile(changed);
    expect(summary(kept.changes)).toEqual([
      'revoke partner contoso: Orders.Read on api orders (not in the topology)',
      'create partner northwind: "northwind-partner"',
      'grant partner northwind: Orders.Read on api orders',
    ]);
    expect(kept.warnings).toEqual([
      `partner fabrikam: "fabrikam-partner" (object id ${fabrikam.objectId}) is no longer in the topology; left in place (prune removes it)`,
    ]);
    expect(kept.removed).toEqual([]);
    expect((await t.applications()).some((a) => a.id === fabrikam.objectId)).toBe(true);
    const contosoAssignments = await t.graph.list(
      `/servicePrincipals/${kept.partners[0]!.servicePrincipalId}/appRoleAssignments`,
    );
    expect(contosoAssignments).toEqual([]);

    const pruned = await reconcile(changed, { prune: true });
    expect(summary(pruned.changes)).toEqual([
      `delete partner fabrikam: "fabrikam-partner" (object id ${fabrikam.objectId}) is no longer in the topology; with its service principal, role assignments and certificates`,
    ]);
    expect(pruned.removed).toEqual([{ kind: 'partner', name: 'fabrikam', objectId: fabrikam.objectId }]);
    expect((await t.applications()).some((a) => a.id === fabrikam.objectId)).toBe(false);
    await expect(tokenRoles(t, fabrikam.appId, certs.fabrikam, SCOPE)).rejects.toThrow(
      /token request failed: HTTP 400/,
    );
    expect((await reconcile(changed, { prune: true })).changes).toEqual([]);
    base = changed;
  });

  it('leaves an unmarked application holding an API identifier URI alone; apply refuses; adopt takes it over', async () => {
    const handMade = await t.admin.createApplication({
      displayName: 'hand-made inventory',
      identifierUris: ['api://certflow-inventory'],
    });
    const withInventory = t.topology({
      apis: [
        orders([{ ...READ, description: 'Read all orders' }, { value: 'Orders.Delete' }]),
        {
          name: 'inventory',
          displayName: 'certflow inventory API',
          identifierUri: 'api://certflow-inventory',
          appRoles: [{ value: 'Stock.Read' }],
          policy: 'policy.xml',
        },
      ],
      partners: [
        partner('contoso', { inventory: ['Stock.Read'] }),
        partner('northwind', { orders: ['Orders.Read'] }),
      ],
    });
    const blocked = `api inventory: not created: "hand-made inventory" (object id ${handMade.id}) already has the identifier URI api://certflow-inventory; it is not marked as managed by certflow-topology, so it is left alone (adopt it to take it over)`;
    const plan = await reconcile(withInventory, { apply: false });
    expect(plan.changes).toEqual([]);
    expect(plan.warnings).toEqual([blocked]);
    const before = await t.applications();
    const err = await rejectionOf(reconcile(withInventory));
    expect(err.message).toBe(
      `The directory cannot be brought to the topology; nothing was changed:\n  ${blocked}`,
    );
    expect(await t.applications()).toEqual(before);

    const adopted = await reconcile(withInventory, { adopt: { apis: { inventory: handMade.id } } });
    expect(summary(adopted.changes)).toEqual([
      `adopt api inventory: takes over "hand-made inventory" (object id ${handMade.id}) and marks it`,
      'create service principal of api inventory: the application has none',
      'update api inventory: displayName "hand-made inventory" → "certflow inventory API"; token version 1 → 2',
      'create role Stock.Read of api inventory: "Stock.Read": "Applications holding Stock.Read"',
      'grant partner contoso: Stock.Read on api inventory',
    ]);
    expect((await t.applications()).find((a) => a.id === handMade.id)!.tags).toEqual([
      TOPOLOGY_TAG,
      `${TOPOLOGY_TAG}:api:inventory`,
    ]);
    expect((await reconcile(withInventory)).changes).toEqual([]);
    expect(
      await tokenRoles(t, appIdOf(adopted, 'contoso'), certs.contoso, 'api://certflow-inventory/.default'),
    ).toEqual(['Stock.Read']);
    base = withInventory;
  });

  it('adopts an existing partner registration with its certificate instead of duplicating it', async () => {
    const legacy = await t.admin.createApplication({ displayName: 'legacy-partner' });
    await t.admin.createServicePrincipal(legacy.appId);
    const cert = partnerCertificate('legacy');
    const key = await t.admin.addCertificate(legacy.id, cert.cer);
    cerOf.legacy = cert.cer;
    const topology = {
      ...base,
      partners: [
        ...base.partners,
        t.topology({ apis: [orders([READ])], partners: [partner('legacy', { orders: ['Orders.Read'] })] })
          .partners[0]!,
      ],
    };
    const plan = await reconcile(topology, { apply: false });
    expect(plan.warnings).toEqual([
      `partner legacy: an unmarked application "legacy-partner" (object id ${legacy.id}) has the same display name; a new one is created beside it (adopt it to take it over)`,
    ]);
    const before = await t.applications();
    const refused = await rejectionOf(
      reconcile(topology, {
        adopt: {
          apis: { orders: legacy.id },
          partners: { legacy: legacy.id, nobody: legacy.id, contoso: '00000000-0000-0000-0000-000000000000' },
        },
      }),
    );
    expect(refused.message).toBe(
      [
        'The directory cannot be brought to the topology; nothing was changed:',
        `  adopt api orders: "certflow orders API" (object id ${applied.apis[0]!.objectId}) is already marked as api orders`,
        `  adopt partner nobody: the topology has no partner "nobody"`,
        `  adopt partner contoso: no application with object id 00000000-0000-0000-0000-000000000000`,
      ].join('\n'),
    );
    expect(await t.applications()).toEqual(before);
    const adopted = await reconcile(topology, { adopt: { partners: { legacy: legacy.id } } });
    expect(summary(adopted.changes)).toEqual([
      `adopt partner legacy: takes over "legacy-partner" (object id ${legacy.id}) and marks it`,
      'grant partner legacy: Orders.Read on api orders',
    ]);
    expect(adopted.partners.at(-1)).toMatchObject({
      name: 'legacy',
      objectId: legacy.id,
      certificateKeyId: key.keyId,
    });
    expect((await reconcile(topology, { adopt: { partners: { legacy: legacy.id } } })).changes).toEqual([]);
    expect(await tokenRoles(t, legacy.appId, cert, SCOPE)).toEqual(['Orders.Read']);
  });

  it('names AppRoleAssignment.ReadWrite.All when the token may manage applications but not grant roles', async () => {
    const limited = await t.admin.createApplication({ displayName: 'provisioner without grants' });
    const sp = await t.admin.createServicePrincipal(limited.appId);
    const graphSp = (await t.admin.findServicePrincipalByAppId(GRAPH_APP_ID))!;
    await t.admin.assignAppRole({
      principalId: sp.id,
      resourceId: graphSp.id,
      appRoleId: GRAPH_ROLE_IDS['Application.ReadWrite.All'],
    });
    const secret = await t.admin.addPassword(limited.id, 'test');
    const token = await graphTokenWithSecret(t, limited.appId, secret.secretText!);
    const graph = new GraphRest({ baseUrl: t.emulator.graphUrl, token: async () => token, ca: t.ca });
    const topology = {
      ...base,
      partners: [
        ...base.partners,
        t.topology({ apis: [orders([READ])], partners: [partner('acme', { orders: ['Orders.Read'] })] })
          .partners[0]!,
      ],
    };
    const failed = await rejectionOf<ReconcileError>(
      reconcileTopology({ graph, topology, apply: true, prune: false }),
    );
    graph.close();
    expect(failed).toBeInstanceOf(ReconcileError);
    // what Graph accepted before the refusal is reported, not hidden
    expect(summary(failed.applied)).toEqual(['create partner acme: "acme-partner"']);
    const err = failed.cause as GraphPermissionError;
    expect(err).toBeInstanceOf(GraphPermissionError);
    expect(err.permission).toBe('AppRoleAssignment.ReadWrite.All');
    expect(err.operation).toBe('grant Orders.Read on api orders to partner acme');
    expect(failed.message).toBe(
      `${err.message}\n1 change was made before it and stays in the directory; plan again to see what remains.`,
    );
    expect(err.message).toContain('needs the application permission AppRoleAssignment.ReadWrite.All');
    expect(failed.message).not.toContain(token);
  });
});
