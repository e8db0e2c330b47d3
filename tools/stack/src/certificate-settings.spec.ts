/**
 * Certificate settings changed in the topology after a partner has its keys: the start keeps the
 * keys (it never replaces a partner's key pair), and step 2 says what differs and gives the
 * command that rolls the certificate; that command, run as printed, brings it to the settings.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requestPartnerToken } from './partner-credentials';
import { startStack, type StepReport } from './stack';
import { stackPartner } from './stack-file';
import { rolesIn } from './stack.test-helpers';
import { defaultTopologyJson, writeTopology } from './topology.test-helpers';

const dir = mkdtempSync(join(tmpdir(), 'certflow-cert-settings-'));
const partnerCli = join(__dirname, '..', 'dist', 'partner.js');
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const stateDir = join(dir, 'state');

async function start(data: ReturnType<typeof defaultTopologyJson>) {
  const steps: StepReport[] = [];
  const stack = await startStack({
    stateDir,
    topologyFile: writeTopology(dir, 'topology.json', data),
    onStep: (s) => steps.push(s),
  });
  const step2 = steps.find((s) => s.partner === 'contoso' && s.step === 2)!;
  return { stack, step2, steps };
}

describe('certificate settings that no longer match the certificate', () => {
  it('are named in step 2 with the rotate command, which rolls the certificate to them', async () => {
    const data = defaultTopologyJson();
    const first = await start(data);
    const sha256 = stackPartner(first.stack.file, 'contoso').thumbprintSha256;
    expect(first.step2.lines).toBeUndefined();
    await first.stack.close();

    data.partners[0]!.certificate = { commonName: 'contoso-2027', keySize: 3072, validityDays: 90 };
    const second = await start(data);
    let command: string;
    try {
      const contoso = stackPartner(second.stack.file, 'contoso');
      expect(contoso.thumbprintSha256).toBe(sha256);
      expect(second.step2.details).toContainEqual(['created', 'earlier (reused from the state directory)']);
      const lines = second.step2.lines ?? [];
      expect(lines.slice(1, 4)).toEqual([
        '  common name "contoso-partner", the topology says "contoso-2027"',
        '  key size 2048, the topology says 3072',
        '  validity 365 days, the topology says 90',
      ]);
      command = lines[4]!.replace('To roll it while the stack runs: ', '');
      expect(command).toBe(
        'npm run partner -- --as contoso cert rotate --common-name contoso-2027 --key-size 3072 --days 90',
      );
      // fabrikam's settings did not change: nothing said.
      expect(second.steps.find((s) => s.partner === 'fabrikam' && s.step === 2)!.lines).toBeUndefined();

      // Asynchronously: the emulator it talks to runs in this process.
      const rotated = await new Promise<{ code: number; output: string }>((resolve) =>
        execFile(
          process.execPath,
          [partnerCli, '--state-dir', stateDir, ...command.replace('npm run partner -- ', '').split(' ')],
          { timeout: 60_000 },
          (err, stdout, stderr) =>
            resolve({ code: err ? Number(err.code ?? 1) : 0, output: stdout + stderr }),
        ),
      );
      expect(rotated.code, rotated.output).toBe(0);
    } finally {
      await second.stack.close();
    }

    const third = await start(data);
    try {
      expect(third.step2.lines).toBeUndefined();
      expect(third.step2.details).toContainEqual([
        'certificate',
        expect.stringMatching(/^CN=contoso-2027, /),
      ]);
      const contoso = stackPartner(third.stack.file, 'contoso');
      expect(contoso.thumbprintSha256).not.toBe(sha256);
      expect(rolesIn(await requestPartnerToken(third.stack.file, contoso))).toEqual(['Orders.Read']);
    } finally {
      await third.stack.close();
    }
  }, 240_000);
});
