/**
 * `npm run partner -- [--state-dir DIR] [--as NAME] <command>`: the partner worker's CLI,
 * configured for partner NAME of the running stack (default: the topology's first partner)
 * from its stack.json (state directory: --state-dir, CERTFLOW_STATE_DIR, or .certflow).
 * Against real Entra ID, run apps/partner-worker with its own environment instead.
 *
 * `npm run -s partner -- --as NAME env` prints that environment instead, one `export NAME='value'`
 * line each, for `eval "$(npm run -s partner -- --as NAME env)"` in a POSIX shell: any program
 * (the examples in examples/partners) then runs with the partner's settings.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { readStackFile, stackPartnerEnvironment } from './stack-file';
import { appEntryPoint, workspaceRoot } from './workspace';

function main(): number {
  const args = process.argv.slice(2);
  let stateDir = process.env.CERTFLOW_STATE_DIR ?? join(workspaceRoot(), '.certflow');
  let partner: string | undefined;
  // Options of this wrapper come before the partner worker's command, in any order.
  while (args[0] === '--state-dir' || args[0] === '--as') {
    const [flag, value] = args.splice(0, 2);
    if (!value || value.startsWith('-')) {
      console.error(flag === '--as' ? '--as needs a partner name' : '--state-dir needs a directory');
      return 2;
    }
    if (flag === '--as') partner = value;
    else stateDir = value;
  }
  const run = (env: NodeJS.ProcessEnv): number =>
    spawnSync(process.execPath, [appEntryPoint('partner-worker'), ...args], { env, stdio: 'inherit' })
      .status ?? 1;
  // Help needs no running stack.
  // (`help` only as the command: `cert create --common-name help` must still use the stack's settings.)
  if (args.length === 0 || args[0] === 'help' || args.includes('--help') || args.includes('-h'))
    return run(process.env);
  let env;
  try {
    env = stackPartnerEnvironment(readStackFile(stateDir), partner);
  } catch (err) {
    console.error((err as Error).message);
    return 1;
  }
  if (args[0] === 'env') {
    if (args.length > 1) {
      console.error(`env takes no arguments, got: ${args.slice(1).join(' ')}`);
      return 2;
    }
    process.stdout.write(exportLines(env));
    return 0;
  }
  return run({ ...process.env, ...env });
}

/** `export NAME='value'` lines; a `'` inside a value is written `'\''` (close, escaped quote, reopen). */
function exportLines(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([name, value]) => `export ${name}='${value.replaceAll("'", "'\\''")}'\n`)
    .join('');
}

process.exit(main());
