/**
 * Runs one certflow program as a child process: services until they print their
 * `{"event":"listening","url":…}` line, commands until they exit. Child output is kept
 * (bounded) so that a failure can be shown with its cause, and a service's stderr (its log)
 * can also be appended to a file.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

const KEEP_LINES = 200;

export interface ChildService {
  url: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export class ChildProcessError extends Error {
  override readonly name = 'ChildProcessError';
  constructor(
    message: string,
    readonly output: string,
  ) {
    super(output ? `${message}\n--- its output ---\n${output}` : message);
  }
}

/** SIGTERM, then SIGKILL if the child has not exited within five seconds. */
export function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(killer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * The last KEEP_LINES lines a child wrote. Only the tail is ever shown, and a service may write
 * for as long as it runs (the API logs one access line per request): memory stays bounded.
 */
class OutputTail {
  private lines: string[] = [];

  readonly push = (line: string): void => {
    this.lines.push(line);
    if (this.lines.length > 2 * KEEP_LINES) this.lines = this.lines.slice(-KEEP_LINES);
  };

  text(): string {
    return this.lines.slice(-KEEP_LINES).join('\n');
  }
}

/**
 * Appends everything written on `output` to the file at `path` (created with mode 0600, kept
 * across runs) as it arrives, through a write stream: no synchronous write per line. If the file
 * cannot be written, says so once on stderr and drops the rest; the child runs on regardless.
 * Resolves once `output` has ended and the file is closed (everything written).
 */
export function appendToFile(output: Readable, path: string, label: string): Promise<void> {
  const file = createWriteStream(path, { flags: 'a', mode: 0o600 });
  let failed = false;
  const closed = new Promise<void>((resolve) => file.once('close', resolve));
  file.on('error', (err) => {
    if (!failed)
      process.stderr.write(
        `certflow stack: ${label}'s log is not kept: cannot write ${path}: ${err.message}\n`,
      );
    failed = true;
    file.destroy();
  });
  output.on('data', (chunk: Buffer) => {
    if (!failed) file.write(chunk);
  });
  output.once('close', () => {
    if (!failed) file.end();
  });
  return closed;
}

export interface ServiceOptions {
  /** How long the service may take to print its `listening` line (default 20 s). */
  timeoutMs?: number;
  /** Also append the service's stderr (its log) to this file (`appendToFile`). */
  logFile?: string;
  /**
   * Give the service a pipe as stdin and set CERTFLOW_EXIT_ON_STDIN_END=1: a service that honours
   * it stops when the pipe ends, which happens when this process dies in any way (SIGKILL included).
   */
  exitWithParent?: boolean;
}

export const EXIT_ON_STDIN_END = 'CERTFLOW_EXIT_ON_STDIN_END';

export function startService(
  label: string,
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  { timeoutMs = 20_000, logFile, exitWithParent = false }: ServiceOptions = {},
): Promise<ChildService> {
  const child = spawn(process.execPath, [script, ...args], {
    env: exitWithParent ? { ...env, [EXIT_ON_STDIN_END]: '1' } : env,
    stdio: [exitWithParent ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  // Never written to: it ends only when this process is gone. (An error here is the child having exited.)
  child.stdin?.on('error', () => {});
  const output = new OutputTail();
  createInterface({ input: child.stderr! }).on('line', output.push);
  const logClosed = logFile ? appendToFile(child.stderr!, logFile, label) : Promise.resolve();
  const stdout = createInterface({ input: child.stdout! });

  /** Stops the child; resolves once its last log lines are in the log file. */
  const stop = async (): Promise<void> => {
    await stopChild(child);
    await logClosed;
  };

  return new Promise((resolve, reject) => {
    const fail = (why: string): void => {
      clearTimeout(timer);
      void stop().then(() => reject(new ChildProcessError(`${label} ${why}`, output.text())));
    };
    const timer = setTimeout(() => fail(`did not report listening within ${timeoutMs} ms`), timeoutMs);
    child.once('exit', (code, signal) => fail(`exited before listening (code ${code}, signal ${signal})`));
    child.once('error', (err) => fail(`could not be started: ${err.message}`));
    stdout.on('line', (line) => {
      output.push(line);
      const event = parseJsonLine(line);
      if (event?.event === 'listening' && typeof event.url === 'string') {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve({ url: event.url, process: child, stop });
      }
    });
  });
}

export interface CommandResult {
  code: number | null;
  events: Record<string, unknown>[];
  output: string;
}

/** Runs a command that prints JSON lines, calling `onEvent` as each arrives. */
export function runJsonCommand(
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  onEvent: (event: Record<string, unknown>) => void = () => {},
  timeoutMs = 60_000,
): Promise<CommandResult> {
  const child = spawn(process.execPath, [script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = new OutputTail();
  const events: Record<string, unknown>[] = [];
  createInterface({ input: child.stderr! }).on('line', output.push);
  createInterface({ input: child.stdout! }).on('line', (line) => {
    output.push(line);
    const event = parseJsonLine(line);
    if (event) {
      events.push(event);
      onEvent(event);
    }
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) =>
      reject(new ChildProcessError(`could not run ${script}: ${err.message}`, '')),
    );
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, events, output: output.text() });
    });
  });
}

function parseJsonLine(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return value && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
