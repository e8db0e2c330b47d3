/**
 * The start proves each partner's access: an answer other than the one the topology grants
 * fails it, naming the partner, the call, the expected and the actual answer. Here an operation
 * policy from the topology makes the gateway answer POST /orders itself with 418, so the
 * topology's operation policies are shown to reach the gateway too.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startStack, type StepReport } from './stack';
import { StepFailedError } from './step';
import { defaultTopologyJson, writeTopology } from './topology.test-helpers';

const dir = mkdtempSync(join(tmpdir(), 'certflow-access-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TEAPOT = `<policies>
  <inbound><base /><return-response><set-status code="418" reason="Teapot" /></return-response></inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>`;

writeFileSync(join(dir, 'teapot.xml'), TEAPOT);

describe('the access check of npm start', () => {
  it('fails the start when a partner gets another answer than the topology grants', async () => {
    const topology = defaultTopologyJson();
    topology.apis[0]!.operations = [{ method: 'POST', urlTemplate: '/orders', policy: 'teapot.xml' }];
    const file = writeTopology(dir, 'topology.json', topology);
    const started = startStack({ stateDir: join(dir, 'state'), topologyFile: file });
    await expect(started).rejects.toThrow(StepFailedError);
    await expect(started).rejects.toThrow(
      'steps 5–8 (partner contoso) failed: partner contoso, POST /orders: expected 403 (requires Orders.Write; contoso holds Orders.Read), got 418',
    );
  }, 60_000);

  it("step 8 names the policy files the gateway ran for GET /orders: the topology's, not a fixed path", async () => {
    const topology = defaultTopologyJson();
    const served = join(dir, 'served-policy.xml');
    copyFileSync(topology.apis[0]!.policy, served);
    const getOrders = join(dir, 'get-orders.xml');
    writeFileSync(getOrders, TEAPOT.replace(/<return-response>.*<\/return-response>/, ''));
    topology.apis[0]!.policy = served;
    topology.apis[0]!.operations = [
      { method: 'GET', urlTemplate: '/orders/{id}', policy: 'teapot.xml' },
      { method: 'GET', urlTemplate: '/orders', policy: 'get-orders.xml' },
    ];
    const steps: StepReport[] = [];
    const stack = await startStack({
      stateDir: join(dir, 'state-8'),
      topologyFile: writeTopology(dir, 'own-policy.json', topology),
      onStep: (s) => steps.push(s),
    });
    await stack.close();
    const eight = steps.filter((s) => s.step === 8).map((s) => s.where);
    expect(eight).toHaveLength(2);
    for (const where of eight)
      expect(where).toBe(`${served} and ${getOrders} in tools/local-gateway, then apps/api`);
  }, 60_000);

  it('warns, naming the operation, when the topology no longer defines a role the API requires', async () => {
    const topology = defaultTopologyJson();
    topology.apis[0]!.appRoles = topology.apis[0]!.appRoles.filter((r) => r.value !== 'Orders.Write');
    for (const p of topology.partners) p.roles = { orders: ['Orders.Read'] };
    const steps: StepReport[] = [];
    const stack = await startStack({
      stateDir: join(dir, 'state-unreachable'),
      topologyFile: writeTopology(dir, 'no-write.json', topology),
      onStep: (s) => steps.push(s),
    });
    await stack.close();
    const warning = steps.find((s) => s.title === 'Warning: operations no partner can reach');
    expect(warning?.details).toEqual([
      ['POST /orders', 'requires Orders.Write, which api orders of the topology does not define'],
    ]);
  }, 60_000);
});
