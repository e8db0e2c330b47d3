/**
 * A stack killed outright (SIGKILL: no handler runs) takes its API with it: the API's stdin is a
 * pipe from the stack, and it stops when the pipe ends. A stack launched in a process group of
 * its own (the load runner's) stops the same way when the process that launched it is killed. The API run alone is unchanged: stdin
 * at its end does not stop it unless CERTFLOW_EXIT_ON_STDIN_END=1, and any other value is refused.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopChild } from './child-service';
import { readStackFile, servedApi } from './stack-file';
import { appEntryPoint } from './workspace';

const dir = mkdtempSync(join(tmpdir(), 'certflow-kill-'));
const main = join(__dirname, '..', 'dist', 'main.js');
const started: ChildProcess[] = [];
afterAll(async () => {
  for (const child of started) await stopChild(child);
  rmSync(dir, { recursive: true, force: true });
});

/** Running, and not a zombie waiting to be reaped. */
function running(pid: number): boolean {
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return false;
  try {
    return readFileSync(stat, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

async function until(what: string, done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Spawns a node program, collecting its output. */
function launch(args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  return { child, output: () => output };
}

describe('a stack killed with SIGKILL', () => {
  it('takes its API child with it; the API alone keeps running when its stdin ends', async () => {
    const stateDir = join(dir, 'state');
    const stack = launch([main, '--state-dir', stateDir], process.env);
    await until('the stack did not come up', () => stack.output().includes('Running.'), 90_000);

    const children = spawnSync('ps', ['-o', 'pid=,args=', '--ppid', String(stack.child.pid)], {
      encoding: 'utf8',
    }).stdout;
    const apiLine = children.split('\n').find((l) => l.includes(appEntryPoint('api')));
    expect(apiLine, children).toBeDefined();
    const apiPid = Number(apiLine!.trim().split(/\s+/)[0]);
    expect(running(apiPid)).toBe(true);

    // The API on its own, stdin at its end from the start: unchanged, it keeps serving.
    const file = readStackFile(stateDir);
    const api = servedApi(file);
    const env = {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: '0',
      ENTRA_INSTANCE: file.emulator.url,
      ENTRA_TENANT_ID: file.tenantId,
      API_AUDIENCES: `${api.appId},${api.identifierUri}`,
      ENTRA_CA_FILE: file.caCertificatePath,
      CERTFLOW_EXIT_ON_STDIN_END: '',
    };
    const alone = launch([appEntryPoint('api')], env);
    await until('the API alone did not listen', () => alone.output().includes('"event":"listening"'), 20_000);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(alone.child.exitCode, alone.output()).toBeNull();
    await stopChild(alone.child);

    const refused = spawnSync(process.execPath, [appEntryPoint('api')], {
      env: { ...env, CERTFLOW_EXIT_ON_STDIN_END: 'yes' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('"variable":"CERTFLOW_EXIT_ON_STDIN_END"');

    stack.child.kill('SIGKILL');
    try {
      await until('the API outlived the killed stack', () => !running(apiPid), 10_000);
    } finally {
      if (running(apiPid)) process.kill(apiPid, 'SIGKILL');
    }
  }, 180_000);

  it('launched in a process group of its own, stops when the process that launched it is killed', async () => {
    const stateDir = join(dir, 'grouped');
    const launcher = launch(
      [
        '-e',
        `require(${JSON.stringify(join(__dirname, '..', 'dist', 'stack-process.js'))})
          .launchStackProcess(${JSON.stringify(stateDir)}, 90000, [], { ownProcessGroup: true })
          .then((s) => console.log('stack pid ' + s.pid), (e) => { console.error(e); process.exit(1); });`,
      ],
      process.env,
    );
    await until('the stack did not come up', () => /stack pid \d+/.test(launcher.output()), 90_000);
    const stackPid = Number(/stack pid (\d+)/.exec(launcher.output())![1]);
    expect(running(stackPid)).toBe(true);
    launcher.child.kill('SIGKILL');
    try {
      await until('the stack outlived the process that launched it', () => !running(stackPid), 20_000);
    } finally {
      if (running(stackPid)) process.kill(-stackPid, 'SIGKILL');
    }
  }, 180_000);
});
