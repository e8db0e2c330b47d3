/**
 * Runs `npm start`'s stack as a child process in a given state directory and waits until its
 * stack.json appears, for suites (e2e, load) that need the whole stack but not in their process.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT_ON_STDIN_END, stopChild } from './child-service';
import { readStackFile, stackFilePath, type StackFile } from './stack-file';

export interface StackProcess {
  file: StackFile;
  /** The process that runs the emulator and the gateway (the API is its child). */
  pid: number;
  stop(): Promise<void>;
}

/**
 * `nodeArgs` are options for node itself (e.g. `--cpu-prof`), before the script. With
 * `ownProcessGroup`, the stack (and the API it starts) runs in a process group of its own: a
 * terminal's Ctrl+C then reaches only the caller, which decides when to stop the stack; `pid`
 * is then the group's id too (`process.kill(-pid, 'SIGKILL')` ends all of it at once).
 */
export async function launchStackProcess(
  stateDir: string,
  timeoutMs = 60_000,
  nodeArgs: readonly string[] = [],
  { ownProcessGroup = false }: { ownProcessGroup?: boolean } = {},
): Promise<StackProcess> {
  const main = join(__dirname, 'main.js');
  if (!existsSync(main))
    throw new Error(`${main} is missing: build the stack first (npx nx run stack:build)`);
  // In a group of its own, a terminal's Ctrl+C no longer stops it with its caller: it gets a pipe
  // as stdin instead, and stops when the pipe ends, however the caller died.
  const child = spawn(process.execPath, [...nodeArgs, main, '--state-dir', stateDir], {
    stdio: [ownProcessGroup ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    detached: ownProcessGroup,
    ...(ownProcessGroup ? { env: { ...process.env, [EXIT_ON_STDIN_END]: '1' } } : {}),
  });
  child.stdin?.on('error', () => {}); // never written to; an error is the child having exited
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const stop = (): Promise<void> => stopChild(child);

  const deadline = Date.now() + timeoutMs;
  while (!existsSync(stackFilePath(stateDir))) {
    if (child.exitCode !== null) throw new Error(`the stack exited with code ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the stack did not start within ${timeoutMs} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { file: readStackFile(stateDir), pid: child.pid!, stop };
}
