/**
 * The first roles for a marked partner registration that existed before the run wait for a
 * person's confirmation (requireConfirmation, as provision runs it): a plan names the
 * application, an apply stops before any write, a confirmation with the wrong object id is
 * refused. Against the emulator's Graph (real HTTPS, tokens).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DevelopmentCa } from '@certflow/certs';
import { json, rejectionOf, startHttpsServer, tempDir, type TestServer } from '@certflow/testing';
import { GraphCallError, GraphRest } from './graph-rest';
import { federatedCredentialProblems } from './reconcile-confirm';
import { reconcileTopology } from './reconcile';
import { markOf, Run, type GraphApp, type ReconcileOptions } from './reconcile-types';
import {
  ordersApi as orders,
  ordersPartner as partner,
  startTestDirectory,
  type TestDirectory,
} from './reconcile.test-helpers';
import type { Topology } from './types';

describe('reconcileTopology asks for confirmation before first roles to an existing registration', () => {
  let t: TestDirectory;
  let withNewco: Topology;
  let forged: { id: string; appId: string; createdDateTime: string };
  const reconcile = (topology: Topology, apply: boolean, more: Partial<ReconcileOptions> = {}) =>
    reconcileTopology({ graph: t.graph, topology, apply, prune: false, requireConfirmation: true, ...more });
  const directory = async () => JSON.stringify(await t.applications());
  const warning = () =>
    `partner newco: its first roles would go to "innocent" (object id ${forged.id}), client id ${forged.appId}, created ${forged.createdDateTime}, which carries the partner's mark but holds no role of any managed API; a mark is a claim, not proof: check in the portal that this is the registration made for newco`;

  beforeAll(async () => {
    t = await startTestDirectory();
    await reconcile(t.topology({ apis: [orders], partners: [partner('contoso', ['Orders.Read'])] }), true);
    const app = await t.admin.createApplication({
      displayName: 'innocent',
      tags: markOf('partner', 'newco'),
    });
    await t.admin.createServicePrincipal(app.appId);
    forged = { id: app.id, appId: app.appId, createdDateTime: app.createdDateTime };
    withNewco = t.topology({
      apis: [orders],
      partners: [partner('contoso', ['Orders.Read']), partner('newco', ['Orders.Read', 'Orders.Write'])],
    });
  }, 120_000);

  afterAll(async () => {
    await t?.close();
  });

  it('a plan names the application and the flag that confirms it; contoso, granted before, needs none', async () => {
    const plan = await reconcile(withNewco, false);
    expect(plan.warnings).toEqual([
      `${warning()}; to apply, confirm it with --confirm partner:newco=${forged.id}`,
    ]);
    expect(plan.changes.filter((c) => c.kind === 'grant').map((c) => c.detail)).toEqual([
      'Orders.Read on api orders',
      'Orders.Write on api orders',
    ]);
    // the local stack does not ask
    expect((await reconcile(withNewco, false, { requireConfirmation: false })).warnings).toEqual([]);
  });

  it('an apply without the confirmation stops before any write', async () => {
    const before = await directory();
    const err = await rejectionOf(reconcile(withNewco, true));
    expect(err.message).toBe(
      `The directory cannot be brought to the topology; nothing was changed:\n  ${warning()}, then run again with --confirm partner:newco=${forged.id}`,
    );
    expect(await directory()).toBe(before);
  });

  it('a confirmation naming another object id, an unknown partner or nothing to confirm is refused', async () => {
    const before = await directory();
    const other = '00000000-0000-4000-8000-000000000001';
    for (const apply of [false, true]) {
      const err = await rejectionOf(reconcile(withNewco, apply, { confirm: { newco: other, ghost: other } }));
      expect(err.message.split('\n').slice(1)).toEqual([
        `  confirm partner newco: the application marked as partner newco is "innocent" (object id ${forged.id}), not object id ${other}; check which one is yours`,
        '  confirm partner "ghost": the topology has no partner "ghost"',
        // an apply also stops for the missing confirmation itself
        ...(apply ? [`  ${warning()}, then run again with --confirm partner:newco=${forged.id}`] : []),
      ]);
      const fresh = t.topology({ apis: [orders], partners: [partner('fresh', ['Orders.Read'])] });
      expect((await rejectionOf(reconcile(fresh, apply, { confirm: { fresh: other } }))).message).toContain(
        'confirm partner fresh: no existing application with a service principal is marked as partner fresh, so there is nothing to confirm',
      );
    }
    expect(await directory()).toBe(before);
  });

  it('with the confirmation the roles are granted; later runs need it no more', async () => {
    const applied = await reconcile(withNewco, true, { confirm: { newco: forged.id.toUpperCase() } });
    expect(applied.warnings).toEqual([]);
    expect(applied.partners[1]!.objectId).toBe(forged.id);
    expect(applied.changes.filter((c) => c.kind === 'grant')).toHaveLength(2);
    const again = await reconcile(withNewco, true);
    expect([again.changes, again.warnings]).toEqual([[], []]);
  });

  it('a plan warns that an https identifier URI needs a verified domain of the tenant', async () => {
    const inventory = { ...orders, name: 'inventory', identifierUri: 'https://contoso.example/inventory' };
    const plan = await reconcile(t.topology({ apis: [orders, inventory], partners: [] }), false);
    expect(plan.warnings).toEqual([
      expect.stringMatching(/^partner contoso: .* is no longer in the topology/),
      expect.stringMatching(/^partner newco: .* is no longer in the topology/),
      'api inventory: Microsoft Graph accepts the identifier URI "https://contoso.example/inventory" only if its host is a domain verified in the tenant (the local emulator does not check); api:// URIs have no such condition',
    ]);
  });

  it('federated identity credentials are not checked against the emulator, which has none to list', async () => {
    // real Graph lists them at this path and a marked application holding one is refused;
    // the emulator answers 400 or 404, which reconcile takes as "not supported here"
    const err = await rejectionOf<GraphCallError>(
      t.graph.list(`/applications/${forged.id}/federatedIdentityCredentials`, 'read them'),
    );
    expect(err).toBeInstanceOf(GraphCallError);
    expect([400, 404]).toContain(err.status);
  });
});

describe('federatedCredentialProblems, against an HTTPS server answering as real Graph does', () => {
  const dir = tempDir('federated-');
  let server: TestServer;
  let ca: DevelopmentCa;
  const app = (id: string) =>
    ({
      id,
      appId: `app-${id}`,
      displayName: `name ${id}`,
      identifierUris: [],
      appRoles: [],
      tags: [],
    }) as GraphApp;

  beforeAll(async () => {
    ca = DevelopmentCa.loadOrCreate(join(dir.path, 'state'));
    server = await startHttpsServer(ca, (req, _body, res) => {
      const id = /^\/v1\.0\/applications\/([^/]+)\/federatedIdentityCredentials/.exec(req.url ?? '')?.[1];
      if (id === 'with-one')
        json(res, 200, { value: [{ id: 'f1', issuer: 'https://token.actions.example' }] });
      else if (id === 'with-none') json(res, 200, { value: [] });
      else json(res, 500, { error: { code: 'InternalServerError', message: 'broken' } });
    });
  });

  afterAll(async () => {
    await server.close();
    dir.remove();
  });

  it('refuses a marked application holding one; a failing Graph stops the run', async () => {
    const graph = new GraphRest({
      baseUrl: `${server.url}/v1.0`,
      token: async () => 't',
      ca: ca.certificatePem,
    });
    const run = new Run(graph, false);
    expect(
      await federatedCredentialProblems(run, [
        { kind: 'partner', name: 'newco', app: app('with-one') },
        { kind: 'api', name: 'orders', app: app('with-none') },
      ]),
    ).toEqual([
      'partner newco: "name with-one" (object id with-one) carries its mark but has a federated identity credential; certflow never creates them, so it was not made by certflow or was changed since: find out who added them, then remove them (or the mark) and run again',
    ]);
    const err = await rejectionOf(
      federatedCredentialProblems(run, [{ kind: 'api', name: 'orders', app: app('broken') }]),
    );
    expect(err.message).toMatch(/HTTP 500 InternalServerError: broken/);
    graph.close();
  });
});
