/**
 * The emulator's clock: the real time (or the `now` option's) shifted by an offset, which the
 * admin API moves (`/admin/clock`). With a clock file (`@certflow/clock`: `{"offsetMs", "setAt"}`)
 * every change is written there before it takes effect, and changes written by others are
 * followed, so the stack's other processes judge time by the same clock. Everything in the
 * emulator that judges time reads this clock: tokens, client assertions, credentials' validity,
 * signing-key rotation and retirement, Graph and admin tokens.
 */
import { existsSync, lstatSync, rmSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { join } from 'node:path';
import {
  checkClockOffset,
  CLOCK_FILE_POLL_MS,
  ClockError,
  formatClockOffset,
  parseClockOffset,
  readClockFile,
  writeClockFile,
} from '@certflow/clock';
import type { AdminRoute } from './admin-api';
import { GraphError, graphErrors } from './graph-errors';

/** The clock file in a state directory, written by `--clock-offset` (CLI, `npm start`). */
export const CLOCK_FILE = 'clock.json';

export const clockFilePath = (stateDir: string): string => join(stateDir, CLOCK_FILE);

/** `RunningEmulator.clock`: what judges time in the emulator. */
export interface EmulatorClock {
  now(): Date;
  /** Milliseconds ahead of the real time (negative: behind). */
  readonly offsetMs: number;
  /** Sets the offset: written to the clock file first; a bad offset or a failed write throws ClockError, nothing changed. */
  set(offsetMs: number): void;
  /** Moves the clock by `ms` (negative: back), as `set`. */
  advance(ms: number): void;
}

export interface ClockOptions {
  /** The unshifted time (default: the real time). */
  base?: () => Date;
  /** The initial offset; written to `file` when both are given. */
  offsetMs?: number;
  /** The clock file to keep and follow; without `offsetMs` its offset (or 0 when it is missing) is the start. */
  file?: string;
  /** Told when a later change of the file cannot be read (the clock keeps its offset). */
  onFileError?: (err: ClockError) => void;
}

/** The clock, and `close` to stop following its file. */
export interface OpenedClock {
  clock: EmulatorClock;
  close(): void;
}

/** Opens the clock; an unreadable clock file (without `offsetMs`) or a failed write throws ClockError. */
export function openEmulatorClock(opts: ClockOptions = {}): OpenedClock {
  const base = opts.base ?? (() => new Date());
  const { file } = opts;
  let offsetMs = checkClockOffset(opts.offsetMs ?? 0, 'clockOffset');
  if (file !== undefined) {
    if (opts.offsetMs === undefined && existsSync(file)) offsetMs = readClockFile(file, 'clockFile');
    else writeClockFile(file, offsetMs);
  }
  const set = (ms: number): void => {
    const checked = checkClockOffset(ms);
    if (file !== undefined) writeClockFile(file, checked);
    offsetMs = checked;
  };
  let close = (): void => {};
  if (file !== undefined) {
    const follow = (current: Stats): void => {
      if (current.ino === 0 && current.mtimeMs === 0) return; // removed: keep the offset
      try {
        offsetMs = readClockFile(file, 'clockFile');
      } catch (err) {
        if (!(err instanceof ClockError)) throw err;
        opts.onFileError?.(err);
      }
    };
    watchFile(file, { interval: CLOCK_FILE_POLL_MS, persistent: false }, follow);
    close = () => unwatchFile(file, follow);
  }
  const clock: EmulatorClock = {
    now: () => new Date(base().getTime() + offsetMs),
    get offsetMs() {
      return offsetMs;
    },
    set,
    advance: (ms) =>
      set(checkClockOffset(offsetMs + checkClockOffset(ms, 'advance'), 'the new clock offset')),
  };
  return { clock, close: () => close() };
}

/**
 * Removes the clock file an earlier shifted run left in `stateDir`, so a start without an offset
 * runs on the real time; returns that run's offset ("+2h"), or 'unreadable', or undefined when
 * there was none. Anything at its name that is not a file (a directory, a link) is left alone and
 * throws ClockError ERR_CLOCK_FILE naming the path. Call it only while holding the directory
 * (after `startEmulator`), and close the emulator when it throws.
 */
export function removeStaleClockFile(stateDir: string): string | undefined {
  const path = clockFilePath(stateDir);
  let stats: Stats;
  try {
    stats = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ClockError('ERR_CLOCK_FILE', `${path}: cannot be read (${(err as Error).message})`);
  }
  if (!stats.isFile())
    throw new ClockError(
      'ERR_CLOCK_FILE',
      `${path} is not a file; it is where an earlier run with a shifted clock kept its offset: remove it`,
    );
  let previous: string;
  try {
    previous = formatClockOffset(readClockFile(path));
  } catch {
    previous = 'unreadable';
  }
  rmSync(path);
  return previous;
}

/** The clock as `GET /admin/clock` shows it. */
function clockView(clock: EmulatorClock): Record<string, unknown> {
  return {
    now: clock.now().toISOString(),
    offsetMs: clock.offsetMs,
    offset: formatClockOffset(clock.offsetMs),
  };
}

/**
 * `GET /admin/clock` (read), `PUT /admin/clock` `{"offset": "+2h"}` or `{"offsetMs": 7200000}`,
 * `DELETE /admin/clock` (back to the real time), `POST /admin/clock/advance` `{"by": "+1h"}`.
 * A bad body is refused with 400 naming the field, and changes nothing.
 */
export function clockRoutes(clock: EmulatorClock): Record<string, AdminRoute> {
  const change = (apply: () => void): { status: number; body: Record<string, unknown> } => {
    try {
      apply();
    } catch (err) {
      if (!(err instanceof ClockError)) throw err;
      if (err.code === 'ERR_CLOCK_OFFSET') throw graphErrors.badRequest(`clock: ${err.message}`);
      throw new GraphError(500, 'InternalServerError', `clock: not changed: ${err.message}`);
    }
    return { status: 200, body: clockView(clock) };
  };
  return {
    clock: async (method, body) => {
      if (method === 'GET') return { status: 200, body: clockView(clock) };
      if (method === 'DELETE') return change(() => clock.set(0));
      if (method === 'PUT') {
        const offsetMs = putOffset(await body());
        return change(() => clock.set(offsetMs));
      }
      throw graphErrors.methodNotAllowed();
    },
    'clock/advance': async (method, body) => {
      if (method !== 'POST') throw graphErrors.methodNotAllowed();
      const by = advanceBy(await body());
      return change(() => clock.advance(by));
    },
  };
}

function fields(value: unknown, allowed: readonly string[], what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw graphErrors.badRequest(`clock: the body must be a JSON object with ${what}`);
  const unknown = Object.keys(value).find((k) => !allowed.includes(k));
  if (unknown !== undefined)
    throw graphErrors.badRequest(
      `clock: unknown field ${JSON.stringify(unknown).slice(0, 80)}; expected ${what}`,
    );
  return value as Record<string, unknown>;
}

/** Milliseconds from `{"offset": "+2h"}` or `{"offsetMs": 7200000}` (exactly one). */
function putOffset(value: unknown): number {
  const what = '"offset" (e.g. "+2h") or "offsetMs" (an integer)';
  const body = fields(value, ['offset', 'offsetMs'], what);
  const given = Object.keys(body);
  if (given.length !== 1) throw graphErrors.badRequest(`clock: give exactly one of ${what}`);
  return withField(() => {
    if ('offset' in body) {
      if (typeof body.offset !== 'string')
        throw graphErrors.badRequest('clock: "offset" must be a string such as "+2h"');
      return parseClockOffset(body.offset, '"offset"');
    }
    if (typeof body.offsetMs !== 'number')
      throw graphErrors.badRequest('clock: "offsetMs" must be an integer');
    return checkClockOffset(body.offsetMs, '"offsetMs"');
  });
}

/** Milliseconds from `{"by": "+1h"}`. */
function advanceBy(value: unknown): number {
  const body = fields(value, ['by'], '"by" (e.g. "+1h" or "-30m")');
  if (typeof body.by !== 'string') throw graphErrors.badRequest('clock: "by" must be a string such as "+1h"');
  const by = body.by;
  return withField(() => parseClockOffset(by, '"by"'));
}

function withField(read: () => number): number {
  try {
    return read();
  } catch (err) {
    if (err instanceof ClockError) throw graphErrors.badRequest(`clock: ${err.message}`);
    throw err;
  }
}
