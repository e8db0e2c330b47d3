/**
 * A mark is a claim, not proof: reconcile refuses, before any write, the marked applications it
 * cannot trust (one mark on two applications, two marks on one, client secrets, a marked partner
 * with no service principal that is to get roles), and the plan names the object ids of the
 * existing registrations it grants roles to. Against the emulator's Graph (real HTTPS, tokens).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejectionOf } from '@certflow/testing';
import { formatChanges } from './plan-format';
import { reconcileTopology } from './reconcile';
import { markOf, type ReconcileResult } from './reconcile-types';
import {
  ordersApi as orders,
  ordersPartner as partner,
  startTestDirectory,
  type TestDirectory,
} from './reconcile.test-helpers';
import type { Topology } from './types';

describe('reconcileTopology does not trust a mark blindly', () => {
  let t: TestDirectory;
  let base: Topology;
  let first: ReconcileResult;
  const reconcile = (topology: Topology, apply = true) =>
    reconcileTopology({ graph: t.graph, topology, apply, prune: false });
  /** The directory (applications and the assignments of every service principal) as a string. */
  const snapshot = async () => {
    const apps = await t.applications();
    const assignments = [];
    for (const app of apps) {
      const sp = await t.admin.findServicePrincipalByAppId(app.appId);
      if (sp) assignments.push(...(await t.admin.listAppRoleAssignments(sp.id)));
    }
    return JSON.stringify({ apps, assignments });
  };
  /** Both the plan and the apply stop with `problem`, and the directory is unchanged. */
  const refused = async (topology: Topology, problem: string) => {
    const before = await snapshot();
    for (const apply of [false, true]) {
      const err = await rejectionOf(reconcile(topology, apply));
      expect(err.message).toBe(
        `The directory cannot be brought to the topology; nothing was changed:\n  ${problem}`,
      );
    }
    expect(await snapshot()).toBe(before);
  };

  beforeAll(async () => {
    t = await startTestDirectory();
    base = t.topology({ apis: [orders], partners: [partner('contoso', ['Orders.Read'])] });
    first = await reconcile(base);
  }, 120_000);

  afterAll(async () => {
    await t?.close();
  });

  it('refuses a second application carrying a partner mark, naming both', async () => {
    const contoso = first.partners[0]!;
    const forged = await t.admin.createApplication({
      displayName: 'innocent-looking-app',
      tags: markOf('partner', 'contoso'),
    });
    await t.admin.createServicePrincipal(forged.appId);
    // in the order Graph lists them
    await refused(
      base,
      `partner contoso: two applications carry its mark, "contoso-partner" (object id ${contoso.objectId}) and "innocent-looking-app" (object id ${forged.id}); find out which one certflow created and remove the mark (tags) from the other`,
    );
    await t.admin.deleteApplication(forged.id);
  });

  it('refuses an application carrying two marks', async () => {
    const both = await t.admin.createApplication({
      displayName: 'both',
      tags: [...markOf('partner', 'newco'), `${markOf('api', 'orders')[1]}`],
    });
    await refused(
      base,
      `"both" (object id ${both.id}) carries 2 marks (partner newco, api orders); certflow marks an application once: remove the marks that are not its own`,
    );
    await t.admin.deleteApplication(both.id);
  });

  it('refuses an application carrying two marks of the same kind, whichever comes first', async () => {
    const both = await t.admin.createApplication({
      displayName: 'two-partners',
      tags: [...markOf('partner', 'zzz'), markOf('partner', 'contoso')[1]!],
    });
    await t.admin.createServicePrincipal(both.appId);
    await refused(
      base,
      `"two-partners" (object id ${both.id}) carries 2 marks (partner zzz, partner contoso); certflow marks an application once: remove the marks that are not its own`,
    );
    await t.admin.deleteApplication(both.id);
  });

  it('prints marks read from the directory with control characters escaped', async () => {
    const esc = '\u001b]0;owned\u0007\u202e';
    const forged = await t.admin.createApplication({
      displayName: `x${esc}`,
      tags: [...markOf('partner', `n${esc}`), markOf('api', `a${esc}`)[1]!],
    });
    const adopted = await t.admin.createApplication({
      displayName: 'y',
      tags: [`certflow-topology:other${esc}`, 'certflow-topology'],
    });
    const err = await rejectionOf(
      reconcileTopology({
        graph: t.graph,
        topology: t.topology({
          apis: [orders],
          partners: [partner('contoso', ['Orders.Read']), partner('newco', [])],
        }),
        apply: false,
        prune: false,
        adopt: { partners: { newco: adopted.id } },
      }),
    );
    // eslint-disable-next-line no-control-regex -- the point
    expect(err.message).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/);
    expect(err.message).toContain(
      `"x\\u001b]0;owned\\u0007\\u202e" (object id ${forged.id}) carries 2 marks (partner "n\\u001b]0;owned\\u0007\\u202e", api "a\\u001b]0;owned\\u0007\\u202e")`,
    );
    expect(err.message).toContain(`"certflow-topology:other\\u001b]0;owned\\u0007\\u202e"`);
    await t.admin.deleteApplication(forged.id);
    await t.admin.deleteApplication(adopted.id);
  });

  it('refuses a marked application that holds a client secret', async () => {
    const forged = await t.admin.createApplication({
      displayName: 'newco-app',
      tags: markOf('partner', 'newco'),
    });
    await t.admin.createServicePrincipal(forged.appId);
    const secret = await t.admin.addPassword(forged.id, 'mine');
    const topology = t.topology({
      apis: [orders],
      partners: [partner('contoso', ['Orders.Read']), partner('newco', ['Orders.Read', 'Orders.Write'])],
    });
    await refused(
      topology,
      `partner newco: "newco-app" (object id ${forged.id}) carries its mark but has a client secret; certflow never creates secrets, so it was not made by certflow or was changed since: find out who added them, then remove the secrets (or the mark) and run again`,
    );
    await t.admin.removePassword(forged.id, secret.keyId);
    await t.admin.deleteApplication(forged.id);
  });

  it('refuses roles to a marked partner application that has no service principal', async () => {
    const forged = await t.admin.createApplication({
      displayName: 'newco-app',
      tags: markOf('partner', 'newco'),
    });
    const problem = `partner newco: "newco-app" (object id ${forged.id}) carries its mark but has no service principal, and the topology grants it roles; certflow creates both together, so it was not made by certflow (or a run stopped in between): check it, then delete it or remove its mark, and run again (a new registration is created)`;
    await refused(
      t.topology({
        apis: [orders],
        partners: [partner('contoso', ['Orders.Read']), partner('newco', ['Orders.Read'])],
      }),
      problem,
    );
    // without roles there is nothing to take: its service principal is planned as usual
    const plan = await reconcile(
      t.topology({ apis: [orders], partners: [partner('contoso', ['Orders.Read']), partner('newco', [])] }),
      false,
    );
    expect(plan.changes.map((c) => `${c.kind} ${c.subject}`)).toEqual([
      'create service principal of partner newco',
      'update partner newco',
    ]);
    await t.admin.deleteApplication(forged.id);
  });

  it('names, in the plan, the object id of every existing registration it grants roles to', async () => {
    const contoso = first.partners[0]!;
    const topology = t.topology({
      apis: [orders],
      partners: [partner('contoso', ['Orders.Read', 'Orders.Write']), partner('fabrikam', ['Orders.Read'])],
    });
    const text = formatChanges(await reconcile(topology, false), 'certflow.topology.json');
    expect(text.split('\n')).toEqual([
      'Plan: 3 changes to bring the directory to certflow.topology.json (nothing written):',
      '  + grant partner contoso: Orders.Write on api orders',
      '  + create partner fabrikam: "fabrikam-partner"',
      '  + grant partner fabrikam: Orders.Read on api orders',
      'Roles go to these existing registrations, found by their certflow-topology mark (a mark is a claim, not proof: check each is yours):',
      `  partner contoso: object id ${contoso.objectId}, client id ${contoso.appId}`,
    ]);
  });
});
