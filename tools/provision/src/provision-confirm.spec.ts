/**
 * `--confirm partner:NAME=OBJECT_ID` end to end (the built CLI against a real emulator): an
 * application someone created and gave a new partner's mark gets no roles until a person
 * confirms it by object id; a bad `--confirm` is a usage error.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphClient, startEmulator, type RunningEmulator } from '@certflow/entra-emulator';
import {
  emulatorOptions,
  ensureBuilt,
  grantedRoles,
  graphIdentity,
  marked,
  runCli,
  storedDirectory,
  writeTopology,
  type CliResult,
} from './provision.test-helpers';

const ordersApi = {
  name: 'orders',
  displayName: 'provision test orders API',
  identifierUri: 'api://certflow-provision-orders',
  appRoles: [{ value: 'Orders.Read' }],
  policy: 'policy.xml',
};
const OTHER_ID = '00000000-0000-4000-8000-00000000000c';

describe('npm run provision --confirm', () => {
  const work = mkdtempSync(join(tmpdir(), 'provision-confirm-'));
  const stateDir = join(work, 'state');
  let emulator: RunningEmulator;
  let admin: GraphClient;
  let provisioner: Record<string, string>;
  let topology: string;

  const provision = (args: string[]): Promise<CliResult> =>
    runCli([...args, ...emulatorOptions(emulator, topology)], provisioner, work);

  beforeAll(async () => {
    ensureBuilt();
    emulator = await startEmulator({ stateDir, port: 0 });
    admin = await GraphClient.connect(emulator);
    ({ env: provisioner } = await graphIdentity(emulator, admin, work, 'provisioner', [
      'Application.ReadWrite.All',
      'AppRoleAssignment.ReadWrite.All',
    ]));
    topology = writeTopology(work, 'certflow.topology.json', {
      apis: [ordersApi],
      partners: [{ name: 'newco', displayName: 'newco-partner', roles: { orders: ['Orders.Read'] } }],
    });
  }, 120_000);

  afterAll(async () => {
    await emulator?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('refuses a bad --confirm with exit code 2, naming the option', async () => {
    const cases: [string[], RegExp][] = [
      [['--confirm', `api:orders=${OTHER_ID}`], /--confirm: "api:orders=.*" is not partner:NAME=OBJECT_ID/],
      [
        ['--confirm', 'partner:newco=\u001b[2K'],
        /--confirm: "partner:newco=\\u001b\[2K" is not partner:NAME=OBJECT_ID/,
      ],
      [
        ['--confirm', `partner:a=${OTHER_ID}`, '--confirm', `partner:a=${OTHER_ID}`],
        /--confirm: partner a is given twice/,
      ],
      [
        ['--confirm', `partner:billing=${OTHER_ID}`],
        /--confirm partner:billing: .* has no partner "billing"/,
      ],
    ];
    for (const [args, message] of cases) {
      const run = await provision(['--plan', ...args]);
      expect({ args, code: run.code, stdout: run.stdout }).toEqual({ args, code: 2, stdout: '' });
      expect(run.stderr).toMatch(message);
    }
  });

  it('first roles to an existing marked registration wait for --confirm partner:NAME=OBJECT_ID', async () => {
    const forged = await admin.createApplication({
      displayName: 'innocent',
      tags: ['certflow-topology', 'certflow-topology:partner:newco'],
    });
    await admin.createServicePrincipal(forged.appId);
    const flag = `--confirm partner:newco=${forged.id}`;

    const plan = await provision(['--plan']);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toContain(
      `warning: partner newco: its first roles would go to "innocent" (object id ${forged.id}), client id ${forged.appId}, created ${forged.createdDateTime}, `,
    );
    expect(plan.stdout).toContain(`; to apply, confirm it with ${flag}`);

    const before = storedDirectory(stateDir);
    const refused = await provision(['--apply']);
    expect({ code: refused.code, stdout: refused.stdout }).toEqual({ code: 1, stdout: '' });
    expect(refused.stderr).toContain('nothing was changed');
    expect(refused.stderr).toContain(`then run again with ${flag}`);
    const wrong = await provision(['--apply', '--confirm', `partner:newco=${OTHER_ID}`]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(`not object id ${OTHER_ID}`);
    expect(storedDirectory(stateDir)).toEqual(before);

    const confirmed = await provision(['--apply', '--confirm', `partner:newco=${forged.id}`]);
    expect(confirmed.code).toBe(0);
    const after = storedDirectory(stateDir);
    expect(grantedRoles(after, forged.appId, marked(after, 'api', 'orders')!.appId)).toEqual(['Orders.Read']);
    const again = await provision(['--plan']);
    expect(again.stdout).toMatch(/^No changes: the directory matches /);
  });
});
