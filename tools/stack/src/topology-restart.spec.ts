/**
 * Editing the topology and restarting the stack on the same state directory changes the
 * directory to match, and each change shows in the plan, in the partners' tokens (`roles`)
 * and in the API's answers: a third partner with no role, a role removed, a partner removed.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { partnerCertificate, partnerTokenResponse, requestPartnerToken } from './partner-credentials';
import { startStack, type RunningStack, type StepReport } from './stack';
import { stackPartner, type StackFile } from './stack-file';
import { httpsStatus, rolesIn } from './stack.test-helpers';
import { defaultTopologyJson, writeTopology, type TopologyJson } from './topology.test-helpers';

const stateDir = mkdtempSync(join(tmpdir(), 'certflow-restart-'));
afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

/** Starts the stack with `topology`, hands it and step 1's plan to `check`, stops it. */
async function restart(
  topology: TopologyJson,
  check: (stack: RunningStack, plan: string) => Promise<void>,
): Promise<void> {
  const steps: StepReport[] = [];
  const file = writeTopology(stateDir, 'topology.json', topology);
  const stack = await startStack({ stateDir, topologyFile: file, onStep: (s) => steps.push(s) });
  try {
    await check(stack, steps[0]!.lines!.join('\n'));
  } finally {
    await stack.close();
  }
}

/** Status of `method /orders` through the gateway with partner `name`'s token. */
async function answer(file: StackFile, name: string, method: 'GET' | 'POST'): Promise<number> {
  const token = await requestPartnerToken(file, stackPartner(file, name));
  const order = { customerReference: 'PO-restart', total: { amount: '2.00', currency: 'EUR' } };
  return httpsStatus(`${file.gateway.url}/orders`, readFileSync(file.caCertificatePath), {
    method,
    token,
    ...(method === 'POST' ? { json: order } : {}),
  });
}

describe('a restart after the topology changed', () => {
  it('adds a partner with no role, removes a role, removes a partner; then changes nothing', async () => {
    const topology = defaultTopologyJson();
    await restart(topology, async (stack) => {
      expect(rolesIn(await requestPartnerToken(stack.file, stackPartner(stack.file, 'fabrikam')))).toEqual([
        'Orders.Read',
        'Orders.Write',
      ]);
    });

    // A third partner, granted nothing.
    topology.partners.push({ name: 'northwind', displayName: 'northwind-partner', roles: {} });
    let northwind: { partner: ReturnType<typeof stackPartner>; cert: ReturnType<typeof partnerCertificate> };
    await restart(topology, async (stack, plan) => {
      expect(plan).toMatch(/^ *\+ create partner northwind: "northwind-partner"$/m);
      expect(plan).not.toMatch(/partner (contoso|fabrikam)/);
      const partner = stackPartner(stack.file, 'northwind');
      northwind = { partner, cert: partnerCertificate(partner) };
      expect(rolesIn(await requestPartnerToken(stack.file, partner))).toEqual([]);
      expect(await answer(stack.file, 'northwind', 'GET')).toBe(403);
      expect(await answer(stack.file, 'northwind', 'POST')).toBe(403);
      expect(await answer(stack.file, 'contoso', 'GET')).toBe(200);
    });

    // Orders.Write removed from the API (and so from fabrikam's grants).
    topology.apis[0]!.appRoles = topology.apis[0]!.appRoles.filter((r) => r.value !== 'Orders.Write');
    topology.partners[1]!.roles.orders = ['Orders.Read'];
    await restart(topology, async (stack, plan) => {
      expect(plan).toMatch(/^ *- revoke partner fabrikam: Orders\.Write on api orders/m);
      expect(plan).toMatch(/^ *- delete role Orders\.Write of api orders: disabled, then removed/m);
      expect(stack.file.apis[0]!.roles).toEqual(['Orders.Read']);
      expect(rolesIn(await requestPartnerToken(stack.file, stackPartner(stack.file, 'fabrikam')))).toEqual([
        'Orders.Read',
      ]);
      expect(await answer(stack.file, 'fabrikam', 'POST')).toBe(403);
      expect(await answer(stack.file, 'fabrikam', 'GET')).toBe(200);
    });

    // northwind leaves: its registration and its key directory go; its certificate gets nothing.
    topology.partners = topology.partners.filter((p) => p.name !== 'northwind');
    await restart(topology, async (stack, plan) => {
      expect(plan).toMatch(/^ *- delete partner northwind: /m);
      expect(plan).toContain(
        `removed ${join(stateDir, 'partners', 'northwind')} (its partner left the topology)`,
      );
      expect(existsSync(join(stateDir, 'partners', 'northwind'))).toBe(false);
      expect(stack.file.partners.map((p) => p.name)).toEqual(['contoso', 'fabrikam']);
      const refused = await partnerTokenResponse(stack.file, northwind.partner, northwind.cert);
      expect(refused.status, refused.text).not.toBe(200);
      expect(refused.text).toMatch(/AADSTS700016/);
      expect(await answer(stack.file, 'contoso', 'GET')).toBe(200);
    });

    await restart(topology, async (_stack, plan) => {
      expect(plan).toContain('No changes: the directory matches');
    });
  }, 240_000);
});
