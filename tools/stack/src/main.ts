/**
 * `npm start`: runs the whole certificate flow on this machine and keeps it up.
 *   --once              run the flow, then stop; exit 0 on success, 1 naming the failed step
 *   --state-dir DIR     where keys, certificates and state live (default .certflow, or CERTFLOW_STATE_DIR)
 *   --emulator-port N, --gateway-port N, --api-port N   (default 0: any free port)
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startStack, StepReport, StepFailedError } from './stack';
import { stackFilePath } from './stack-file';
import { workspaceRoot } from './workspace';

const USAGE = `usage: npm start -- [--once] [--state-dir DIR] [--emulator-port N] [--gateway-port N] [--api-port N]`;

function port(name: string, value: string | undefined): number {
  if (value === undefined) return 0;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new Error(`--${name} must be a port number 0-65535, got '${value}'`);
  return n;
}

const tty = process.stdout.isTTY;
const bold = (s: string): string => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string): string => (tty ? `\x1b[2m${s}\x1b[0m` : s);

function printStep(report: StepReport): void {
  const heading = report.step === undefined ? report.title : `Step ${report.step}  ${report.title}`;
  console.log(`\n${bold(heading)}`);
  console.log(dim(`        ${report.where}`));
  for (const [label, value] of report.details) console.log(`        ${label.padEnd(14)}${value}`);
}

async function main(): Promise<number> {
  let flags;
  try {
    flags = parseArgs({
      options: {
        once: { type: 'boolean', default: false },
        'state-dir': { type: 'string' },
        'emulator-port': { type: 'string' },
        'gateway-port': { type: 'string' },
        'api-port': { type: 'string' },
        help: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (flags.help) {
    console.log(USAGE);
    return 0;
  }
  let ports;
  try {
    ports = {
      emulatorPort: port('emulator-port', flags['emulator-port']),
      gatewayPort: port('gateway-port', flags['gateway-port']),
      apiPort: port('api-port', flags['api-port']),
    };
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const stateDir = flags['state-dir'] ?? process.env.CERTFLOW_STATE_DIR ?? join(workspaceRoot(), '.certflow');

  console.log(bold('certflow: certificate-based OAuth 2.0 client credentials, end to end, offline'));
  console.log(dim(`state directory ${stateDir}`));
  let stack;
  try {
    stack = await startStack({ stateDir, ...ports, onStep: printStep });
  } catch (err) {
    const step = err instanceof StepFailedError ? err.step : 'start-up';
    console.error(`\nFAILED at ${step}\n${(err as Error).message}`);
    return 1;
  }
  const { file } = stack;
  console.log(
    `\n${bold('The flow works.')} First authenticated response ${(stack.firstCallMs / 1000).toFixed(2)} s after start.`,
  );
  console.log(`
  Entra ID emulator  ${file.emulator.url}  (tenant ${file.tenantId})
  gateway            ${file.gateway.url}   (policy ${file.gateway.policyFile})
  API                ${file.api.url}
  development CA     ${file.caCertificatePath}
  stack description  ${stackFilePath(stateDir)}`);

  if (flags.once) {
    await stack.close();
    return 0;
  }
  console.log(`\nRunning. Try: npm run partner -- call /orders   (Ctrl+C to stop)`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  console.log('\nstopping…');
  await stack.close();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
