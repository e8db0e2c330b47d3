/**
 * What every command module declares (its name, options, usage line and help, next to its code)
 * and the helpers they share. cli.ts collects the modules, parses, and dispatches.
 */
import { AllowedHostsError, parseAllowedHosts } from '@certflow/loopback-guard';
import { ConfigError, type Env } from '@certflow/partner-client';
import type { RsaKeySize } from '@certflow/certs';
import type { Clock } from '@certflow/clock';
import { decodeJwt } from 'jose';

export interface CliIo {
  env: Env;
  cwd: string;
  stdout(line: string): void;
  stderr(line: string): void;
  /** Reads all of stdin (token decode without an argument). */
  readStdin?(): Promise<string>;
  /** Aborted on SIGTERM/SIGINT: serve and run stop gracefully. Without it they run until killed. */
  stop?: AbortSignal;
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export type Emit = (event: Record<string, unknown>) => void;

type OptionSpec =
  | { type: 'boolean'; default?: boolean; short?: string }
  | { type: 'string'; multiple?: boolean; short?: string };

export type Options = Record<string, OptionSpec>;

/** The values node:util parseArgs gives for `O`. */
export type Values<O extends Options> = {
  [K in keyof O]: O[K] extends { type: 'boolean'; default: boolean }
    ? boolean
    : O[K] extends { type: 'boolean' }
      ? boolean | undefined
      : O[K] extends { multiple: true }
        ? string[] | undefined
        : string | undefined;
};

export interface CommandContext<O extends Options> {
  io: CliIo;
  values: Values<O>;
  /** The positional arguments after the command's name (at most `args`). */
  args: string[];
  /** Writes one JSON object as a line on stdout. */
  emit: Emit;
  /** The process's clock (CERTFLOW_CLOCK_OFFSET / CERTFLOW_CLOCK_FILE, else the real time). */
  clock: Clock;
}

export interface Command<O extends Options = Options> {
  /** One or two words: `call`, `cert create`. */
  name: string;
  /** Its lines in the Commands section of the usage text. */
  usage: string;
  /** Its own help (`help <command>`, `<command> --help`); without it the usage text is shown. */
  help?: string;
  options: O;
  /** How many positional arguments it takes after its name (default 0). */
  args?: number;
  run(context: CommandContext<O>): number | Promise<number>;
}

/** Declares a command with its options typed. */
export function command<O extends Options>(spec: Command<O>): Command {
  return spec as unknown as Command;
}

export const JSON_OPTION = { json: { type: 'boolean', default: false } } as const;

export function positiveInt(name: string, raw: string | undefined, fallback: number, max: number): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > max) {
    throw new UsageError(`--${name} must be a whole number from 1 to ${max}, got "${raw}"`);
  }
  return Number(raw);
}

export function portNumber(name: string, raw: string | undefined): number {
  if (raw === undefined) return 0;
  if (!/^\d+$/.test(raw) || Number(raw) > 65_535)
    throw new UsageError(`--${name} must be a port number from 0 to 65535, got "${raw}"`);
  return Number(raw);
}

/** --key-size: 2048 (default for new keys), 3072 or 4096. */
export function keySize(raw: string | undefined): RsaKeySize | undefined {
  if (raw === undefined) return undefined;
  if (raw !== '2048' && raw !== '3072' && raw !== '4096')
    throw new UsageError(`--key-size must be 2048, 3072 or 4096, got "${raw}"`);
  return Number(raw) as RsaKeySize;
}

export function decodeClaims(accessToken: string): Record<string, unknown> | null {
  try {
    return decodeJwt(accessToken) as Record<string, unknown>;
  } catch {
    return null; // not a JWT (opaque tokens exist); never print it
  }
}

/** --allowed-host names and PARTNER_ALLOWED_HOSTS, checked before anything starts. */
export function allowedHosts(io: CliIo, flagValues: string[] | undefined): string[] {
  const name = (source: string, list: () => string[]): string[] => {
    try {
      return list();
    } catch (err) {
      if (!(err instanceof AllowedHostsError)) throw err;
      if (source.startsWith('--')) throw new UsageError(`${source}: ${err.message}`);
      throw new ConfigError(source, err.message);
    }
  };
  return [
    ...new Set([
      ...name('--allowed-host', () => parseAllowedHosts(flagValues ?? [])),
      ...name('PARTNER_ALLOWED_HOSTS', () => parseAllowedHosts(io.env['PARTNER_ALLOWED_HOSTS'] ?? '')),
    ]),
  ];
}

export const ALLOWED_HOST_OPTION = { 'allowed-host': { type: 'string', multiple: true } } as const;

/** Resolves when `signal` aborts (never without a signal). */
export function stopped(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!signal) return;
    if (signal.aborted) return resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

export const logTo =
  (io: CliIo) =>
  (message: string): void =>
    io.stderr(`partner-worker: ${message}`);
