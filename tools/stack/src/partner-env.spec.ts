/**
 * `npm run -s partner -- --as NAME env`: the partner's settings of the running stack as
 * `export NAME='value'` lines. Evaluated by a real shell, they are exactly the partner worker's
 * environment, quotes in values included (the state directory here has one), and a partner
 * worker run with them calls the API as that partner.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startStack, type RunningStack } from './stack';
import { stackPartner, stackPartnerEnvironment } from './stack-file';
import { jsonLines } from './stack.test-helpers';
import { appEntryPoint } from './workspace';

const dir = mkdtempSync(join(tmpdir(), 'certflow-partner-env-'));
const stateDir = join(dir, "it's $HOME");
const partnerCli = join(__dirname, '..', 'dist', 'partner.js');
let stack: RunningStack;
beforeAll(async () => {
  stack = await startStack({ stateDir });
}, 120_000);
afterAll(async () => {
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Async: the stack answers from this process, so the event loop must stay free. */
function run(file: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: { PATH: process.env.PATH } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const partnerEnv = (...args: string[]) =>
  run(process.execPath, [partnerCli, '--state-dir', stateDir, ...args]);

describe('npm run partner -- env', () => {
  it("prints the partner's environment as export lines that a shell evaluates back to it", async () => {
    const printed = await partnerEnv('--as', 'fabrikam', 'env');
    expect(printed.code, printed.stderr).toBe(0);
    const expected = stackPartnerEnvironment(stack.file, 'fabrikam');
    expect(printed.stdout.split('\n').slice(0, -1)).toEqual(
      Object.keys(expected).map((name) => expect.stringMatching(new RegExp(`^export ${name}='`))),
    );
    expect(printed.stdout).toContain(`/it'\\''s $HOME/`);

    // The shell's view: each variable, NUL-separated, exactly as the partner worker expects it.
    const names = Object.keys(expected);
    const shell = await run('sh', [
      '-c',
      `eval "$1" && printf '%s\\0' ${names.map((n) => `"$${n}"`).join(' ')}`,
      'sh',
      printed.stdout,
    ]);
    expect(shell.code, shell.stderr).toBe(0);
    expect(Object.fromEntries(names.map((n, i) => [n, shell.stdout.split('\0')[i]]))).toEqual(expected);
  }, 60_000);

  it('gives a partner worker run in that environment the partner it names', async () => {
    const printed = await partnerEnv('--as', 'fabrikam', 'env');
    const called = await run('sh', [
      '-c',
      'eval "$1" && exec "$2" "$3" call /orders --json',
      'sh',
      printed.stdout,
      process.execPath,
      appEntryPoint('partner-worker'),
    ]);
    expect(called.code, called.stderr).toBe(0);
    const response = jsonLines(called.stdout).find((e) => e.event === 'response');
    expect(response?.status).toBe(200);
    expect((response?.body as { caller: { clientAppId: string } }).caller.clientAppId).toBe(
      stackPartner(stack.file, 'fabrikam').appId,
    );
  }, 60_000);

  it('refuses arguments after env and an unknown partner, printing nothing on stdout', async () => {
    const extra = await partnerEnv('env', '--json');
    expect([extra.code, extra.stdout, extra.stderr.trim()]).toEqual([
      2,
      '',
      'env takes no arguments, got: --json',
    ]);
    const unknown = await partnerEnv('--as', 'northwind', 'env');
    expect([unknown.code, unknown.stdout]).toEqual([1, '']);
    expect(unknown.stderr).toContain('no partner "northwind" in the stack; its partners: contoso, fabrikam');
  });
});
