/**
 * The engines that run the k6 scripts of load/k6: k6 itself when a `k6` binary is on the PATH,
 * or certflow's k6 harness (load/src/k6-harness), which is NOT k6 and is labelled as such
 * wherever its output goes. Both are started the same way: `<engine> run --quiet <script>`,
 * settings in the environment (never on the command line: one of them is an admin token).
 */
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';

export type Engine = 'k6' | 'harness';

export const K6_SCRIPTS_DIR = join(__dirname, '..', 'k6');

export const K6_INSTALL_HINT =
  'install k6 (https://grafana.com/docs/k6/latest/set-up/install-k6/) and put the k6 binary on the PATH';

/**
 * `k6 v1.4.0 (…)` when k6 is on the PATH, undefined when it is not; throws when a `k6` is there
 * but `k6 version` fails (a broken install is not the same as no install).
 */
export function k6Version(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const r = spawnSync('k6', ['version'], { encoding: 'utf8', env });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return undefined;
  if (r.error || r.status !== 0)
    throw new Error(
      `a k6 is on the PATH but \`k6 version\` failed (${r.error ? r.error.message : `exit ${r.status ?? r.signal}`}` +
        `${r.stderr?.trim() ? `: ${r.stderr.trim()}` : ''}); fix or remove it, or ${K6_INSTALL_HINT}`,
    );
  return r.stdout.trim().split('\n')[0];
}

/** The engines running now (their process ids): killEnginesNow() ends them. */
const running = new Set<number>();

/** Ends every running engine at once (SIGKILL), for a runner that must exit now. */
export function killEnginesNow(): void {
  for (const pid of running)
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
}

/**
 * Runs one script to its end; resolves with the exit code. When `signal` aborts, the engine
 * gets one SIGINT: k6 (and the harness) then stop the VUs, run teardown() and handleSummary().
 * The engine runs in a process group of its own, so a terminal's Ctrl+C (sent to the whole
 * foreground group) reaches only the runner, which forwards it once: a second SIGINT would make
 * the engine stop at once, without teardown() and handleSummary().
 */
export function runK6Script(
  engine: Engine,
  script: string,
  env: Record<string, string>,
  signal?: AbortSignal,
): Promise<number> {
  const path = join(K6_SCRIPTS_DIR, script);
  const [command, args] =
    engine === 'k6'
      ? ['k6', ['run', '--quiet', path]]
      : [process.execPath, [join(__dirname, 'k6-harness', 'main.js'), 'run', '--quiet', path]];
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: 'inherit',
      env: { ...process.env, ...env },
      detached: true,
    });
    if (child.pid) running.add(child.pid);
    const interrupt = () => child.kill('SIGINT');
    signal?.addEventListener('abort', interrupt, { once: true });
    if (signal?.aborted) interrupt();
    child.on('error', reject);
    child.on('exit', (code, sig) => {
      running.delete(child.pid!);
      signal?.removeEventListener('abort', interrupt);
      resolve(code ?? (sig ? 128 : 1));
    });
  });
}

/** What an exit code of k6 means (https://grafana.com/docs/k6/latest/javascript-api/k6-execution/#test-fail and k6's errext/exitcodes). */
export function describeExit(code: number): string | undefined {
  const known: Record<number, string> = {
    99: 'thresholds failed (exit 99)',
    104: 'invalid options (exit 104)',
    105: 'stopped by a signal (exit 105)',
    107: 'script error (exit 107)',
    108: 'script aborted (exit 108)',
    110: 'test.fail() marked the run as failed (exit 110)',
  };
  return code === 0 ? undefined : (known[code] ?? `exited with ${code}`);
}

export function reportK6Missing(scripts: string[]): void {
  const line = '!'.repeat(78);
  console.warn(
    `\n${line}\n!! k6 is not installed: these k6 scripts did NOT run: ${scripts.join(', ')}.\n` +
      `!! certflow's own load runner ran the same suites above. To run the k6 scripts\n` +
      `!! too, ${K6_INSTALL_HINT}, and run npm run load.\n${line}\n`,
  );
}
