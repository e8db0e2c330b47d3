/**
 * Which key directories of partners that left the topology go, and which stay because a
 * registration may still use them; and which registrations of earlier versions are adopted.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTopology } from '@certflow/topology';
import { legacyAdoptions, leftoverKeyDirectories, partnerDirectory } from './topology-sync';
import { defaultTopologyJson } from './topology.test-helpers';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const topology = (edit: (t: ReturnType<typeof defaultTopologyJson>) => void = () => {}) => {
  const data = defaultTopologyJson();
  edit(data);
  return parseTopology(JSON.stringify(data), '/srv/certflow/topology.json').topology;
};

const app = (id: string, displayName: string, tags: string[] = [], identifierUris: string[] = []) => ({
  id,
  appId: `app-${id}`,
  displayName,
  tags,
  identifierUris,
});
const marked = (kind: string, name: string): string[] => [
  'certflow-topology',
  `certflow-topology:${kind}:${name}`,
];

describe('leftoverKeyDirectories', () => {
  it('removes only what no registration can use; keeps the rest and says why', () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'certflow-leftover-'));
    dirs.push(stateDir);
    for (const name of ['contoso', 'fabrikam', 'gone', 'never', 'hijacked', 'still'])
      mkdirSync(partnerDirectory(stateDir, name), { recursive: true });
    writeFileSync(join(partnerDirectory(stateDir, 'contoso'), 'partner.cer'), 'x');
    const withoutContoso = topology((t) => (t.partners = t.partners.filter((p) => p.name !== 'contoso')));
    const apps = [
      // The earlier version's contoso-partner, left unmarked because the topology has no contoso.
      app('1', 'contoso-partner'),
      app('2', 'gone-partner', marked('partner', 'gone')),
      app('3', 'hijacked-partner', marked('partner', 'hijacked')),
      app('4', 'look-alike', marked('partner', 'hijacked')),
      app('5', 'still-partner', marked('partner', 'still')),
    ];
    const removed = [
      { kind: 'partner' as const, name: 'gone', objectId: '2' },
      { kind: 'partner' as const, name: 'hijacked', objectId: '3' },
    ];

    const { remove, keep } = leftoverKeyDirectories(stateDir, withoutContoso, apps, removed);
    expect(remove.sort()).toEqual(['gone', 'hijacked', 'never'].map((n) => partnerDirectory(stateDir, n)));
    expect(keep).toEqual([
      `kept ${partnerDirectory(stateDir, 'contoso')}: partner "contoso" is not in the topology, but the registration contoso-partner of an earlier version may still use these keys; delete the directory once they are no longer needed`,
      `kept ${partnerDirectory(stateDir, 'still')}: partner "still" is not in the topology, but a registration marked as partner still is still in the directory and may use these keys; delete the directory once they are no longer needed`,
    ]);
  });

  it('has nothing to do without a partners directory', () => {
    expect(leftoverKeyDirectories('/srv/nowhere', topology(), [], [])).toEqual({ remove: [], keep: [] });
  });
});

describe('legacyAdoptions', () => {
  it('finds the old API by its identifier URI in any case, as reconcile and Entra ID compare it', () => {
    const found = legacyAdoptions(
      [app('7', 'certflow orders API', [], ['API://Certflow-Orders']), app('8', 'contoso-partner')],
      topology(),
    );
    expect(found).toEqual({ adopt: { apis: { orders: '7' }, partners: { contoso: '8' } }, notes: [] });
  });

  it('adopts nothing for a name the directory already has a marked object for', () => {
    const found = legacyAdoptions(
      [
        app('7', 'old', [], ['api://certflow-orders']),
        app('9', 'orders', marked('api', 'orders'), ['api://other']),
        app('8', 'contoso-partner'),
        app('10', 'contoso', marked('partner', 'contoso')),
      ],
      topology(),
    );
    expect(found).toEqual({ adopt: { apis: {}, partners: {} }, notes: [] });
  });
});
