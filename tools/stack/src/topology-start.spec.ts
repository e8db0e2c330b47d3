/**
 * A bad topology file stops `npm start` before anything happens: exit 2 with the loader's
 * message, and the state directory exactly as it was (or still absent). A failure after step 1
 * (which has changed the directory) says what step 1 changed.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOCK_FILE } from '@certflow/entra-emulator';
import { defaultTopologyJson, writeTopology, type TopologyJson } from './topology.test-helpers';

const dir = mkdtempSync(join(tmpdir(), 'certflow-bad-topology-'));
const main = join(__dirname, '..', 'dist', 'main.js');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every entry under `root` with its mode and, for files, the SHA-256 of its content. */
function snapshot(root: string): string[] {
  return readdirSync(root, { recursive: true, encoding: 'utf8' })
    .sort()
    .map((entry) => {
      const path = join(root, entry);
      const stat = statSync(path);
      const content = stat.isFile() ? createHash('sha256').update(readFileSync(path)).digest('hex') : 'dir';
      return `${entry} ${(stat.mode & 0o777).toString(8)} ${content}`;
    });
}

/** A state directory as an earlier version left it: the old partner directory must not be moved. */
function earlierStateDirectory(): string {
  const state = join(dir, 'state');
  mkdirSync(join(state, 'partner'), { recursive: true, mode: 0o700 });
  writeFileSync(join(state, 'partner', 'partner.cer'), 'not really a certificate');
  writeFileSync(join(state, 'emulator-state.json'), '{"left":"as it was"}', { mode: 0o600 });
  writeFileSync(join(state, 'gateway-access.log'), '');
  return state;
}

function edited(edit: (t: TopologyJson) => void): TopologyJson {
  const data = defaultTopologyJson();
  edit(data);
  return data;
}

const cases: [string, () => string, (file: string) => string][] = [
  [
    'an unknown role',
    () =>
      writeTopology(
        dir,
        'unknown-role.json',
        edited((t) => (t.partners[1]!.roles.orders = ['Orders.Wrte'])),
      ),
    () => 'partners[1].roles.orders[0]: no role "Orders.Wrte" on api "orders" (did you mean "Orders.Write"?)',
  ],
  [
    'a duplicate partner',
    () =>
      writeTopology(
        dir,
        'duplicate-partner.json',
        edited((t) => t.partners.push({ name: 'contoso', displayName: 'again', roles: {} })),
      ),
    () => 'partners[2].name: duplicate partner name "contoso" (also partners[0].name)',
  ],
  [
    'invalid JSON',
    () => writeTopology(dir, 'invalid.json', '{\n  "apis": [],\n  "partners": [,]\n}\n'),
    () => `line 3, column 16: invalid JSON: expected a value, found ','`,
  ],
  [
    'a policy file that does not exist',
    () =>
      writeTopology(
        dir,
        'missing-policy.json',
        edited((t) => (t.apis[0]!.policy = 'missing-policy.xml')),
      ),
    () => `apis[0].policy: file "missing-policy.xml" not found (${join(dir, 'missing-policy.xml')})`,
  ],
];

describe('npm start with a bad topology file', () => {
  const state = earlierStateDirectory();
  const before = snapshot(state);

  for (const [name, write, problem] of cases) {
    it(`${name}: exit 2 with the message, the state directory unchanged, a missing one not created`, () => {
      const file = write();
      for (const [stateDir, how] of [
        [state, '--topology'],
        [join(dir, 'never-created'), 'CERTFLOW_TOPOLOGY'],
      ] as const) {
        const run = spawnSync(
          process.execPath,
          [main, '--once', '--state-dir', stateDir, ...(how === '--topology' ? ['--topology', file] : [])],
          {
            encoding: 'utf8',
            timeout: 30_000,
            env: { ...process.env, ...(how === 'CERTFLOW_TOPOLOGY' ? { CERTFLOW_TOPOLOGY: file } : {}) },
          },
        );
        expect(run.status, run.stdout + run.stderr).toBe(2);
        expect(run.stderr).toContain(`${file}: 1 problem\n  ${problem(file)}\n`);
        expect(run.stderr).toContain('nothing was started or changed');
      }
      expect(snapshot(state)).toEqual(before);
      expect(existsSync(join(dir, 'never-created'))).toBe(false);
    });
  }
});

describe('npm start with a policy the gateway cannot run', () => {
  const policies: [string, string, (t: TopologyJson, file: string) => void, RegExp][] = [
    [
      'not XML (the loader)',
      'hello, not a policy',
      (t, file) => (t.apis[0]!.policy = file),
      /: 1 problem\n {2}apis\[0\]\.policy: /,
    ],
    [
      'well-formed, with a policy the local gateway does not know, for an operation',
      '<policies><inbound><base /><no-such-policy /></inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>',
      (t, file) => (t.apis[0]!.operations = [{ method: 'GET', urlTemplate: '/orders/{id}', policy: file }]),
      /: 1 problem\n {2}apis\[0\]\.operations\[0\]\.policy: the local gateway cannot run it: .*no-such-policy.*: is not a policy/,
    ],
  ];
  for (const [name, xml, edit, problem] of policies) {
    it(`${name}: exit 2 naming the policy, before anything is touched`, () => {
      const slug = name.replace(/\W+/g, '-');
      const state = join(dir, `${slug}-state`);
      mkdirSync(state);
      writeFileSync(join(dir, `${slug}.xml`), xml);
      const file = writeTopology(
        dir,
        `${slug}.json`,
        edited((t) => edit(t, `${slug}.xml`)),
      );
      const run = spawnSync(process.execPath, [main, '--once', '--state-dir', state, '--topology', file], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(run.status, run.stdout + run.stderr).toBe(2);
      expect(run.stderr).toMatch(problem);
      expect(run.stderr).toContain('nothing was started or changed');
      expect(readdirSync(state)).toEqual([]);
    });
  }
});

describe('npm start with a policy whose text would drive the terminal', () => {
  it("prints the gateway's compile error with the control characters escaped", () => {
    const state = join(dir, 'escape-state');
    mkdirSync(state);
    writeFileSync(
      join(dir, 'escape.xml'),
      '<policies><inbound><base /><set-header name="x" exists-action="ov\u001b[31merride"><value>1</value></set-header></inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>',
    );
    const file = writeTopology(
      dir,
      'escape.json',
      edited(
        (t) => (t.apis[0]!.operations = [{ method: 'GET', urlTemplate: '/orders', policy: 'escape.xml' }]),
      ),
    );
    const run = spawnSync(process.execPath, [main, '--once', '--state-dir', state, '--topology', file], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.status, run.stdout + run.stderr).toBe(2);
    expect(run.stderr).toContain(`got 'ov\\u001b[31merride'`);
    expect(run.stderr).not.toContain('\u001b');
    expect(readdirSync(state)).toEqual([]);
  });
});

describe('npm start failing after step 1', () => {
  it('names the step and what step 1 had already changed in the directory', async () => {
    const taken = createServer();
    await new Promise<void>((done) => taken.listen(0, '127.0.0.1', done));
    const port = (taken.address() as { port: number }).port;
    try {
      const state = join(dir, 'port-taken-state');
      const run = spawnSync(
        process.execPath,
        [main, '--once', '--state-dir', state, '--gateway-port', String(port)],
        { encoding: 'utf8', timeout: 90_000 },
      );
      expect(run.status, run.stdout + run.stderr).toBe(1);
      expect(run.stderr).toContain('FAILED at starting the gateway');
      expect(run.stderr).toContain('Step 1 had already changed the directory, and these changes stay:');
      expect(run.stderr).toMatch(/^ {2}\+ create api orders: /m);
      expect(run.stderr).toMatch(/^ {2}\+ create partner fabrikam: /m);
      expect(existsSync(join(state, LOCK_FILE))).toBe(false);
    } finally {
      taken.close();
    }
  });
});

describe('npm start failing half-way through step 1', () => {
  it('names what reconcile had changed in the directory before the failure, and the keys step 2 had made', () => {
    const state = join(dir, 'half-way-state');
    // Graph (and the emulator) refuses an identifier URI that is already another service
    // principal's name, here Microsoft Graph's: no file check can know, and the second API fails
    // after the first is made.
    const file = writeTopology(
      dir,
      'half-way.json',
      edited((t) => {
        t.apis.push({
          ...t.apis[0]!,
          name: 'inventory',
          displayName: 'certflow inventory API',
          identifierUri: 'https://graph.microsoft.com',
        });
        t.partners.push({ name: 'newco', displayName: 'newco-partner', roles: {} });
      }),
    );
    const run = spawnSync(process.execPath, [main, '--once', '--state-dir', state, '--topology', file], {
      encoding: 'utf8',
      timeout: 90_000,
    });
    expect(run.status, run.stdout + run.stderr).toBe(1);
    expect(run.stderr).toContain('FAILED at step 1 (reconciling the directory with the topology)');
    expect(run.stderr).toMatch(/identifierUris/);
    expect(run.stderr).not.toContain('Nothing was changed');
    expect(run.stderr).toContain(
      `The state directory had been changed before step 1, and this stays:\n  created ${join(state, 'partners', 'contoso')} (key pair and certificate of partner contoso)\n`,
    );
    expect(run.stderr).toContain(
      `  created ${join(state, 'partners', 'newco')} (key pair and certificate of partner newco)\n`,
    );
    expect(existsSync(join(state, 'partners', 'newco', 'partner.key.pem'))).toBe(true);
    expect(run.stderr).toContain('These changes were made in the directory before it and stay:');
    expect(run.stderr).toMatch(/^ {2}\+ create api orders: /m);
    expect(run.stderr).not.toMatch(/^ {2}\+ create api inventory: /m);
    expect(existsSync(join(state, LOCK_FILE))).toBe(false);
  });
});
