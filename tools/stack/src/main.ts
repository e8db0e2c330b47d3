/**
 * `npm start`: runs the whole certificate flow on this machine and keeps it up.
 *   --once              run the flow, then stop; exit 0 on success, 1 naming the failed step
 *   --topology FILE     the topology to reconcile (default certflow.topology.json, or CERTFLOW_TOPOLOGY);
 *                       a bad file stops the start with exit 2 before anything is touched
 *   --state-dir DIR     where keys, certificates and state live (default .certflow, or CERTFLOW_STATE_DIR)
 *                       (one stack per directory, held by its emulator's emulator.lock: a second start there
 *                       stops with exit 1, naming the first's pid)
 *   --emulator-port N, --gateway-port N, --api-port N   (default 0: any free port)
 *   --clock-offset OFFSET   start the stack's clock shifted, e.g. +2h, -90s, 1d12h, 0 (or CERTFLOW_CLOCK_OFFSET):
 *                       kept in <state-dir>/clock.json, which every process of the stack follows
 *                       (CERTFLOW_CLOCK_FILE); move it for all of them with the emulator's /admin/clock.
 *                       Without it every process uses the real time, and a clock.json left by an
 *                       earlier shifted run is removed (and the narration says so)
 * With CERTFLOW_EXIT_ON_STDIN_END=1 (set by launchStackProcess for a supervisor such as the load
 * runner, which gives it a pipe as stdin) it stops when stdin ends: its parent is gone, even if
 * that was killed outright.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CLOCK_OFFSET_ENV, formatClockOffset, parseClockOffset } from '@certflow/clock';
import { CLOCK_FILE } from '@certflow/entra-emulator';
import { TopologyError } from '@certflow/topology';
import { defaultTopologyFile, isStateLocked, startStack, StepReport, StepFailedError } from './stack';
import { EXIT_ON_STDIN_END } from './child-service';
import { servedApi, stackFilePath } from './stack-file';
import { workspaceRoot } from './workspace';

const USAGE = `usage: npm start -- [--once] [--topology FILE] [--state-dir DIR] [--emulator-port N] [--gateway-port N] [--api-port N]
                    [--clock-offset OFFSET]   (e.g. +2h, -90s, 1d12h, 0; default CERTFLOW_CLOCK_OFFSET, else the real time)`;

function port(name: string, value: string | undefined): number {
  if (value === undefined) return 0;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new Error(`--${name} must be a port number 0-65535, got '${value}'`);
  return n;
}

/** `--clock-offset`, else CERTFLOW_CLOCK_OFFSET (empty: unset), in milliseconds; undefined: the real time. */
function clockOffset(flag: string | undefined): number | undefined {
  if (flag !== undefined) return parseClockOffset(flag, '--clock-offset');
  const fromEnv = process.env[CLOCK_OFFSET_ENV] || undefined;
  return fromEnv === undefined ? undefined : parseClockOffset(fromEnv, CLOCK_OFFSET_ENV);
}

const tty = process.stdout.isTTY;
const bold = (s: string): string => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string): string => (tty ? `\x1b[2m${s}\x1b[0m` : s);

function printStep(report: StepReport): void {
  const title = report.partner ? `${report.partner}: ${report.title}` : report.title;
  const heading = report.step === undefined ? title : `Step ${report.step}  ${title}`;
  console.log(`\n${bold(heading)}`);
  console.log(dim(`        ${report.where}`));
  const width = Math.max(14, ...report.details.map(([label]) => label.length + 1));
  for (const [label, value] of report.details) console.log(`        ${label.padEnd(width)}${value}`);
  for (const line of report.lines ?? []) console.log(`        ${line}`);
}

/**
 * parseArgs refuses a value that starts with '-' after a space ("ambiguous"), but an offset often
 * does: `--clock-offset -2h` is read as `--clock-offset=-2h`, as the emulator's CLI reads it.
 */
function joinClockOffset(args: readonly string[]): string[] {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i] as string;
    const value = args[i + 1];
    if (arg === '--clock-offset' && value !== undefined) {
      joined.push(`${arg}=${value}`);
      i += 1;
    } else joined.push(arg);
  }
  return joined;
}

async function main(): Promise<number> {
  let flags;
  try {
    flags = parseArgs({
      args: joinClockOffset(process.argv.slice(2)),
      options: {
        once: { type: 'boolean', default: false },
        'state-dir': { type: 'string' },
        topology: { type: 'string' },
        'emulator-port': { type: 'string' },
        'gateway-port': { type: 'string' },
        'api-port': { type: 'string' },
        'clock-offset': { type: 'string' },
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
  let clockOffsetMs: number | undefined;
  try {
    ports = {
      emulatorPort: port('emulator-port', flags['emulator-port']),
      gatewayPort: port('gateway-port', flags['gateway-port']),
      apiPort: port('api-port', flags['api-port']),
    };
    clockOffsetMs = clockOffset(flags['clock-offset']);
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const exitOnStdinEnd = process.env[EXIT_ON_STDIN_END];
  if (exitOnStdinEnd !== undefined && exitOnStdinEnd !== '' && exitOnStdinEnd !== '1') {
    console.error(`${EXIT_ON_STDIN_END} must be 1 or unset, got ${JSON.stringify(exitOnStdinEnd)}`);
    return 2;
  }
  const stateDir = flags['state-dir'] ?? process.env.CERTFLOW_STATE_DIR ?? join(workspaceRoot(), '.certflow');

  console.log(bold('certflow: certificate-based OAuth 2.0 client credentials, end to end, offline'));
  const topologyFile = flags.topology ?? process.env.CERTFLOW_TOPOLOGY ?? defaultTopologyFile();
  console.log(dim(`state directory ${stateDir}`));
  if (clockOffsetMs !== undefined && clockOffsetMs !== 0)
    console.log(
      bold(`clock shifted by ${formatClockOffset(clockOffsetMs)}`) +
        dim(` (every process of the stack follows ${join(stateDir, CLOCK_FILE)}; move it with /admin/clock)`),
    );
  let stack;
  try {
    stack = await startStack({
      stateDir,
      topologyFile,
      ...ports,
      ...(clockOffsetMs === undefined ? {} : { clockOffsetMs }),
      onStep: printStep,
    });
  } catch (err) {
    if (err instanceof TopologyError) {
      console.error(`\nThe topology file is not valid; nothing was started or changed.\n${err.message}`);
      return 2;
    }
    if (isStateLocked(err)) {
      console.error(`\nNot started: ${err.message}`);
      return 1;
    }
    const step = err instanceof StepFailedError ? err.step : 'start-up';
    console.error(`\nFAILED at ${step}\n${(err as Error).message}`);
    return 1;
  }
  const { file } = stack;
  if (stack.clock.removedStale !== undefined)
    console.log(
      dim(
        `\nclock: removed ${join(stateDir, CLOCK_FILE)} left by an earlier run (offset ${stack.clock.removedStale}); ` +
          'this run uses the real time (--clock-offset shifts it)',
      ),
    );
  const api = servedApi(file);
  const registeredOnly = file.apis.filter((a) => a.url === null).map((a) => a.name);
  console.log(
    `\n${bold('The flow works.')} ` +
      (stack.firstCallMs > 0
        ? `First authenticated response ${(stack.firstCallMs / 1000).toFixed(2)} s after start.`
        : 'No partner is granted these calls: each got the 403 the topology calls for.'),
  );
  console.log(`
  Entra ID emulator  ${file.emulator.url}  (tenant ${file.tenantId})
  gateway            ${file.gateway.url}   (policy ${file.gateway.policyFile})
  API ${api.name.padEnd(14)} ${api.url}${registeredOnly.length ? `\n  registered only    ${registeredOnly.join(', ')} (in the directory, not served locally)` : ''}
  partners           ${file.partners.map((p) => p.name).join(', ')}
  topology           ${file.topologyFile}
  development CA     ${file.caCertificatePath}
  stack description  ${stackFilePath(stateDir)}`);

  if (flags.once) {
    await stack.close();
    return 0;
  }
  const reader = stack.readers[0];
  console.log(
    reader === undefined
      ? `\nRunning. No partner of the topology may GET /orders; try npm run partner -- --as NAME token get   (Ctrl+C to stop)`
      : `\nRunning. Try: npm run partner -- --as ${reader} call /orders   (Ctrl+C to stop)`,
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    if (exitOnStdinEnd === '1') process.stdin.once('end', resolve).resume();
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
