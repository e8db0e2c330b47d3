/**
 * Which key directories of partners that left the topology go, and which stay because an
 * application of the directory holds their certificate; and which registrations of earlier
 * versions are adopted.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSelfSignedCertificate, pemToDer } from '@certflow/certs';
import { GraphRest, parseTopology } from '@certflow/topology';
import { legacyAdoptions, leftoverKeyDirectories, partnerDirectory } from './topology-sync';
import { defaultTopologyJson, withEmulatorGraph } from './topology.test-helpers';

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
  it('removes a key directory only when no application holds its certificates, whatever its tags or name', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'certflow-leftover-'));
    dirs.push(stateDir);
    await withEmulatorGraph(stateDir, async (graph, client) => {
      /** A partner key directory as `cert create` leaves it; returns its .cer (DER). */
      const keyDirectory = (name: string, sub = ''): Buffer => {
        const made = createSelfSignedCertificate({ commonName: `${name}-partner` });
        const dir = join(partnerDirectory(stateDir, name), sub);
        mkdirSync(dir, { recursive: true });
        const cer = pemToDer(made.certificatePem);
        writeFileSync(join(dir, 'partner.cer'), cer);
        writeFileSync(join(dir, 'partner.crt.pem'), made.certificatePem);
        writeFileSync(join(dir, 'partner.key.pem'), made.privateKeyPem, { mode: 0o600 });
        return cer;
      };
      const register = (displayName: string, tags: string[] = []) =>
        client.createApplication({ displayName, tags });

      // The attacker's repro: the earlier version's unmarked contoso-partner, renamed, still holds the certificate.
      const legacy = await register('contoso-partner');
      await client.addCertificate(legacy.id, keyDirectory('contoso'));
      await client.updateApplication(legacy.id, { displayName: 'contoso-partner (legacy)' });
      // A partner's .cer uploaded to some other application, under an identifier that is not its thumbprint.
      const other = await register('orders tooling');
      await graph.patch(`/applications/${other.id}`, {
        keyCredentials: [
          {
            type: 'AsymmetricX509Cert',
            usage: 'Verify',
            key: keyDirectory('elsewhere').toString('base64'),
            customKeyIdentifier: 'not-a-thumbprint',
          },
        ],
      });
      // `cert rotate` kept the registered certificate in previous/; the current one is not registered yet.
      const rotated = await register('look-alike', marked('partner', 'someone-else'));
      await client.addCertificate(rotated.id, keyDirectory('rotated', 'previous'));
      keyDirectory('rotated');
      // Marked as the partner, named like it, but holding none of its certificates: nothing to keep.
      await register('gone-partner', marked('partner', 'gone'));
      keyDirectory('gone');
      mkdirSync(partnerDirectory(stateDir, 'empty'));
      mkdirSync(partnerDirectory(stateDir, 'locked'));
      writeFileSync(join(partnerDirectory(stateDir, 'locked'), 'partner.key.pem'), 'not a key');

      const withoutThem = topology((t) => (t.partners = []));
      const { remove, keep } = await leftoverKeyDirectories(graph, stateDir, withoutThem);
      expect(remove.sort()).toEqual(['empty', 'gone'].map((n) => partnerDirectory(stateDir, n)));
      const kept = (name: string, why: string) =>
        `kept ${partnerDirectory(stateDir, name)}: partner "${name}" is not in the topology, but ${why}; delete the directory once no registration uses these keys`;
      expect(keep.sort()).toEqual([
        kept(
          'contoso',
          `the registration "contoso-partner (legacy)" (object id ${legacy.id}) still holds its certificate`,
        ),
        kept(
          'elsewhere',
          `the registration "orders tooling" (object id ${other.id}) still holds its certificate`,
        ),
        kept('locked', `"partner.key.pem" cannot be read to compare with the registrations' certificates`),
        kept(
          'rotated',
          `the registration "look-alike" (object id ${rotated.id}) still holds its certificate`,
        ),
      ]);
    });
  }, 60_000);

  it('has nothing to do without a partners directory', async () => {
    const graph = new GraphRest({ baseUrl: 'https://localhost:1/graph/v1.0', token: async () => 'none' });
    expect(await leftoverKeyDirectories(graph, '/srv/nowhere', topology())).toEqual({ remove: [], keep: [] });
    graph.close();
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
