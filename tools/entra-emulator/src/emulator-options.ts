/** `startEmulator`'s options, and their validation before anything is started or written. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MAX_CLOCK_OFFSET_MS } from '@certflow/clock';
import { AllowedHostsError, parseAllowedHosts } from '@certflow/loopback-guard';
import { DEFAULT_TOKEN_LIFETIME, type TokenLifetime } from './access-tokens';
import { EmulatorError } from './errors';
import { mergeFaults, NO_FAULTS, type FaultSettings } from './faults';

export const DEFAULT_CLOCK_SKEW_SECONDS = 60;

export interface EmulatorOptions {
  stateDir: string;
  host?: string;
  port?: number;
  /** Access-token lifetime: fixed seconds, or a range to pick from at random (default 3600–5400). */
  tokenLifetimeSeconds?: TokenLifetime;
  /** Tolerance for client assertions' `nbf`/`exp` and Graph tokens (default 60 s). */
  clockSkewSeconds?: number;
  /** Strict mode: refuse a client assertion whose `jti` was already used (MSAL reuses them, so off by default). */
  rejectReplayedAssertions?: boolean;
  /** The unshifted time (tests freeze or move it); `clockOffset` and the admin API shift it. */
  now?: () => Date;
  /**
   * The clock's initial offset from the real time in milliseconds (±3650 days; default 0, or the
   * clock file's). Moved at run time with `/admin/clock` or `RunningEmulator.clock`.
   */
  clockOffset?: number;
  /**
   * A clock file (`@certflow/clock`) that every change of the offset is written to, atomically,
   * and whose changes by others are followed: the processes given it as CERTFLOW_CLOCK_FILE judge
   * time by the same clock. Written at start with `clockOffset` when given; else its offset is the start.
   */
  clockFile?: string;
  /** Faults injected into the token endpoints from the start (see faults.ts; changeable later with `setFaults`). */
  faults?: Partial<FaultSettings>;
  /**
   * Host names answered besides localhost, 127.0.0.1 and [::1]. Any other Host gets 421 and a
   * cross-site Origin 403, before anything else is done (DNS rebinding, cross-site requests).
   */
  allowedHosts?: readonly string[];
  /**
   * Called with each request that passed the host check, before it is handled; the request
   * waits for a returned promise, and is not handled at all when it resolves `false` (the hook
   * answered it or dropped the connection). For tests that act at an exact point of a client's
   * conversation: a crash test kills its client as the request arrives, or wraps `res.end` to
   * kill it after the request was handled but before the answer leaves.
   */
  onRequest?: (req: IncomingMessage, res: ServerResponse) => boolean | void | Promise<boolean | void>;
}

/** The options checked, with their defaults filled in. */
export interface EmulatorSettings {
  host: string;
  port: number;
  allowedHosts: string[];
  lifetime: TokenLifetime;
  clockSkewSeconds: number;
  rejectReplayedAssertions: boolean;
  clockOffset: number | undefined;
  clockFile: string | undefined;
}

export function validateOptions(options: EmulatorOptions): EmulatorSettings {
  const invalid = (what: string) => new EmulatorError('ERR_INVALID_OPTIONS', `startEmulator: ${what}`);
  if (typeof options?.stateDir !== 'string' || options.stateDir === '') throw invalid('stateDir is required');
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw invalid(`port must be an integer 0–65535, got ${port}`);
  const lifetime = options.tokenLifetimeSeconds ?? DEFAULT_TOKEN_LIFETIME;
  const range = typeof lifetime === 'number' ? { min: lifetime, max: lifetime } : lifetime;
  if (
    !Number.isInteger(range?.min) ||
    !Number.isInteger(range?.max) ||
    range.min < 1 ||
    range.max < range.min
  ) {
    throw invalid('tokenLifetimeSeconds must be a positive integer or { min, max } with 1 <= min <= max');
  }
  mergeFaults(NO_FAULTS, options.faults ?? {});
  const clockSkewSeconds = options.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
  if (!Number.isFinite(clockSkewSeconds) || clockSkewSeconds < 0)
    throw invalid('clockSkewSeconds must be a non-negative number');
  const { clockOffset, clockFile } = options;
  if (
    clockOffset !== undefined &&
    !(Number.isSafeInteger(clockOffset) && Math.abs(clockOffset) <= MAX_CLOCK_OFFSET_MS)
  )
    throw invalid(`clockOffset must be whole milliseconds within ±3650 days, got ${String(clockOffset)}`);
  if (clockFile !== undefined && (typeof clockFile !== 'string' || clockFile === ''))
    throw invalid('clockFile must be a non-empty path');
  let allowedHosts: string[];
  try {
    allowedHosts = parseAllowedHosts(options.allowedHosts ?? []);
  } catch (err) {
    if (err instanceof AllowedHostsError) throw invalid(`allowedHosts: ${err.message}`);
    throw err;
  }
  return {
    host: options.host ?? '127.0.0.1',
    port,
    allowedHosts,
    lifetime,
    clockSkewSeconds,
    rejectReplayedAssertions: options.rejectReplayedAssertions ?? false,
    clockOffset,
    clockFile,
  };
}
