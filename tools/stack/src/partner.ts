/**
 * `npm run partner -- <command>`: the partner worker's CLI, configured for the running stack
 * from its stack.json (state directory: --state-dir before the command, CERTFLOW_STATE_DIR,
 * or .certflow). Against real Entra ID, run apps/partner-worker with its own environment instead.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { readStackFile, stackPartnerEnvironment } from './stack-file';
import { appEntryPoint, workspaceRoot } from './workspace';

function main(): number {
  const args = process.argv.slice(2);
  let stateDir = process.env.CERTFLOW_STATE_DIR ?? join(workspaceRoot(), '.certflow');
  if (args[0] === '--state-dir') {
    if (!args[1]) {
      console.error('--state-dir needs a directory');
      return 2;
    }
    stateDir = args[1];
    args.splice(0, 2);
  }
  const run = (env: NodeJS.ProcessEnv): number =>
    spawnSync(process.execPath, [appEntryPoint('partner-worker'), ...args], { env, stdio: 'inherit' })
      .status ?? 1;
  // Help needs no running stack.
  // (`help` only as the command: `cert create --common-name help` must still use the stack's settings.)
  if (args.length === 0 || args[0] === 'help' || args.includes('--help') || args.includes('-h'))
    return run(process.env);
  let file;
  try {
    file = readStackFile(stateDir);
  } catch (err) {
    console.error((err as Error).message);
    return 1;
  }
  return run({ ...process.env, ...stackPartnerEnvironment(file) });
}

process.exit(main());
