/**
 * State from earlier versions is migrated, never ignored: a state directory made the way the
 * version-1 stack made it (provisionApiAndPartner's unmarked registrations, the one partner's
 * keys in `partner/`) is taken over: `partner/` becomes `partners/contoso/`, the old API and
 * `contoso-partner` registrations are adopted (not duplicated), and the certificate stays.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraphClient, provisionApiAndPartner, startEmulator } from '@certflow/entra-emulator';
import { parseTopology, type GraphApp } from '@certflow/topology';
import { runJsonCommand } from './child-service';
import { requestPartnerToken } from './partner-credentials';
import { startStack, type StepReport } from './stack';
import { stackPartner } from './stack-file';
import { legacyAdoptions, migrateLegacyPartnerDirectory, partnerDirectory } from './topology-sync';
import { rolesIn } from './stack.test-helpers';
import { defaultTopologyJson, withEmulatorGraph, writeTopology } from './topology.test-helpers';
import { appEntryPoint } from './workspace';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

interface EarlierState {
  stateDir: string;
  api: { objectId: string; appId: string };
  partner: { objectId: string; appId: string };
  keyId: string;
  cer: Buffer;
}

/** The version-1 stack's step 1, 2 and 4, with its calls: the state an upgrade finds. */
async function earlierState(): Promise<EarlierState> {
  const stateDir = mkdtempSync(join(tmpdir(), 'certflow-v1-state-'));
  dirs.push(stateDir);
  const emulator = await startEmulator({ stateDir, port: 0 });
  const graph = await GraphClient.connect(emulator);
  try {
    const provisioned = await provisionApiAndPartner(graph, {
      apiDisplayName: 'certflow orders API',
      apiIdentifierUri: 'api://certflow-orders',
      roles: ['Orders.Read'],
      partnerDisplayName: 'contoso-partner',
      grantRoles: ['Orders.Read'],
    });
    const certificateDirectory = join(stateDir, 'partner');
    const created = await runJsonCommand(
      appEntryPoint('partner-worker'),
      ['cert', 'create', '--common-name', 'contoso-partner', '--json'],
      { ...process.env, PARTNER_CERT_DIR: certificateDirectory },
    );
    expect(created.code, created.output).toBe(0);
    const cer = readFileSync(join(certificateDirectory, 'partner.cer'));
    const { keyId } = await graph.addCertificate(provisioned.partner.objectId, cer, 'contoso-partner');
    writeFileSync(join(certificateDirectory, 'partner.key-id'), `${keyId}\n`);
    return { stateDir, api: provisioned.api, partner: provisioned.partner, keyId, cer };
  } finally {
    graph.close();
    await emulator.close();
  }
}

describe('a state directory of the version-1 stack', () => {
  for (const halfway of [false, true]) {
    it(`is taken over: keys moved, registrations adopted, nothing duplicated${halfway ? ' (a start killed after the move)' : ''}`, async () => {
      const old = await earlierState();
      // A start killed after its first action (the rename) leaves this; the next start goes on.
      if (halfway)
        migrateLegacyPartnerDirectory(
          old.stateDir,
          parseTopology(JSON.stringify(defaultTopologyJson()), join(old.stateDir, 'topology.json')).topology,
        );
      const steps: StepReport[] = [];
      const stack = await startStack({ stateDir: old.stateDir, onStep: (s) => steps.push(s) });
      try {
        const plan = steps[0]!.lines!.join('\n');
        if (!halfway)
          expect(plan).toContain(
            `migration: moved ${join(old.stateDir, 'partner')} to ${partnerDirectory(old.stateDir, 'contoso')}`,
          );
        expect(plan).toMatch(/^ *~ adopt api orders: /m);
        expect(plan).toMatch(/^ *~ adopt partner contoso: /m);
        expect(plan).not.toMatch(/create (api orders|partner contoso)/);
        expect(plan).not.toMatch(/upload partner contoso/);
        expect(plan).toMatch(/^ *\+ create role Orders\.Write of api orders: /m);
        expect(plan).toMatch(/^ *\+ create partner fabrikam: /m);

        expect(existsSync(join(old.stateDir, 'partner'))).toBe(false);
        const contoso = stackPartner(stack.file, 'contoso');
        expect(contoso.certificateDirectory).toBe(partnerDirectory(old.stateDir, 'contoso'));
        expect(readFileSync(join(contoso.certificateDirectory, 'partner.cer'))).toEqual(old.cer);
        expect(readFileSync(join(contoso.certificateDirectory, 'partner.key-id'), 'utf8').trim()).toBe(
          old.keyId,
        );
        const step4 = steps.find((s) => s.partner === 'contoso' && s.step === 4)!;
        expect(step4.details).toContainEqual(['keyCredential', `${old.keyId} (already registered)`]);

        // The same registrations, now marked; no second API or contoso.
        expect(contoso.objectId).toBe(old.partner.objectId);
        expect(stack.file.apis[0]!.objectId).toBe(old.api.objectId);
        const graph = await GraphClient.connect(stack.emulator);
        const apps = await graph.listApplications();
        graph.close();
        expect(apps.filter((a) => a.identifierUris?.includes('api://certflow-orders'))).toHaveLength(1);
        expect(apps.filter((a) => a.displayName === 'contoso-partner')).toHaveLength(1);
        const token = await requestPartnerToken(stack.file, contoso);
        expect(rolesIn(token)).toEqual(['Orders.Read']);
      } finally {
        await stack.close();
      }
      const again: StepReport[] = [];
      const restarted = await startStack({ stateDir: old.stateDir, onStep: (s) => again.push(s) });
      await restarted.close();
      expect(again[0]!.lines!.join('\n')).toContain('No changes: the directory matches');
    }, 120_000);
  }

  it('a start killed after the move, the old registration renamed, then a topology without contoso: the keys it holds are kept', async () => {
    const old = await earlierState();
    migrateLegacyPartnerDirectory(
      old.stateDir,
      parseTopology(JSON.stringify(defaultTopologyJson()), join(old.stateDir, 'topology.json')).topology,
    );
    const moved = partnerDirectory(old.stateDir, 'contoso');
    expect(readFileSync(join(moved, 'partner.cer'))).toEqual(old.cer);
    // Renamed over Graph: neither its name nor its tags say contoso any more; its keyCredentials still do.
    const emulator = await startEmulator({ stateDir: old.stateDir, port: 0 });
    const admin = await GraphClient.connect(emulator);
    await admin.updateApplication(old.partner.objectId, { displayName: 'contoso-partner (legacy)' });
    admin.close();
    await emulator.close();

    const data = defaultTopologyJson();
    data.partners = data.partners.filter((p) => p.name !== 'contoso');
    const steps: StepReport[] = [];
    const stack = await startStack({
      stateDir: old.stateDir,
      topologyFile: writeTopology(old.stateDir, 'without-contoso.json', data),
      onStep: (s) => steps.push(s),
    });
    try {
      const plan = steps[0]!.lines!.join('\n');
      expect(plan).not.toContain(`removed ${moved}`);
      expect(plan).toContain(
        `kept ${moved}: partner "contoso" is not in the topology, but the registration "contoso-partner (legacy)" (object id ${old.partner.objectId}) still holds its certificate`,
      );
      expect(readFileSync(join(moved, 'partner.cer'))).toEqual(old.cer);
      expect(readFileSync(join(moved, 'partner.key.pem'), 'utf8')).toContain('PRIVATE KEY');
      const graph = await GraphClient.connect(stack.emulator);
      const apps = await graph.listApplications();
      graph.close();
      const legacy = apps.find((a) => a.id === old.partner.objectId);
      expect(legacy?.displayName).toBe('contoso-partner (legacy)');
      expect(legacy?.tags ?? []).not.toContain('certflow-topology');
    } finally {
      await stack.close();
    }
  }, 120_000);

  it('without a partner contoso in the topology, the old keys and registration are left and it says why', async () => {
    const old = await earlierState();
    const data = defaultTopologyJson();
    data.partners = data.partners.filter((p) => p.name !== 'contoso');
    const { topology } = parseTopology(JSON.stringify(data), join(old.stateDir, 'topology.json'));

    expect(migrateLegacyPartnerDirectory(old.stateDir, topology)).toEqual([
      `left ${join(old.stateDir, 'partner')} (the keys of the earlier single partner): the topology has no partner "contoso" to take them over; delete the directory if they are no longer needed`,
    ]);
    expect(existsSync(join(old.stateDir, 'partner', 'partner.cer'))).toBe(true);

    await withEmulatorGraph(old.stateDir, async (graph) => {
      const found = legacyAdoptions(
        await graph.list<GraphApp>('/applications?$select=id,appId,displayName,identifierUris,tags'),
        topology,
      );
      expect(found.adopt).toEqual({ apis: { orders: old.api.objectId }, partners: {} });
      expect(found.notes).toEqual([
        `left the registration contoso-partner (appId ${old.partner.appId}) of an earlier version unmarked and untouched: the topology has no partner "contoso" to adopt it as; remove it in the portal if it is no longer needed`,
      ]);
    });
  }, 60_000);
});
