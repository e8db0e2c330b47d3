/**
 * The emulator as a program: `node tools/entra-emulator/dist/main.js --port P --state-dir D [--host H]`.
 * Prints one JSON line `{"event":"listening","url":…}` and runs until SIGINT/SIGTERM.
 */
import { ClockError, formatClockOffset, parseClockOffset } from '@certflow/clock';
import { AllowedHostsError, parseAllowedHosts } from '@certflow/loopback-guard';
import { clockFilePath, removeStaleClockFile } from './clock-route';
import { startEmulator, type RunningEmulator } from './emulator';
import type { FaultSettings } from './faults';

export const USAGE = `usage: entra-emulator [--port P] [--state-dir D] [--host H] [--token-lifetime SECONDS]
                      [--clock-skew SECONDS] [--strict-jti] [--allowed-host NAME]
                      [--clock-offset OFFSET]
  --port P              port to listen on (default 0: any free port)
  --state-dir D         state directory (default .certflow)
  --host H              address to listen on (default 127.0.0.1)
  --allowed-host NAME   a Host name answered besides localhost, 127.0.0.1 and [::1]
                        (repeatable); any other Host gets 421, a cross-site Origin 403
  --token-lifetime S    fixed access-token lifetime in seconds (default: random 3600–5400)
  --clock-skew S        allowed skew on client assertions' exp/nbf, 0–600 (default 60)
  --clock-offset OFFSET start the clock shifted, e.g. +2h, -90s, 1d12h, 0 (±3650 days); kept in
                        <state-dir>/clock.json for other processes (CERTFLOW_CLOCK_FILE) and moved
                        at run time with /admin/clock. Without it the real time, and a clock.json
                        left by an earlier run is removed
  --strict-jti          strict mode: every client assertion needs a jti and is single-use
                        (MSAL reuses one assertion for 10 minutes: off by default)
fault injection (token endpoints only; change at run time with PATCH /admin/faults):
  --fault-latency MS            add MS milliseconds to every token request
  --fault-throttle SHARE        answer this share (0–1) of token requests 429 with Retry-After
  --fault-server-error SHARE    answer this share (0–1) of token requests with a 5xx
  --fault-server-error-status N the 5xx to send: 500, 502, 503 or 504 (default 500)
  --fault-retry-after S         Retry-After seconds on 429 and outage 503 (default 5)
  --fault-outage MODE           none, 503 (every token request) or drop (connections cut)`;

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface CliOptions {
  port: number;
  stateDir: string;
  host: string;
  tokenLifetimeSeconds?: number;
  clockSkewSeconds?: number;
  strictJti?: boolean;
  /** Milliseconds; when given, the clock is kept in `<stateDir>/clock.json`. */
  clockOffsetMs?: number;
  allowedHosts: string[];
  faults: Partial<FaultSettings>;
  help: boolean;
}

export function parseCliArgs(argv: string[]): CliOptions {
  const options: CliOptions = {
    port: 0,
    stateDir: '.certflow',
    host: '127.0.0.1',
    allowedHosts: [],
    faults: {},
    help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      options.help = true;
      continue;
    }
    if (arg === '--strict-jti') {
      options.strictJti = true;
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq > 0 && arg.startsWith('--') ? arg.slice(0, eq) : arg;
    const takeValue = (): string => {
      if (eq > 0 && arg.startsWith('--')) return arg.slice(eq + 1);
      const value = argv[++i];
      // "-90s" is a value (a clock offset), "--port" the next flag.
      if (value === undefined || value.startsWith('--')) throw new UsageError(`${flag} needs a value`);
      return value;
    };
    switch (flag) {
      case '--port':
        options.port = integer(flag, takeValue(), 0, 65535);
        break;
      case '--state-dir': {
        const value = takeValue();
        if (value === '') throw new UsageError('--state-dir must not be empty');
        options.stateDir = value;
        break;
      }
      case '--host': {
        const value = takeValue();
        if (value === '') throw new UsageError('--host must not be empty');
        options.host = value;
        break;
      }
      case '--allowed-host': {
        const value = takeValue();
        try {
          options.allowedHosts.push(...parseAllowedHosts([value]));
        } catch (err) {
          if (err instanceof AllowedHostsError) throw new UsageError(`${flag}: ${err.message}`);
          throw err;
        }
        break;
      }
      case '--token-lifetime':
        options.tokenLifetimeSeconds = integer(flag, takeValue(), 1, 86_400);
        break;
      case '--clock-offset': {
        const value = takeValue();
        try {
          options.clockOffsetMs = parseClockOffset(value, flag);
        } catch (err) {
          if (err instanceof ClockError) throw new UsageError(err.message);
          throw err;
        }
        break;
      }
      case '--clock-skew':
        options.clockSkewSeconds = integer(flag, takeValue(), 0, 600);
        break;
      case '--fault-latency':
        options.faults.latencyMs = integer(flag, takeValue(), 0, 60_000);
        break;
      case '--fault-throttle':
        options.faults.throttleShare = share(flag, takeValue());
        break;
      case '--fault-server-error':
        options.faults.serverErrorShare = share(flag, takeValue());
        break;
      case '--fault-server-error-status': {
        const status = integer(flag, takeValue(), 500, 504);
        if (status === 501) throw new UsageError(`${flag} must be 500, 502, 503 or 504`);
        options.faults.serverErrorStatus = status as FaultSettings['serverErrorStatus'];
        break;
      }
      case '--fault-retry-after':
        options.faults.retryAfterSeconds = integer(flag, takeValue(), 0, 86_400);
        break;
      case '--fault-outage': {
        const mode = takeValue();
        if (mode !== 'none' && mode !== '503' && mode !== 'drop')
          throw new UsageError(`${flag} must be none, 503 or drop, got '${mode}'`);
        options.faults.outage = mode;
        break;
      }
      default:
        throw new UsageError(flag.startsWith('-') ? `unknown flag ${flag}` : `unexpected argument ${flag}`);
    }
  }
  return options;
}

function share(flag: string, value: string): number {
  const n = Number(value);
  if (!/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/.test(value) || !(n >= 0 && n <= 1))
    throw new UsageError(`${flag} must be a share from 0 to 1, got '${value}'`);
  return n;
}

function integer(flag: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new UsageError(`${flag} must be an integer from ${min} to ${max}, got '${value}'`);
  }
  return Number(value);
}

export interface CliIo {
  stdout: (line: string) => void;
  stderr: (line: string) => void;
  /** Registers the shutdown trigger (SIGINT/SIGTERM in the real program). */
  onShutdown: (stop: () => void) => void;
}

/** Runs the CLI; resolves with the exit code once the emulator has stopped (or failed to start). */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let options: CliOptions;
  try {
    options = parseCliArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr(`entra-emulator: ${err.message}\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    io.stdout(USAGE);
    return 0;
  }
  // Listen for the shutdown signal before starting, so a signal during start-up still stops cleanly.
  const shutdown = new Promise<void>((resolve) => io.onShutdown(resolve));
  let emulator: RunningEmulator;
  try {
    emulator = await startEmulator({
      stateDir: options.stateDir,
      host: options.host,
      port: options.port,
      ...(options.tokenLifetimeSeconds ? { tokenLifetimeSeconds: options.tokenLifetimeSeconds } : {}),
      ...(options.clockSkewSeconds !== undefined ? { clockSkewSeconds: options.clockSkewSeconds } : {}),
      ...(options.strictJti ? { rejectReplayedAssertions: true } : {}),
      allowedHosts: options.allowedHosts,
      faults: options.faults,
      ...(options.clockOffsetMs !== undefined
        ? { clockOffset: options.clockOffsetMs, clockFile: clockFilePath(options.stateDir) }
        : {}),
    });
  } catch (err) {
    io.stderr(`entra-emulator: could not start: ${(err as Error).message}`);
    return 1;
  }
  try {
    if (options.clockOffsetMs !== undefined)
      io.stderr(
        `entra-emulator: clock shifted by ${formatClockOffset(options.clockOffsetMs)} (now ${emulator.clock.now().toISOString()}), kept in ${clockFilePath(options.stateDir)}`,
      );
    else {
      const previous = removeStaleClockFile(options.stateDir);
      if (previous !== undefined)
        io.stderr(
          `entra-emulator: clock: removed the clock file of an earlier run (offset ${previous}); the clock is the real time`,
        );
    }
  } catch (err) {
    // Started but unusable: nothing may keep listening or hold the state directory.
    await emulator.close();
    io.stderr(`entra-emulator: could not start: ${(err as Error).message}`);
    return 1;
  }
  io.stdout(JSON.stringify({ event: 'listening', url: emulator.url }));
  await shutdown;
  await emulator.close();
  return 0;
}
